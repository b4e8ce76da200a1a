package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/vpcsim"
)

const (
	authKeyParam = "/headnat/auth-key"
	authKey      = "hskey-auth-0123456789abcdef" // stands for a headscale pre-auth key
)

// noSecret fails the test if the secret shows in the log or in err.
func noSecret(t *testing.T, log *logBuffer, err error, secret string) {
	t.Helper()
	if strings.Contains(log.String(), secret) {
		t.Errorf("the secret is in the log:\n%s", log.String())
	}
	if err != nil && strings.Contains(err.Error(), secret) {
		t.Errorf("the secret is in the error: %v", err)
	}
}

func TestSecureParameter(t *testing.T) {
	w := newWorld(t)
	w.sim.PutParameter(authKeyParam, authKey, true)
	obs := &recorder{}
	c, log := w.client(t, obs)
	ctx := context.Background()

	v, err := c.SecureParameter(ctx, authKeyParam, "tailnet login")
	if err != nil || v != authKey {
		t.Fatalf("SecureParameter = %q, %v", v, err)
	}
	if l := log.String(); !strings.Contains(l, "op=GetParameter reason=\"tailnet login\"") || !strings.Contains(l, "parameter="+authKeyParam) {
		t.Errorf("the call is not logged with its reason and parameter:\n%s", l)
	}
	noSecret(t, log, nil, authKey)

	// Not found: one clear error naming the parameter.
	_, err = c.SecureParameter(ctx, "/headnat/missing", "tailnet login")
	if !errors.Is(err, ErrParameterNotFound) || !strings.Contains(err.Error(), `"/headnat/missing"`) || ErrorCode(err) != "ParameterNotFound" {
		t.Errorf("missing parameter: %v", err)
	}
	// A secret stored in plain text is refused, and not repeated.
	w.sim.PutParameter("/headnat/plain-key", authKey, false)
	_, err = c.SecureParameter(ctx, "/headnat/plain-key", "tailnet login")
	if err == nil || !strings.Contains(err.Error(), `SSM parameter "/headnat/plain-key" is a String, not a SecureString`) {
		t.Errorf("plain String parameter: %v", err)
	}
	noSecret(t, log, err, authKey)
	if _, err := c.SecureParameter(ctx, "", "tailnet login"); err == nil || !strings.Contains(err.Error(), "no name") {
		t.Errorf("no name: %v", err)
	}

	// Throttling is retried; when it does not end, the call fails with the code.
	w.sim.SetFaults(vpcsim.Faults{ThrottleRate: 0.5, Seed: 5, Actions: []string{"GetParameter"}})
	for range 5 {
		if v, err := c.SecureParameter(ctx, authKeyParam, "retry"); err != nil || v != authKey {
			t.Fatalf("with half the calls throttled: %q, %v", v, err)
		}
	}
	w.sim.SetFaults(vpcsim.Faults{ThrottleRate: 1, Actions: []string{"GetParameter"}})
	_, err = c.SecureParameter(ctx, authKeyParam, "retry")
	if ErrorCode(err) != "ThrottlingException" {
		t.Errorf("always throttled: %v", err)
	}
	w.sim.SetFaults(vpcsim.Faults{})
	noSecret(t, log, err, authKey)
	got := obs.counts()
	if got["GetParameter/ParameterNotFound"] != 1 || got["GetParameter/ThrottlingException"] < DefaultMaxAttempts {
		t.Errorf("observed: %v", got)
	}

	if _, err := NewWithClients(nil, nil, nil, nil, Options{}).SecureParameter(ctx, authKeyParam, "x"); !errors.Is(err, errNoClient) {
		t.Errorf("without an SSM client: %v", err)
	}
}

// A response that does not parse may hold the decrypted value: neither the error nor the log
// repeats any of it.
func TestSecureParameterBadResponseKeepsTheSecret(t *testing.T) {
	const secret = "98765432109876543210987654321" // a key that is all digits
	for name, body := range map[string]string{
		// encoding/json and strconv quote what they fail to parse.
		"value in a number": fmt.Sprintf(`{"Parameter":{"Name":"k","Type":"SecureString","Value":"%s","Version":%s}}`, secret, secret),
		"truncated":         fmt.Sprintf(`{"Parameter":{"Name":"k","Type":"SecureString","Value":"%s`, secret),
		"not an object":     fmt.Sprintf(`{"Parameter":"%s"}`, secret),
		"no value":          `{"Parameter":{"Name":"k","Type":"SecureString"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/x-amz-json-1.1")
				_, _ = w.Write([]byte(body))
			}))
			t.Cleanup(srv.Close)
			log, buf := testLogger(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := New(ctx, Options{Region: testRegion, SSMEndpoint: srv.URL, Credentials: testCreds, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			v, err := c.SecureParameter(ctx, "k", "test")
			if err == nil || v != "" {
				t.Fatalf("SecureParameter = %q, %v; want an error", v, err)
			}
			if !strings.Contains(err.Error(), `read SSM parameter "k"`) {
				t.Errorf("error does not name the parameter: %v", err)
			}
			noSecret(t, buf, err, secret)
			noSecret(t, buf, err, secret[:12])
		})
	}
}

package cloud

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const testMAC = "02:00:00:00:0a:01"

func identityValues() map[string]string {
	return map[string]string{
		"instance-id":                 "i-0123456789abcdef0",
		"placement-availability-zone": "eu-west-1a",
		"placement-region":            "eu-west-1",
		"mac":                         testMAC,
		"mac-network-interface-id":    "eni-0aaaaaaaaaaaaaaa1",
		"local-ipv4":                  "198.18.0.10",
		"mac-subnet-id":               "subnet-0aaaaaaaaaaaaaaa1",
		"mac-vpc-id":                  "vpc-0aaaaaaaaaaaaaaa1",
		"mac-vpc-ipv4-cidr-blocks":    "198.18.0.0/16\n198.19.0.0/16",
	}
}

// Flags that keep every notice absent for an hour.
var quietFlags = []string{"-d", "3600", "--rebalance-delay-sec", "3600", "--asg-termination-delay-sec", "3600"}

func newIMDSClient(t *testing.T, endpoint string, obs Observer) *Client {
	t.Helper()
	log, _ := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, Options{IMDSEndpoint: endpoint, Credentials: testCreds, Logger: log, Observer: obs})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func TestReadIdentityIMDSv2(t *testing.T) {
	endpoint := startMetadataMock(t, identityValues(), quietFlags...)

	// The mock runs IMDSv2-only: a token-less (v1) request is refused.
	resp, err := http.Get(endpoint + "/latest/meta-data/instance-id")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("v1 request: status %d, want 401 from an IMDSv2-only mock", resp.StatusCode)
	}

	obs := &recorder{}
	c := newIMDSClient(t, endpoint, obs) // no Region: read from IMDS
	if c.Region() != "eu-west-1" {
		t.Errorf("region from IMDS = %q, want eu-west-1", c.Region())
	}
	ctx := context.Background()
	id, err := c.ReadIdentity(ctx)
	if err != nil {
		t.Fatalf("ReadIdentity: %v", err)
	}
	want := Identity{
		InstanceID: "i-0123456789abcdef0",
		Region:     "eu-west-1",
		AZ:         "eu-west-1a",
		MAC:        testMAC,
		ENI:        "eni-0aaaaaaaaaaaaaaa1",
		PrivateIP:  netip.MustParseAddr("198.18.0.10"),
		SubnetID:   "subnet-0aaaaaaaaaaaaaaa1",
		VPCID:      "vpc-0aaaaaaaaaaaaaaa1",
		VPCCIDRs:   []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("198.19.0.0/16")},
	}
	if got, w := identityString(id), identityString(want); got != w {
		t.Errorf("identity\n got %s\nwant %s", got, w)
	}
	if len(obs.counts()) != 0 {
		t.Errorf("API errors observed on a clean read: %v", obs.keys())
	}

	// No notices while the mock's delays run.
	if n, err := c.SpotInterruption(ctx); err != nil || n != nil {
		t.Errorf("SpotInterruption = %+v, %v; want none", n, err)
	}
	if _, ok, err := c.RebalanceRecommendation(ctx); err != nil || ok {
		t.Errorf("RebalanceRecommendation ok=%v err=%v; want none", ok, err)
	}
	if s, err := c.TargetLifecycleState(ctx); err != nil || s != "InService" {
		t.Errorf("TargetLifecycleState = %q, %v; want InService", s, err)
	}
	if len(obs.counts()) != 0 {
		t.Errorf("404s counted as API errors: %v", obs.keys())
	}
}

func identityString(id Identity) string {
	var b strings.Builder
	b.WriteString(strings.Join([]string{id.InstanceID, id.Region, id.AZ, id.MAC, id.ENI, id.PrivateIP.String(), id.SubnetID, id.VPCID}, " "))
	for _, p := range id.VPCCIDRs {
		b.WriteString(" " + p.String())
	}
	if !id.LaunchTime.IsZero() {
		b.WriteString(" launched " + id.LaunchTime.String())
	}
	return b.String()
}

func TestNoticesPresent(t *testing.T) {
	ctx := context.Background()
	// Default delays are zero: interruption, rebalance and termination are all there at once.
	c := newIMDSClient(t, startMetadataMock(t, identityValues()), nil)
	n, err := c.SpotInterruption(ctx)
	if err != nil || n == nil {
		t.Fatalf("SpotInterruption = %+v, %v; want a notice", n, err)
	}
	if n.Action != "terminate" {
		t.Errorf("action = %q, want terminate", n.Action)
	}
	if d := time.Until(n.Time); d < 0 || d > 3*time.Minute {
		t.Errorf("interruption time %v is not about two minutes ahead", n.Time)
	}
	at, ok, err := c.RebalanceRecommendation(ctx)
	if err != nil || !ok {
		t.Fatalf("RebalanceRecommendation ok=%v err=%v; want one", ok, err)
	}
	if d := time.Since(at); d < -time.Minute || d > time.Minute {
		t.Errorf("rebalance notice time %v is not about now", at)
	}
	if s, err := c.TargetLifecycleState(ctx); err != nil || s != "Terminated" {
		t.Errorf("TargetLifecycleState = %q, %v; want Terminated", s, err)
	}

	// The spot-only mock with another action: the action is read, not assumed.
	c = newIMDSClient(t, startMetadataMock(t, identityValues(), "spot", "-a", "stop"), nil)
	n, err = c.SpotInterruption(ctx)
	if err != nil || n == nil || n.Action != "stop" {
		t.Fatalf("SpotInterruption = %+v, %v; want a stop notice", n, err)
	}
	// That mock does not serve the lifecycle path: 404 means "not in an ASG".
	if s, err := c.TargetLifecycleState(ctx); err != nil || s != "" {
		t.Errorf("TargetLifecycleState without ASG = %q, %v; want \"\"", s, err)
	}
}

func TestReadIdentityBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, key, value, wantIn string
	}{
		{"cidr out of range", "mac-vpc-ipv4-cidr-blocks", "198.18.0.0/16\n198.19.0.0/33", "vpc-ipv4-cidr-blocks"},
		{"cidr with host bits", "mac-vpc-ipv4-cidr-blocks", "198.18.0.1/16", "host bits"},
		{"not an address", "local-ipv4", "198.18.0", "local-ipv4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := identityValues()
			v[tc.key] = tc.value
			obs := &recorder{}
			c := newIMDSClient(t, startMetadataMock(t, v, quietFlags...), obs)
			id, err := c.ReadIdentity(context.Background())
			if err == nil {
				t.Fatalf("ReadIdentity accepted %s=%q: %+v", tc.key, tc.value, id)
			}
			var br *BadResponseError
			if !errors.As(err, &br) {
				t.Errorf("error %v is not a BadResponseError", err)
			}
			if !strings.Contains(err.Error(), tc.wantIn) {
				t.Errorf("error %q does not name %q", err, tc.wantIn)
			}
			if id.InstanceID != "" || id.VPCCIDRs != nil {
				t.Errorf("half-built identity returned: %+v", id)
			}
			c.mu.Lock()
			cached := c.self
			c.mu.Unlock()
			if cached != nil {
				t.Errorf("bad identity cached: %+v", cached)
			}
		})
	}
}

// An IMDS that only speaks v1 (token request refused): the client must not fall back to
// token-less requests.
func TestIMDSNoV1Fallback(t *testing.T) {
	var tokenless atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") == "" {
			tokenless.Add(1)
		}
		_, _ = w.Write([]byte("i-v1only"))
	}))
	t.Cleanup(srv.Close)

	log, _ := testLogger(t)
	obs := &recorder{}
	c, err := New(context.Background(), Options{Region: "eu-west-1", IMDSEndpoint: srv.URL, Credentials: testCreds, Logger: log, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadIdentity(context.Background()); err == nil {
		t.Fatal("ReadIdentity succeeded against an IMDSv1-only service")
	}
	if n := tokenless.Load(); n != 0 {
		t.Errorf("%d token-less (IMDSv1) requests sent", n)
	}
	if len(obs.counts()) == 0 {
		t.Error("the failed read was not observed")
	}
}

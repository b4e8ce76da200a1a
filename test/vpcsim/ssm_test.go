package vpcsim

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// ssmClient is the real SSM client against the Sim; maxAttempts 0 keeps the SDK's default.
func ssmClient(url string, maxAttempts int) *ssm.Client {
	return ssm.NewFromConfig(aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDVPCSIMTEST", "not-a-secret", ""),
		BaseEndpoint:     aws.String(url),
		RetryMaxAttempts: maxAttempts,
	})
}

func TestSSMGetParameter(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 500_000_000, time.UTC)
	f := newFixture(t, Options{Now: func() time.Time { return now }})
	c := ssmClient(f.url, 0)
	f.sim.PutParameter("/headnat/auth-key", "hskey-secret-1", true)
	f.sim.PutParameter("plain", "not secret", false)

	get := func(name string, decrypt bool) *ssmtypes.Parameter {
		t.Helper()
		out, err := c.GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(decrypt)})
		mustOK(t, err)
		if out.Parameter == nil {
			t.Fatalf("%s: no parameter in the answer", name)
		}
		return out.Parameter
	}
	p := get("/headnat/auth-key", true)
	if aws.ToString(p.Value) != "hskey-secret-1" || p.Type != ssmtypes.ParameterTypeSecureString || p.Version != 1 ||
		aws.ToString(p.Name) != "/headnat/auth-key" || aws.ToString(p.ARN) != "arn:aws:ssm:us-east-1:123456789012:parameter/headnat/auth-key" ||
		!aws.ToTime(p.LastModifiedDate).Equal(now) || aws.ToString(p.DataType) != "text" {
		t.Fatalf("decrypted: %+v (value %q, modified %v)", p, aws.ToString(p.Value), aws.ToTime(p.LastModifiedDate))
	}
	if v := aws.ToString(get("/headnat/auth-key", false).Value); v == "" || strings.Contains(v, "secret") {
		t.Fatalf("without decryption a SecureString reads %q, want an opaque blob", v)
	}
	if p := get("plain", false); aws.ToString(p.Value) != "not secret" || p.Type != ssmtypes.ParameterTypeString ||
		aws.ToString(p.ARN) != "arn:aws:ssm:us-east-1:123456789012:parameter/plain" {
		t.Fatalf("plain: %+v", p)
	}
	f.sim.PutParameter("/headnat/auth-key", "hskey-secret-2", true)
	if p := get("/headnat/auth-key", true); aws.ToString(p.Value) != "hskey-secret-2" || p.Version != 2 {
		t.Fatalf("after overwrite: value %q version %d", aws.ToString(p.Value), p.Version)
	}

	_, err := c.GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/headnat/nope"), WithDecryption: aws.Bool(true)})
	wantCode(t, err, "ParameterNotFound")
	var nf *ssmtypes.ParameterNotFound
	if !errors.As(err, &nf) || !strings.Contains(err.Error(), "/headnat/nope") {
		t.Fatalf("not found: %v, want *types.ParameterNotFound naming the parameter", err)
	}
	if n := f.sim.RequestCount("GetParameter"); n != 5 {
		t.Fatalf("GetParameter requests: %d, want 5", n)
	}

	// One endpoint serves EC2 and SSM alike.
	if _, err := f.ec2.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{}); err != nil {
		t.Fatalf("EC2 on the same endpoint: %v", err)
	}
}

func TestSSMFaultsAndBadRequests(t *testing.T) {
	f := newFixture(t, Options{})
	f.sim.PutParameter("k", "v", true)
	c := ssmClient(f.url, 1)
	in := &ssm.GetParameterInput{Name: aws.String("k"), WithDecryption: aws.Bool(true)}

	f.sim.SetFaults(Faults{ThrottleRate: 1, Actions: []string{"GetParameter"}})
	_, err := c.GetParameter(ctx(t), in)
	wantCode(t, err, "ThrottlingException")
	f.sim.SetFaults(Faults{ServerErrorRate: 1, Actions: []string{"GetParameter"}})
	_, err = c.GetParameter(ctx(t), in)
	wantCode(t, err, "InternalServerError")
	// Faults on other actions leave SSM alone, and the SDK's own retries get through a few.
	f.sim.SetFaults(Faults{ThrottleRate: 1, Actions: []string{"DescribeVpcs"}})
	if _, err := c.GetParameter(ctx(t), in); err != nil {
		t.Fatalf("with faults elsewhere: %v", err)
	}
	f.sim.SetFaults(Faults{ThrottleRate: 0.5, Seed: 3})
	for range 5 {
		if _, err := ssmClient(f.url, 10).GetParameter(ctx(t), in); err != nil {
			t.Fatalf("with half the calls throttled and retries: %v", err)
		}
	}
	f.sim.SetFaults(Faults{})

	// What the SDK would never send: the answers are awsJson errors.
	for _, tt := range []struct{ target, body, want string }{
		{"AmazonSSM.GetParameter", `{}`, `{"__type":"ValidationException"`},
		{"AmazonSSM.GetParameter", `{"Name":`, `{"__type":"SerializationException"`},
		{"AmazonSSM.PutParameter", `{"Name":"k","Value":"x"}`, `{"__type":"UnknownOperationException"`},
	} {
		req, err := http.NewRequest(http.MethodPost, f.url, strings.NewReader(tt.body))
		mustOK(t, err)
		req.Header.Set("X-Amz-Target", tt.target)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		resp, err := http.DefaultClient.Do(req)
		mustOK(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.HasPrefix(string(b), tt.want) || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
			t.Errorf("%s %s: %d %s", tt.target, tt.body, resp.StatusCode, b)
		}
	}
}

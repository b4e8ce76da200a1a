package vpcsim

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
)

// fixture is the lab's VPC: two AZs, a public and a private subnet each, a managed route table
// per private subnet, a NAT instance per public subnet, two EIPs and an ASG of the NATs.
type fixture struct {
	sim                    *Sim
	url                    string
	ec2                    *ec2.Client
	asg                    *autoscaling.Client
	vpc                    string
	pubA, pubB, prvA, prvB string
	rtbA, rtbB             string
	natA, natB             string
	eniA, eniB             string
	eipA, eipB             string
	launchA                time.Time
}

const cluster = "lab"

func newFixture(t *testing.T, opts Options) *fixture {
	t.Helper()
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	s := New(opts)
	f := &fixture{sim: s}
	f.vpc = s.AddVPC("198.18.0.0/16", map[string]string{"Name": "lab"})
	f.pubA = s.AddSubnet(f.vpc, "us-east-1a", "198.18.0.0/24", map[string]string{"Name": "public-a"})
	f.pubB = s.AddSubnet(f.vpc, "us-east-1b", "198.18.1.0/24", map[string]string{"Name": "public-b"})
	f.prvA = s.AddSubnet(f.vpc, "us-east-1a", "198.18.10.0/24", map[string]string{"Name": "private-a"})
	f.prvB = s.AddSubnet(f.vpc, "us-east-1b", "198.18.11.0/24", map[string]string{"Name": "private-b"})
	f.rtbA = s.AddRouteTable(f.vpc, map[string]string{"headnat:cluster": cluster, "Name": "private-a"})
	f.rtbB = s.AddRouteTable(f.vpc, map[string]string{"headnat:cluster": cluster, "Name": "private-b"})
	s.Associate(f.rtbA, f.prvA)
	s.Associate(f.rtbB, f.prvB)
	f.launchA = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.natA, f.eniA = s.AddInstance(InstanceSpec{SubnetID: f.pubA, PrivateIP: "198.18.0.10", LaunchTime: f.launchA,
		Tags: map[string]string{"headnat:cluster": cluster, "Name": "nat-a"}})
	f.natB, f.eniB = s.AddInstance(InstanceSpec{SubnetID: f.pubB, PrivateIP: "198.18.1.10", LaunchTime: f.launchA.Add(time.Minute),
		Tags: map[string]string{"headnat:cluster": cluster, "Name": "nat-b"}})
	f.eipA = s.AddAddress("203.0.113.10")
	f.eipB = s.AddAddress("203.0.113.11")
	s.AddAutoScalingGroup(GroupSpec{Name: "nat", MinSize: 2, MaxSize: 4, Instances: []string{f.natA, f.natB},
		Hooks: []HookSpec{{Name: "drain", HeartbeatTimeout: 5 * time.Minute}}, Tags: map[string]string{"headnat:cluster": cluster}})

	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	f.url = srv.URL
	f.ec2, f.asg = clients(srv.URL, nil)
	return f
}

// clients builds real SDK clients against the Sim; retryer nil keeps the SDK's default.
func clients(url string, retryer func() aws.Retryer) (*ec2.Client, *autoscaling.Client) {
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDVPCSIMTEST", "not-a-secret", ""),
		BaseEndpoint: aws.String(url),
		Retryer:      retryer,
	}
	return ec2.NewFromConfig(cfg), autoscaling.NewFromConfig(cfg)
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// wantCode asserts err is an API error with the code.
func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want API error %s, got %v", code, err)
	}
	if ae.ErrorCode() != code {
		t.Fatalf("want error code %s, got %s (%s)", code, ae.ErrorCode(), ae.ErrorMessage())
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// recSink records Sink calls and can be told to fail.
type recSink struct {
	mu     sync.Mutex
	events []string
	fail   func(event string) error
}

func (r *recSink) add(e string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(e); err != nil {
			r.events = append(r.events, "FAILED "+e)
			return err
		}
	}
	r.events = append(r.events, e)
	return nil
}

func (r *recSink) DefaultRoute(table string, kr KernelRoute) error {
	switch {
	case kr.Absent:
		return r.add(fmt.Sprintf("route %s absent", table))
	case kr.Blackhole:
		return r.add(fmt.Sprintf("route %s blackhole (%s)", table, kr.Target))
	}
	return r.add(fmt.Sprintf("route %s via %s", table, kr.Target))
}

func (r *recSink) SourceDestCheck(eni string, ip netip.Addr, on bool) error {
	return r.add(fmt.Sprintf("sdc %s %s %v", eni, ip, on))
}

func (r *recSink) ElasticIP(priv, pub netip.Addr, associated bool) error {
	return r.add(fmt.Sprintf("eip %s %s %v", priv, pub, associated))
}

func (r *recSink) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

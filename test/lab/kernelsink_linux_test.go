//go:build linux

package lab

import (
	"context"
	"errors"
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
)

// kernelLab is the lab of docs/ARCHITECTURE.md in small: a vpc-router namespace with legs pub-a, pub-b, prv-a
// and igw, NAT namespaces behind the public legs, a client behind prv-a, an echo side behind
// igw.
type kernelLab struct {
	router, natA, natB, host, inet *netns.NS
}

func newKernelLab(t *testing.T) *kernelLab {
	t.Helper()
	netns.RequireRoot(t)
	for _, tool := range []string{"iptables", "ping", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not installed (`make deps` installs it)", tool)
		}
	}
	l := &kernelLab{
		router: netns.New(t, "vsrouter"), natA: netns.New(t, "vsnata"), natB: netns.New(t, "vsnatb"),
		host: netns.New(t, "vshost"), inet: netns.New(t, "vsinet"),
	}
	legs := []struct {
		leg, routerIP string
		peer          *netns.NS
		peerIP, gw    string
	}{
		{"pub-a", "198.18.0.1/24", l.natA, "198.18.0.10/24", "198.18.0.1"},
		{"pub-b", "198.18.1.1/24", l.natB, "198.18.1.10/24", "198.18.1.1"},
		{"prv-a", "198.18.10.1/24", l.host, "198.18.10.5/24", "198.18.10.1"},
	}
	l.router.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	for _, g := range legs {
		netns.MustVeth(t, l.router, g.leg, g.peer, "eth0")
		l.router.MustRun(t, "ip", "addr", "add", g.routerIP, "dev", g.leg)
		g.peer.MustRun(t, "ip", "addr", "add", g.peerIP, "dev", "eth0")
		g.peer.MustRun(t, "ip", "route", "add", "default", "via", g.gw)
	}
	for _, nat := range []*netns.NS{l.natA, l.natB} {
		nat.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0",
			"net.ipv4.conf.eth0.send_redirects=0", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.eth0.rp_filter=0")
	}
	netns.MustVeth(t, l.router, "igw", l.inet, "eth0")
	l.router.MustRun(t, "ip", "addr", "add", "203.0.113.254/24", "dev", "igw")
	l.inet.MustRun(t, "ip", "addr", "add", "203.0.113.1/24", "dev", "eth0")
	l.inet.MustRun(t, "ip", "route", "add", "198.18.0.0/15", "via", "203.0.113.254")
	return l
}

// reaches pings the echo side once from the client, bounded by a one second wait.
func (l *kernelLab) reaches(t *testing.T) bool {
	t.Helper()
	_, err := l.host.Run("ping", "-n", "-c", "1", "-W", "1", "203.0.113.1")
	return err == nil
}

// ksFixture is the simulated VPC behind kernelLab: public subnets with nat-a and nat-b, private
// subnets a and b, a managed route table for private-a, an EIP; served to a real EC2 client
// that makes one attempt per call.
type ksFixture struct {
	sim                    *vpcsim.Sim
	ec2                    *ec2.Client
	pubA, pubB, prvA, prvB string
	rtbA                   string
	natA, natB, eniA, eniB string
	eipA                   string
}

func newKSFixture(t *testing.T) *ksFixture {
	t.Helper()
	s := vpcsim.New(vpcsim.Options{Seed: 42})
	f := &ksFixture{sim: s}
	vpc := s.AddVPC("198.18.0.0/16", nil)
	f.pubA = s.AddSubnet(vpc, "us-east-1a", "198.18.0.0/24", nil)
	f.pubB = s.AddSubnet(vpc, "us-east-1b", "198.18.1.0/24", nil)
	f.prvA = s.AddSubnet(vpc, "us-east-1a", "198.18.10.0/24", nil)
	f.prvB = s.AddSubnet(vpc, "us-east-1b", "198.18.11.0/24", nil)
	f.rtbA = s.AddRouteTable(vpc, nil)
	s.Associate(f.rtbA, f.prvA)
	f.natA, f.eniA = s.AddInstance(vpcsim.InstanceSpec{SubnetID: f.pubA, PrivateIP: "198.18.0.10"})
	f.natB, f.eniB = s.AddInstance(vpcsim.InstanceSpec{SubnetID: f.pubB, PrivateIP: "198.18.1.10"})
	f.eipA = s.AddAddress("203.0.113.10")
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	f.ec2 = ec2.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDKERNELSINK", "not-a-secret", ""),
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      func() aws.Retryer { return retry.AddWithMaxAttempts(retry.NewStandard(), 1) },
	})
	return f
}

func ksOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantCode asserts err is an API error with the code.
func ksWantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != code {
		t.Fatalf("want API error %s, got %v", code, err)
	}
}

func TestKernelSinkInNamespaces(t *testing.T) {
	l := newKernelLab(t)
	f := newKSFixture(t)
	// An instance in a subnet with no router leg: its address cannot be a kernel next hop.
	_, strayENI := f.sim.AddInstance(vpcsim.InstanceSpec{SubnetID: f.prvB, PrivateIP: "198.18.11.10"})
	sink, err := NewKernelSink(KernelConfig{Namespace: l.router.Name, SDCLegs: []string{"pub-a", "pub-b"},
		Tables: map[string]KernelTable{f.rtbA: {Table: 110, Iifs: []string{"prv-a"}}}})
	ksOK(t, err)
	t.Cleanup(func() {
		if err := sink.Close(); err != nil {
			t.Errorf("close kernel sink: %v", err)
		}
	})
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	table := func() string { return l.router.MustRun(t, "ip", "route", "show", "table", "110") }

	ksOK(t, f.sim.SetSink(sink))
	if out := l.router.MustRun(t, "ip", "rule", "list"); !strings.Contains(out, "iif prv-a lookup 110") {
		t.Fatalf("ip rule missing:\n%s", out)
	}
	if out := table(); !strings.Contains(out, "throw 198.18.0.0/15") || !strings.Contains(out, "unreachable default") {
		t.Fatalf("table 110 after sync:\n%s", out)
	}
	if out := l.router.MustRun(t, "iptables", "-S", ChainSDC); strings.Count(out, "-j DROP") != 2 ||
		!strings.Contains(out, "! -d 198.18.0.10/32 -o pub-a") || !strings.Contains(out, "! -d 198.18.1.10/32 -o pub-b") {
		t.Fatalf("both NATs start with the check on:\n%s", out)
	}
	if l.reaches(t) {
		t.Fatal("client reaches the internet with no default route")
	}

	// nat-a disables its check and takes the table.
	_, err = f.ec2.ModifyInstanceAttribute(c, &ec2.ModifyInstanceAttributeInput{InstanceId: &f.natA,
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	ksOK(t, err)
	_, err = f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniA})
	ksOK(t, err)
	if out := table(); !strings.Contains(out, "default via 198.18.0.10 dev pub-a") {
		t.Fatalf("table 110 after CreateRoute:\n%s", out)
	}
	if !l.reaches(t) {
		t.Fatal("client does not reach the internet through nat-a")
	}

	// The route moves to nat-b, whose check is still on: AWS drops, so does the lab.
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), InstanceId: &f.natB})
	ksOK(t, err)
	if out := table(); !strings.Contains(out, "default via 198.18.1.10 dev pub-b") {
		t.Fatalf("table 110 after ReplaceRoute:\n%s", out)
	}
	if l.reaches(t) {
		t.Fatal("traffic passed a NAT whose source/dest check is on")
	}
	_, err = f.ec2.ModifyNetworkInterfaceAttribute(c, &ec2.ModifyNetworkInterfaceAttributeInput{NetworkInterfaceId: &f.eniB,
		SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)}})
	ksOK(t, err)
	if out := l.router.MustRun(t, "iptables", "-S", ChainSDC); strings.Contains(out, "-j DROP") {
		t.Fatalf("rules left with both checks off:\n%s", out)
	}
	if !l.reaches(t) {
		t.Fatal("client does not reach the internet through nat-b")
	}

	// A next hop the kernel refuses: the call fails and the table keeps nat-b.
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &strayENI})
	ksWantCode(t, err, "InternalError")
	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != f.eniB {
		t.Fatalf("refused route kept in the sim: %+v", v)
	}
	if out := table(); !strings.Contains(out, "default via 198.18.1.10 dev pub-b") {
		t.Fatalf("table 110 after the refused route:\n%s", out)
	}

	// nat-b dies: blackhole, as in AWS.
	ksOK(t, f.sim.SetInstanceState(f.natB, vpcsim.StateTerminated))
	if out := table(); !strings.Contains(out, "blackhole default") {
		t.Fatalf("table 110 after termination:\n%s", out)
	}
	if l.reaches(t) {
		t.Fatal("client reaches the internet through a blackhole")
	}

	// EIP: the public address on igw, 1:1 NAT, really used by nat-a's own traffic.
	_, err = f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: &f.eipA, InstanceId: &f.natA})
	ksOK(t, err)
	if out := l.router.MustRun(t, "ip", "-o", "addr", "show", "dev", "igw"); !strings.Contains(out, "203.0.113.10/32") {
		t.Fatalf("EIP not on igw:\n%s", out)
	}
	l.natA.MustRun(t, "ping", "-n", "-c", "1", "-W", "1", "203.0.113.1")
	if n := snatPackets(t, l.router); n < 1 {
		t.Fatalf("SNAT rule matched %d packets", n)
	}
	_, err = f.ec2.DisassociateAddress(c, &ec2.DisassociateAddressInput{PublicIp: aws.String("203.0.113.10")})
	ksOK(t, err)
	if out := l.router.MustRun(t, "ip", "-o", "addr", "show", "dev", "igw"); strings.Contains(out, "203.0.113.10") {
		t.Fatalf("EIP left on igw:\n%s", out)
	}
	if out := l.router.MustRun(t, "iptables", "-t", "nat", "-S", ChainEIP); strings.Contains(out, "SNAT") {
		t.Fatalf("SNAT left:\n%s", out)
	}

	// Close leaves the namespace as it found it.
	ksOK(t, sink.Close())
	if out := l.router.MustRun(t, "ip", "rule", "list"); strings.Contains(out, "lookup 110") {
		t.Fatalf("ip rule left:\n%s", out)
	}
	if out := table(); strings.TrimSpace(out) != "" {
		t.Fatalf("table 110 left:\n%s", out)
	}
	for _, tc := range []struct{ table, chain, from string }{{"filter", ChainSDC, "FORWARD"}, {"nat", ChainEIP, "POSTROUTING"}, {"nat", ChainEIPIn, "PREROUTING"}} {
		if _, err := l.router.Run("iptables", "-t", tc.table, "-S", tc.chain); err == nil {
			t.Fatalf("chain %s left", tc.chain)
		}
		if out := l.router.MustRun(t, "iptables", "-t", tc.table, "-S", tc.from); strings.Contains(out, tc.chain) {
			t.Fatalf("jump to %s left:\n%s", tc.chain, out)
		}
	}
}

func snatPackets(t *testing.T, router *netns.NS) int {
	t.Helper()
	out := router.MustRun(t, "iptables", "-t", "nat", "-L", ChainEIP, "-v", "-n", "-x")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "SNAT" {
			n, _ := strconv.Atoi(f[0])
			return n
		}
	}
	return 0
}

func TestKernelConfigValidation(t *testing.T) {
	for name, cfg := range map[string]KernelConfig{
		"no namespace":   {Tables: map[string]KernelTable{"rtb-1": {Table: 110, Iifs: []string{"prv-a"}}}},
		"reserved table": {Namespace: "x", Tables: map[string]KernelTable{"rtb-1": {Table: 254, Iifs: []string{"prv-a"}}}},
		"shared table": {Namespace: "x", Tables: map[string]KernelTable{
			"rtb-1": {Table: 110, Iifs: []string{"prv-a"}}, "rtb-2": {Table: 110, Iifs: []string{"prv-b"}}}},
		"no iif":      {Namespace: "x", Tables: map[string]KernelTable{"rtb-1": {Table: 110}}},
		"empty iif":   {Namespace: "x", Tables: map[string]KernelTable{"rtb-1": {Table: 110, Iifs: []string{""}}}},
		"bad igw":     {Namespace: "x", IGW: "igw; reboot"},
		"bad sdc leg": {Namespace: "x", SDCLegs: []string{"-j ACCEPT"}},
	} {
		if _, err := NewKernelSink(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewKernelSink(KernelConfig{Namespace: "x"}); err != nil {
		t.Errorf("minimal config refused: %v", err)
	}
}

package lab

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
)

// ec2In is an EC2 client that reaches the simulator the way an agent does: from inside a
// namespace, to the endpoint in the router.
func ec2In(l *Lab, nsName string) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       Region,
		BaseEndpoint: aws.String(APIURL()),
		Credentials:  credentials.NewStaticCredentialsProvider("lab-only", "lab-only", ""),
		HTTPClient:   l.Client(nsName, 5*time.Second),
	})
}

// handNAT makes a NAT namespace forward and masquerade by hand, as the agent would.
func handNAT(t *testing.T, s *Site) {
	t.Helper()
	s.NAT.MustRun(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	s.NAT.MustRun(t, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-o", "eth0", "-s", VPCCIDR, "!", "-d", VPCCIDR, "-j", "MASQUERADE")
}

func expectEcho(t *testing.T, l *Lab, host *Site, want string) {
	t.Helper()
	ctx := context.Background()
	var got string
	var err error
	for i := 0; i < 20; i++ { // bounded: 20 tries, about 4s
		got, err = l.Echo(ctx, host, time.Second)
		if err == nil && got == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("host-%s: echo server saw %q (err %v), want %q\n%s", host.Name, got, err, want, l.Dump())
}

func expectNoEcho(t *testing.T, l *Lab, host *Site) {
	t.Helper()
	got, err := l.Echo(context.Background(), host, 700*time.Millisecond)
	if err == nil {
		t.Fatalf("host-%s: echo answered %q, want no path to the internet", host.Name, got)
	}
}

// The lab without agents: the simulator's API moves real kernel routes, source/dest check
// drops forwarded traffic, the IGW maps each NAT to its EIP, and each NAT namespace has its
// own IMDS identity.
func TestNetworkWithoutAgents(t *testing.T) {
	netns.RequireRoot(t)
	ctx := context.Background()
	l := ownLab(t, Options{NoAgents: true, Name: "net"})
	a, b := l.MustSite("a"), l.MustSite("b")

	// Identity: each NAT namespace's IMDS (IMDSv2 only) says who it is.
	for _, s := range l.Sites() {
		c := imds.New(imds.Options{Endpoint: "http://" + IMDSAddr, HTTPClient: l.Client(s.NAT.Name, 2*time.Second)})
		doc, err := c.GetInstanceIdentityDocument(ctx, nil)
		if err != nil {
			t.Fatalf("imds %s: %v", s.Name, err)
		}
		if doc.InstanceID != s.InstanceID || doc.AvailabilityZone != s.Zone || doc.Region != Region || doc.PrivateIP != s.NATIP {
			t.Fatalf("imds %s identity: %+v, want %s %s %s", s.Name, doc, s.InstanceID, s.Zone, s.NATIP)
		}
		for path, want := range map[string]string{
			"mac":         s.MAC,
			"instance-id": s.InstanceID,
			"network/interfaces/macs/" + s.MAC + "/interface-id":         s.ENI,
			"network/interfaces/macs/" + s.MAC + "/vpc-ipv4-cidr-blocks": VPCCIDR,
			"network/interfaces/macs/" + s.MAC + "/subnet-id":            s.PublicSubnet,
			"network/interfaces/macs/" + s.MAC + "/vpc-id":               s.VPCID,
			"autoscaling/target-lifecycle-state":                         "InService",
		} {
			out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
			if err != nil {
				t.Fatalf("imds %s %s: %v", s.Name, path, err)
			}
			b, _ := io.ReadAll(out.Content)
			if got := strings.TrimSpace(string(b)); got != want {
				t.Fatalf("imds %s %s = %q, want %q", s.Name, path, got, want)
			}
		}
		// No spot notice unless the lab asks for one.
		if _, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: "spot/instance-action"}); err == nil {
			t.Fatalf("imds %s: spot notice present at start", s.Name)
		}
		// IMDSv1 is refused.
		resp, err := l.Client(s.NAT.Name, 2*time.Second).Get("http://" + IMDSAddr + "/latest/meta-data/instance-id")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("imds %s without token: %s, want 401", s.Name, resp.Status)
		}
	}

	// No default route yet: no internet.
	expectNoEcho(t, l, a)
	handNAT(t, a)
	handNAT(t, b)

	// Routes written through the API, from the NAT's namespace, as the agent will.
	c := ec2In(l, a.NAT.Name)
	if _, err := c.CreateRoute(ctx, &ec2.CreateRouteInput{
		RouteTableId: &a.RouteTable, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &a.ENI,
	}); err != nil {
		t.Fatal(err)
	}
	if len(l.Moves()) != 1 || l.Moves()[0].TargetAZ != "a" || l.Moves()[0].TableAZ != "a" {
		t.Fatalf("moves: %+v", l.Moves())
	}
	reqs := l.Requests(time.Time{})
	if len(reqs) == 0 || reqs[len(reqs)-1].Site != "a" || reqs[len(reqs)-1].Action != "CreateRoute" || !reqs[len(reqs)-1].Mutating() {
		t.Fatalf("request log: %+v", reqs)
	}
	// Source/dest check still on: AWS drops what the NAT would forward.
	expectNoEcho(t, l, a)
	for _, s := range l.Sites() {
		if _, err := c.ModifyInstanceAttribute(ctx, &ec2.ModifyInstanceAttributeInput{
			InstanceId: &s.InstanceID, SourceDestCheck: &ec2types.AttributeBooleanValue{Value: aws.Bool(false)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range l.Sites() {
		if l.Sim.SourceDestCheck(s.ENI) {
			t.Fatalf("source/dest check of %s still on; calls: %+v", s.ENI, l.Sim.Calls())
		}
	}
	expectEcho(t, l, a, a.EIP)

	// A ReplaceRoute really moves the traffic.
	if _, err := c.ReplaceRoute(ctx, &ec2.ReplaceRouteInput{
		RouteTableId: &a.RouteTable, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &b.ENI,
	}); err != nil {
		t.Fatal(err)
	}
	expectEcho(t, l, a, b.EIP)
	if site, state := l.Target(a.RouteTable); site != "b" || state != vpcsim.RouteActive {
		t.Fatalf("target of %s: %s %s", a.RouteTable, site, state)
	}

	// Faults: break-egress on b cuts a's traffic (it goes through b); heal restores it.
	if err := l.BreakEgress("b"); err != nil {
		t.Fatal(err)
	}
	expectNoEcho(t, l, a)
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	expectEcho(t, l, a, b.EIP)

	// Partition: the NATs cannot reach each other, but both keep egress.
	if err := l.Partition(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.NAT.Run("ping", "-c1", "-W1", b.NATIP); err == nil {
		t.Fatal("nat-a reaches nat-b across the partition")
	}
	if _, err := a.NAT.Run("ping", "-c1", "-W1", a.RouterPub); err != nil {
		t.Fatalf("nat-a lost its gateway under partition: %v", err)
	}
	expectEcho(t, l, a, b.EIP)
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	a.NAT.MustRun(t, "ping", "-c1", "-W2", b.NATIP)

	// A stopped target becomes a blackhole: no traffic.
	if err := l.Sim.SetInstanceState(b.InstanceID, vpcsim.StateStopped); err != nil {
		t.Fatal(err)
	}
	if _, state := l.Target(a.RouteTable); state != vpcsim.RouteBlackhole {
		t.Fatalf("route to a stopped instance is %s, want blackhole", state)
	}
	expectNoEcho(t, l, a)

	// Kill and revive take the data path down and up again.
	if _, err := c.ReplaceRoute(ctx, &ec2.ReplaceRouteInput{
		RouteTableId: &a.RouteTable, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &a.ENI,
	}); err != nil {
		t.Fatal(err)
	}
	expectEcho(t, l, a, a.EIP)
	if err := l.Kill("a"); err != nil {
		t.Fatal(err)
	}
	expectNoEcho(t, l, a)
	if err := l.Revive("a"); err != nil {
		t.Fatal(err)
	}
	expectEcho(t, l, a, a.EIP)
}

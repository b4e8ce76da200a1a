package vpcsim

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// GIVEN a public table whose default route goes to an internet gateway WHEN described THEN the
// route is active with the gateway as target, and the kernel sees no default route for it.
func TestGatewayRoute(t *testing.T) {
	sink := &recSink{}
	f := newFixture(t, Options{Sink: sink})
	igw := f.sim.AddInternetGateway(f.vpc)
	pub := f.sim.AddRouteTable(f.vpc, map[string]string{"Name": "public"})
	f.sim.Associate(pub, f.pubA)
	f.sim.AddGatewayRoute(pub, "0.0.0.0/0", igw)

	out, err := f.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{pub}})
	mustOK(t, err)
	var found bool
	for _, r := range out.RouteTables[0].Routes {
		if r.DestinationCidrBlock != nil && *r.DestinationCidrBlock == "0.0.0.0/0" {
			found = r.GatewayId != nil && *r.GatewayId == igw && r.State == "active"
		}
	}
	if !found {
		t.Fatalf("routes %+v: want 0.0.0.0/0 active via %s", out.RouteTables[0].Routes, igw)
	}
	mustOK(t, f.sim.Sync())
	if got := sink.take(); !contains(got, "route "+pub+" absent") {
		t.Fatalf("sink events %q: want the public table's default route absent", got)
	}
	if p := panics(func() { f.sim.AddGatewayRoute(pub, "0.0.0.0/0", igw) }); p == nil {
		t.Error("a second default route was accepted")
	}
	if p := panics(func() { f.sim.AddGatewayRoute(pub, "10.0.0.0/8", "igw-0000000000000000") }); p == nil {
		t.Error("a route to an unknown gateway was accepted")
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func panics(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

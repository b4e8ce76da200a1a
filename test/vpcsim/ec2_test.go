package vpcsim

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func filt(name string, values ...string) types.Filter {
	return types.Filter{Name: aws.String(name), Values: values}
}

func tagMap(ts []types.Tag) map[string]string {
	m := map[string]string{}
	for _, t := range ts {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

func TestDescribeVpcsAndSubnets(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)

	vpcs, err := f.ec2.DescribeVpcs(c, &ec2.DescribeVpcsInput{})
	mustOK(t, err)
	if len(vpcs.Vpcs) != 1 || aws.ToString(vpcs.Vpcs[0].VpcId) != f.vpc || aws.ToString(vpcs.Vpcs[0].CidrBlock) != "198.18.0.0/16" {
		t.Fatalf("vpcs: %+v", vpcs.Vpcs)
	}
	if vpcs.Vpcs[0].State != types.VpcStateAvailable || tagMap(vpcs.Vpcs[0].Tags)["Name"] != "lab" {
		t.Fatalf("vpc fields: %+v", vpcs.Vpcs[0])
	}

	subs, err := f.ec2.DescribeSubnets(c, &ec2.DescribeSubnetsInput{Filters: []types.Filter{
		filt("vpc-id", f.vpc), filt("availability-zone", "us-east-1a"),
	}})
	mustOK(t, err)
	var got []string
	for _, s := range subs.Subnets {
		got = append(got, aws.ToString(s.SubnetId)+" "+aws.ToString(s.CidrBlock)+" "+aws.ToString(s.AvailabilityZone))
	}
	want := []string{f.pubA + " 198.18.0.0/24 us-east-1a", f.prvA + " 198.18.10.0/24 us-east-1a"}
	if !slices.Equal(got, want) {
		t.Fatalf("subnets in 1a: got %v, want %v", got, want)
	}
	if n := aws.ToInt32(subs.Subnets[0].AvailableIpAddressCount); n != 250 {
		t.Fatalf("public-a has one ENI, want 250 free addresses, got %d", n)
	}

	subs, err = f.ec2.DescribeSubnets(c, &ec2.DescribeSubnetsInput{SubnetIds: []string{f.prvB}})
	mustOK(t, err)
	if len(subs.Subnets) != 1 || tagMap(subs.Subnets[0].Tags)["Name"] != "private-b" {
		t.Fatalf("by id: %+v", subs.Subnets)
	}
}

func TestDescribeInstances(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	mustOK(t, f.sim.SetInstanceState(f.natB, StateStopped))

	out, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		filt("tag:headnat:cluster", cluster), filt("instance-state-name", "running", "pending"),
	}})
	mustOK(t, err)
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("want nat-a only, got %+v", out.Reservations)
	}
	in := out.Reservations[0].Instances[0]
	switch {
	case aws.ToString(in.InstanceId) != f.natA,
		aws.ToString(in.PrivateIpAddress) != "198.18.0.10",
		aws.ToString(in.Placement.AvailabilityZone) != "us-east-1a",
		aws.ToString(in.SubnetId) != f.pubA,
		aws.ToString(in.VpcId) != f.vpc,
		in.State.Name != types.InstanceStateNameRunning || aws.ToInt32(in.State.Code) != 16,
		!aws.ToTime(in.LaunchTime).Equal(f.launchA),
		!aws.ToBool(in.SourceDestCheck),
		tagMap(in.Tags)["Name"] != "nat-a",
		tagMap(in.Tags)["aws:autoscaling:groupName"] != "nat":
		t.Fatalf("instance fields: %+v", in)
	}
	if len(in.NetworkInterfaces) != 1 || aws.ToString(in.NetworkInterfaces[0].NetworkInterfaceId) != f.eniA ||
		aws.ToInt32(in.NetworkInterfaces[0].Attachment.DeviceIndex) != 0 {
		t.Fatalf("instance ENIs: %+v", in.NetworkInterfaces)
	}

	out, err = f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{f.natB}})
	mustOK(t, err)
	if got := out.Reservations[0].Instances[0].State.Name; got != types.InstanceStateNameStopped {
		t.Fatalf("nat-b state: %s", got)
	}

	// tag-key and wildcards.
	out, err = f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		filt("tag-key", "headnat:*"), filt("tag:Name", "nat-?"), filt("availability-zone", "us-east-1b"),
	}})
	mustOK(t, err)
	if len(out.Reservations) != 1 || aws.ToString(out.Reservations[0].Instances[0].InstanceId) != f.natB {
		t.Fatalf("wildcard filters: %+v", out.Reservations)
	}

	out, err = f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{Filters: []types.Filter{filt("tag:headnat:cluster", "other")}})
	mustOK(t, err)
	if len(out.Reservations) != 0 {
		t.Fatalf("other cluster matched: %+v", out.Reservations)
	}

	_, err = f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0"}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{"nat-a"}})
	wantCode(t, err, "InvalidInstanceID.Malformed")
}

func TestDescribeNetworkInterfaces(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	out, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{
		filt("attachment.instance-id", f.natB),
	}})
	mustOK(t, err)
	if len(out.NetworkInterfaces) != 1 {
		t.Fatalf("want one ENI, got %d", len(out.NetworkInterfaces))
	}
	n := out.NetworkInterfaces[0]
	if aws.ToString(n.NetworkInterfaceId) != f.eniB || aws.ToString(n.PrivateIpAddress) != "198.18.1.10" ||
		!aws.ToBool(n.SourceDestCheck) || aws.ToString(n.Attachment.InstanceId) != f.natB ||
		aws.ToString(n.AvailabilityZone) != "us-east-1b" || aws.ToString(n.SubnetId) != f.pubB {
		t.Fatalf("ENI fields: %+v", n)
	}
	out, err = f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{f.eniA}})
	mustOK(t, err)
	if len(out.NetworkInterfaces) != 1 || aws.ToString(out.NetworkInterfaces[0].NetworkInterfaceId) != f.eniA {
		t.Fatalf("by id: %+v", out.NetworkInterfaces)
	}
	out, err = f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{
		filt("network-interface-id", f.eniA, f.eniB), filt("subnet-id", f.pubA),
	}})
	mustOK(t, err)
	if len(out.NetworkInterfaces) != 1 || aws.ToString(out.NetworkInterfaces[0].NetworkInterfaceId) != f.eniA {
		t.Fatalf("ids OR, filters AND: %+v", out.NetworkInterfaces)
	}
	_, err = f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-0123456789abcdef0"}})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
}

func describeTable(t *testing.T, f *fixture, id string) types.RouteTable {
	t.Helper()
	out, err := f.ec2.DescribeRouteTables(ctx(t), &ec2.DescribeRouteTablesInput{RouteTableIds: []string{id}})
	mustOK(t, err)
	if len(out.RouteTables) != 1 {
		t.Fatalf("want 1 table, got %d", len(out.RouteTables))
	}
	return out.RouteTables[0]
}

func defaultRoute(rt types.RouteTable) *types.Route {
	for i, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) == "0.0.0.0/0" {
			return &rt.Routes[i]
		}
	}
	return nil
}

func TestRouteLifecycle(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)

	rt := describeTable(t, f, f.rtbA)
	if len(rt.Routes) != 1 || aws.ToString(rt.Routes[0].GatewayId) != "local" ||
		aws.ToString(rt.Routes[0].DestinationCidrBlock) != "198.18.0.0/16" || rt.Routes[0].Origin != types.RouteOriginCreateRouteTable {
		t.Fatalf("new table must hold only the local route: %+v", rt.Routes)
	}
	if len(rt.Associations) != 1 || aws.ToString(rt.Associations[0].SubnetId) != f.prvA || aws.ToBool(rt.Associations[0].Main) ||
		rt.Associations[0].AssociationState.State != types.RouteTableAssociationStateCodeAssociated {
		t.Fatalf("associations: %+v", rt.Associations)
	}
	if tagMap(rt.Tags)["headnat:cluster"] != cluster || aws.ToString(rt.VpcId) != f.vpc {
		t.Fatalf("table fields: %+v", rt)
	}

	// ReplaceRoute before any default route: EC2 says InvalidParameterValue, use CreateRoute.
	_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniA})
	wantCode(t, err, "InvalidParameterValue")

	cr, err := f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniA})
	mustOK(t, err)
	if !aws.ToBool(cr.Return) {
		t.Fatal("CreateRoute must return true")
	}
	r := defaultRoute(describeTable(t, f, f.rtbA))
	if r == nil || aws.ToString(r.NetworkInterfaceId) != f.eniA || aws.ToString(r.InstanceId) != f.natA ||
		r.State != types.RouteStateActive || r.Origin != types.RouteOriginCreateRoute {
		t.Fatalf("after CreateRoute: %+v", r)
	}
	_, err = f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	wantCode(t, err, "RouteAlreadyExists")

	// ReplaceRoute by instance ID lands on its primary ENI.
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), InstanceId: &f.natB})
	mustOK(t, err)
	r = defaultRoute(describeTable(t, f, f.rtbA))
	if aws.ToString(r.NetworkInterfaceId) != f.eniB || aws.ToString(r.InstanceId) != f.natB || r.State != types.RouteStateActive {
		t.Fatalf("after ReplaceRoute: %+v", r)
	}
	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != f.eniB {
		t.Fatalf("sim view: %+v", v)
	}

	// A stopped target is a blackhole until it runs again; a terminated one for good.
	mustOK(t, f.sim.SetInstanceState(f.natB, StateStopped))
	if r = defaultRoute(describeTable(t, f, f.rtbA)); r.State != types.RouteStateBlackhole {
		t.Fatalf("stopped target: %+v", r)
	}
	mustOK(t, f.sim.SetInstanceState(f.natB, StateRunning))
	if r = defaultRoute(describeTable(t, f, f.rtbA)); r.State != types.RouteStateActive {
		t.Fatalf("restarted target: %+v", r)
	}
	mustOK(t, f.sim.SetInstanceState(f.natB, StateTerminated))
	r = defaultRoute(describeTable(t, f, f.rtbA))
	if r.State != types.RouteStateBlackhole || aws.ToString(r.NetworkInterfaceId) != f.eniB {
		t.Fatalf("terminated target: %+v", r)
	}
	bh, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{filt("route.state", "blackhole")}})
	mustOK(t, err)
	if len(bh.RouteTables) != 1 || aws.ToString(bh.RouteTables[0].RouteTableId) != f.rtbA {
		t.Fatalf("route.state filter: %+v", bh.RouteTables)
	}
	// The terminated instance cannot become a target again.
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), InstanceId: &f.natB})
	wantCode(t, err, "IncorrectInstanceState")
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniB})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")

	// The survivor takes over.
	_, err = f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0"), NetworkInterfaceId: &f.eniA})
	mustOK(t, err)
	if r = defaultRoute(describeTable(t, f, f.rtbA)); r.State != types.RouteStateActive || aws.ToString(r.NetworkInterfaceId) != f.eniA {
		t.Fatalf("take-over: %+v", r)
	}

	_, err = f.ec2.DeleteRoute(c, &ec2.DeleteRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0")})
	mustOK(t, err)
	if r = defaultRoute(describeTable(t, f, f.rtbA)); r != nil {
		t.Fatalf("deleted route still there: %+v", r)
	}
	_, err = f.ec2.DeleteRoute(c, &ec2.DeleteRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("0.0.0.0/0")})
	wantCode(t, err, "InvalidRoute.NotFound")
	_, err = f.ec2.DeleteRoute(c, &ec2.DeleteRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: aws.String("198.18.0.0/16")})
	wantCode(t, err, "InvalidParameterValue")

	if got := f.sim.CountCalls("ReplaceRoute"); got != 2 {
		t.Fatalf("successful ReplaceRoute calls: %d, want 2", got)
	}
	if got := f.sim.RequestCount("ReplaceRoute"); got != 5 {
		t.Fatalf("ReplaceRoute requests: %d, want 5", got)
	}
}

func TestRouteFilters(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	mustOK(t, f.sim.SetRoute(f.rtbB, "0.0.0.0/0", f.natA))
	// The main table also gets an explicit association; a new table has none at all.
	main := f.sim.MainRouteTable(f.vpc)
	f.sim.Associate(main, f.pubA)
	lone := f.sim.AddRouteTable(f.vpc, nil)

	for _, tc := range []struct {
		name    string
		filters []types.Filter
		want    []string
	}{
		{"cluster tag", []types.Filter{filt("tag:headnat:cluster", cluster)}, []string{f.rtbA, f.rtbB}},
		{"vpc", []types.Filter{filt("vpc-id", f.vpc)}, []string{main, f.rtbA, f.rtbB, lone}},
		{"subnet", []types.Filter{filt("association.subnet-id", f.prvB)}, []string{f.rtbB}},
		{"main", []types.Filter{filt("association.main", "true")}, []string{main}},
		// Tables with an explicit association, the main one included; never a table with none.
		{"not main", []types.Filter{filt("association.main", "false")}, []string{main, f.rtbA, f.rtbB}},
		{"id", []types.Filter{filt("route-table-id", f.rtbB)}, []string{f.rtbB}},
		{"target", []types.Filter{filt("route.network-interface-id", f.eniA), filt("route.instance-id", f.natA)}, []string{f.rtbA, f.rtbB}},
		{"and", []types.Filter{filt("tag:headnat:cluster", cluster), filt("association.subnet-id", f.prvA, f.pubA)}, []string{f.rtbA}},
		{"tag-key", []types.Filter{filt("tag-key", "Name"), filt("tag:Name", "*-b")}, []string{f.rtbB}},
		{"no match", []types.Filter{filt("tag:headnat:cluster", "nope")}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{Filters: tc.filters})
			mustOK(t, err)
			var got []string
			for _, rt := range out.RouteTables {
				got = append(got, aws.ToString(rt.RouteTableId))
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnknownFilterRejected(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	bad := []types.Filter{filt("color", "blue")}
	calls := map[string]func() error{
		"DescribeInstances": func() error {
			_, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{Filters: bad})
			return err
		},
		"DescribeRouteTables": func() error {
			_, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{Filters: bad})
			return err
		},
		"DescribeNetworkInterfaces": func() error {
			_, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{Filters: bad})
			return err
		},
		"DescribeSubnets": func() error {
			_, err := f.ec2.DescribeSubnets(c, &ec2.DescribeSubnetsInput{Filters: bad})
			return err
		},
		"DescribeVpcs": func() error {
			_, err := f.ec2.DescribeVpcs(c, &ec2.DescribeVpcsInput{Filters: bad})
			return err
		},
		"DescribeAddresses": func() error {
			_, err := f.ec2.DescribeAddresses(c, &ec2.DescribeAddressesInput{Filters: bad})
			return err
		},
		// A filter valid for one resource is unknown to another.
		"DescribeInstances/association.subnet-id": func() error {
			_, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{Filters: []types.Filter{filt("association.subnet-id", f.prvA)}})
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), "InvalidParameterValue") })
	}
}

func TestSourceDestCheck(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	_, err := f.ec2.ModifyNetworkInterfaceAttribute(c, &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: &f.eniA, SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)},
	})
	mustOK(t, err)
	if f.sim.SourceDestCheck(f.eniA) {
		t.Fatal("ModifyNetworkInterfaceAttribute did not turn the check off")
	}
	out, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{Filters: []types.Filter{filt("source-dest-check", "false")}})
	mustOK(t, err)
	if len(out.NetworkInterfaces) != 1 || aws.ToBool(out.NetworkInterfaces[0].SourceDestCheck) {
		t.Fatalf("describe after modify: %+v", out.NetworkInterfaces)
	}

	_, err = f.ec2.ModifyInstanceAttribute(c, &ec2.ModifyInstanceAttributeInput{
		InstanceId: &f.natB, SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)},
	})
	mustOK(t, err)
	in, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{f.natB}})
	mustOK(t, err)
	if aws.ToBool(in.Reservations[0].Instances[0].SourceDestCheck) || f.sim.SourceDestCheck(f.eniB) {
		t.Fatal("ModifyInstanceAttribute did not turn nat-b's check off")
	}
	// The legacy Attribute/Value form works too.
	_, err = f.ec2.ModifyInstanceAttribute(c, &ec2.ModifyInstanceAttributeInput{
		InstanceId: &f.natB, Attribute: types.InstanceAttributeNameSourceDestCheck, Value: aws.String("true"),
	})
	mustOK(t, err)
	if !f.sim.SourceDestCheck(f.eniB) {
		t.Fatal("Attribute=sourceDestCheck did not turn the check on")
	}

	_, err = f.ec2.ModifyInstanceAttribute(c, &ec2.ModifyInstanceAttributeInput{InstanceId: &f.natB})
	wantCode(t, err, "InvalidParameterCombination")
	_, err = f.ec2.ModifyNetworkInterfaceAttribute(c, &ec2.ModifyNetworkInterfaceAttributeInput{
		NetworkInterfaceId: aws.String("eni-0123456789abcdef0"), SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)},
	})
	wantCode(t, err, "InvalidNetworkInterfaceID.NotFound")
	mustOK(t, f.sim.SetInstanceState(f.natB, StateTerminated))
	_, err = f.ec2.ModifyInstanceAttribute(c, &ec2.ModifyInstanceAttributeInput{
		InstanceId: &f.natB, SourceDestCheck: &types.AttributeBooleanValue{Value: aws.Bool(false)},
	})
	wantCode(t, err, "IncorrectInstanceState")
}

func TestElasticIPs(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	as, err := f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: &f.eipA, NetworkInterfaceId: &f.eniA})
	mustOK(t, err)
	assoc := aws.ToString(as.AssociationId)
	if !strings.HasPrefix(assoc, "eipassoc-") {
		t.Fatalf("association id %q", assoc)
	}
	out, err := f.ec2.DescribeAddresses(c, &ec2.DescribeAddressesInput{AllocationIds: []string{f.eipA}})
	mustOK(t, err)
	a := out.Addresses[0]
	if aws.ToString(a.PublicIp) != "203.0.113.10" || aws.ToString(a.AssociationId) != assoc || aws.ToString(a.InstanceId) != f.natA ||
		aws.ToString(a.NetworkInterfaceId) != f.eniA || aws.ToString(a.PrivateIpAddress) != "198.18.0.10" || a.Domain != types.DomainTypeVpc {
		t.Fatalf("address fields: %+v", a)
	}
	in, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{f.natA}})
	mustOK(t, err)
	if got := aws.ToString(in.Reservations[0].Instances[0].PublicIpAddress); got != "203.0.113.10" {
		t.Fatalf("instance public IP %q", got)
	}

	// Taken elsewhere without AllowReassociation: refused; with it: moved.
	_, err = f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: &f.eipA, InstanceId: &f.natB})
	wantCode(t, err, "Resource.AlreadyAssociated")
	_, err = f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: &f.eipA, InstanceId: &f.natB, AllowReassociation: aws.Bool(true)})
	mustOK(t, err)
	if v, _ := f.sim.Address(f.eipA); v.InstanceID != f.natB || v.PrivateIP.String() != "198.18.1.10" {
		t.Fatalf("after reassociation: %+v", v)
	}

	out, err = f.ec2.DescribeAddresses(c, &ec2.DescribeAddressesInput{Filters: []types.Filter{filt("instance-id", f.natB)}})
	mustOK(t, err)
	if len(out.Addresses) != 1 {
		t.Fatalf("instance-id filter: %+v", out.Addresses)
	}
	_, err = f.ec2.DisassociateAddress(c, &ec2.DisassociateAddressInput{AssociationId: out.Addresses[0].AssociationId})
	mustOK(t, err)
	if v, _ := f.sim.Address(f.eipA); v.AssociationID != "" {
		t.Fatalf("still associated: %+v", v)
	}
	_, err = f.ec2.DisassociateAddress(c, &ec2.DisassociateAddressInput{AssociationId: out.Addresses[0].AssociationId})
	wantCode(t, err, "InvalidAssociationID.NotFound")
	_, err = f.ec2.DescribeAddresses(c, &ec2.DescribeAddressesInput{PublicIps: []string{"203.0.113.99"}})
	wantCode(t, err, "InvalidAddress.NotFound")
	_, err = f.ec2.AssociateAddress(c, &ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0"), InstanceId: &f.natA})
	wantCode(t, err, "InvalidAllocationID.NotFound")
}

func TestCreateTags(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	_, err := f.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{f.natA, f.eipA, f.sim.MainRouteTable(f.vpc)},
		Tags: []types.Tag{{Key: aws.String("headnat:role"), Value: aws.String("x")}}})
	mustOK(t, err)
	out, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{filt("tag-key", "headnat:role")}})
	mustOK(t, err)
	if len(out.RouteTables) != 1 || aws.ToString(out.RouteTables[0].RouteTableId) != f.sim.MainRouteTable(f.vpc) {
		t.Fatalf("tagged table: %+v", out.RouteTables)
	}
	ad, err := f.ec2.DescribeAddresses(c, &ec2.DescribeAddressesInput{Filters: []types.Filter{filt("tag:headnat:role", "x")}})
	mustOK(t, err)
	if len(ad.Addresses) != 1 || aws.ToString(ad.Addresses[0].AllocationId) != f.eipA {
		t.Fatalf("tagged address: %+v", ad.Addresses)
	}

	// All or nothing: one unknown resource fails the call and tags nothing.
	_, err = f.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{f.natB, "i-0123456789abcdef0"},
		Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	wantCode(t, err, "InvalidInstanceID.NotFound")
	if v, _ := f.sim.Instance(f.natB); v.Tags["k"] != "" {
		t.Fatal("failed CreateTags tagged nat-b")
	}
	_, err = f.ec2.CreateTags(c, &ec2.CreateTagsInput{Resources: []string{f.natB}, Tags: []types.Tag{{Key: aws.String("aws:x"), Value: aws.String("v")}}})
	wantCode(t, err, "InvalidParameterValue")
}

func TestBadInputErrors(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	mustOK(t, f.sim.SetRoute(f.rtbA, "0.0.0.0/0", f.eniA))
	dflt := aws.String("0.0.0.0/0")
	for _, tc := range []struct {
		name string
		code string
		call func() error
	}{
		{"unknown table", "InvalidRouteTableID.NotFound", func() error {
			_, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{"rtb-0123456789abcdef0"}})
			return err
		}},
		{"malformed table", "InvalidRouteTableId.Malformed", func() error {
			_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-xyz"), DestinationCidrBlock: dflt, NetworkInterfaceId: &f.eniB})
			return err
		}},
		{"replace on unknown table", "InvalidRouteTableID.NotFound", func() error {
			_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: aws.String("rtb-0123456789abcdef0"), DestinationCidrBlock: dflt, NetworkInterfaceId: &f.eniB})
			return err
		}},
		{"no destination", "MissingParameter", func() error {
			_, err := f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbB, NetworkInterfaceId: &f.eniB})
			return err
		}},
		{"no target", "MissingParameter", func() error {
			_, err := f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbB, DestinationCidrBlock: dflt})
			return err
		}},
		{"two targets", "InvalidParameterCombination", func() error {
			_, err := f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbB, DestinationCidrBlock: dflt, NetworkInterfaceId: &f.eniB, InstanceId: &f.natB})
			return err
		}},
		{"bad CIDR", "InvalidParameterValue", func() error {
			_, err := f.ec2.CreateRoute(c, &ec2.CreateRouteInput{RouteTableId: &f.rtbB, DestinationCidrBlock: aws.String("0.0.0.0/33"), NetworkInterfaceId: &f.eniB})
			return err
		}},
		{"unknown instance target", "InvalidInstanceID.NotFound", func() error {
			_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, InstanceId: aws.String("i-0123456789abcdef0")})
			return err
		}},
		{"malformed ENI target", "InvalidNetworkInterfaceId.Malformed", func() error {
			_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, NetworkInterfaceId: aws.String("eni-1")})
			return err
		}},
		{"malformed ENI described", "InvalidNetworkInterfaceId.Malformed", func() error {
			_, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{"eni-xyz"}})
			return err
		}},
		{"gateway target", "InvalidGatewayID.NotFound", func() error {
			_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, GatewayId: aws.String("igw-0123456789abcdef0")})
			return err
		}},
		{"dry run", "DryRunOperation", func() error {
			_, err := f.ec2.ReplaceRoute(c, &ec2.ReplaceRouteInput{RouteTableId: &f.rtbA, DestinationCidrBlock: dflt, NetworkInterfaceId: &f.eniB, DryRun: aws.Bool(true)})
			return err
		}},
		{"dry run describe", "DryRunOperation", func() error {
			_, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{DryRun: aws.Bool(true)})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code) })
	}
	// None of the failed calls moved the route.
	if v, _ := f.sim.Route(f.rtbA); v.NetworkInterfaceID != f.eniA {
		t.Fatalf("a failed call changed the route: %+v", v)
	}
	if _, ok := f.sim.Route(f.rtbB); ok {
		t.Fatal("a failed call created a route in rtb-b")
	}
}

// The SDK cannot send an unknown action; a plain form POST shows the error shape.
func TestUnknownAction(t *testing.T) {
	f := newFixture(t, Options{})
	for _, tc := range []struct{ version, want string }{
		{ec2Version, "<Response><Errors><Error><Code>InvalidAction</Code>"},
		{asgVersion, "<Code>InvalidAction</Code>"},
	} {
		resp, err := http.PostForm(f.url, url.Values{"Action": {"RebootEverything"}, "Version": {tc.version}})
		mustOK(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), tc.want) {
			t.Fatalf("version %s: status %d body %s", tc.version, resp.StatusCode, body)
		}
	}
	if n := len(f.sim.Calls()); n != 0 {
		t.Fatalf("unknown action logged %d calls", n)
	}
}

package vpcsim

import (
	"fmt"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	astypes "github.com/aws/aws-sdk-go-v2/service/autoscaling/types"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// crowd adds n instances (each with its ENI) to public-a, tagged with the cluster when tagged,
// and n route tables, and returns the instance and table IDs.
func crowd(f *fixture, n int, tagged bool) (insts, tables []string) {
	for i := range n {
		tags := map[string]string{"Name": fmt.Sprintf("extra-%d", i)}
		if tagged {
			tags["headnat:cluster"] = cluster
		}
		id, _ := f.sim.AddInstance(InstanceSpec{SubnetID: f.pubA, Tags: tags})
		insts = append(insts, id)
		tables = append(tables, f.sim.AddRouteTable(f.vpc, tags))
	}
	return insts, tables
}

func instanceIDs(out *ec2.DescribeInstancesOutput) []string {
	var ids []string
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			ids = append(ids, aws.ToString(in.InstanceId))
		}
	}
	return ids
}

// sameSet reports whether got holds exactly the IDs of want, each once.
func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestPagesFollowMaxResults(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	extra, tables := crowd(f, 11, true)
	all := append([]string{f.natA, f.natB}, extra...)

	var got []string
	pages := 0
	p := ec2.NewDescribeInstancesPaginator(f.ec2, &ec2.DescribeInstancesInput{}, func(o *ec2.DescribeInstancesPaginatorOptions) { o.Limit = 5 })
	for p.HasMorePages() && pages < 20 {
		out, err := p.NextPage(c)
		mustOK(t, err)
		if n := len(instanceIDs(out)); n > 5 {
			t.Fatalf("page of %d instances with MaxResults 5", n)
		}
		got = append(got, instanceIDs(out)...)
		pages++
	}
	if pages != 3 || !sameSet(got, all) {
		t.Fatalf("13 instances by 5: %d pages, %d instances %v, want 3 pages and %v", pages, len(got), got, all)
	}

	// Pages are cut before filters apply: a page may hold fewer than asked, even none, and the
	// paginator must go on to the end.
	var tagged []string
	pages, empty := 0, 0
	tp := ec2.NewDescribeRouteTablesPaginator(f.ec2, &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		filt("tag:Name", "extra-1*"),
	}}, func(o *ec2.DescribeRouteTablesPaginatorOptions) { o.Limit = 5 })
	for tp.HasMorePages() && pages < 20 {
		out, err := tp.NextPage(c)
		mustOK(t, err)
		if len(out.RouteTables) == 0 && out.NextToken != nil {
			empty++
		}
		for _, rt := range out.RouteTables {
			tagged = append(tagged, aws.ToString(rt.RouteTableId))
		}
		pages++
	}
	// 14 tables (main, rtb-a, rtb-b, 11 extra) by 5; extra-1 and extra-10 are the 5th and 14th.
	if want := []string{tables[1], tables[10]}; pages != 3 || empty != 1 || !slices.Equal(tagged, want) {
		t.Fatalf("filtered tables: %d pages (%d empty), got %v, want 3 pages, 1 empty, %v", pages, empty, tagged, want)
	}
}

func TestPageBoundsAndCombinations(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	for _, tc := range []struct {
		name, code string
		call       func() error
	}{
		{"instances below 5", "InvalidParameterValue", func() error {
			_, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(4)})
			return err
		}},
		{"instances above 1000", "InvalidParameterValue", func() error {
			_, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(1001)})
			return err
		}},
		{"route tables above 100", "InvalidParameterValue", func() error {
			_, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{MaxResults: aws.Int32(101)})
			return err
		}},
		{"subnets above 1000", "InvalidParameterValue", func() error {
			_, err := f.ec2.DescribeSubnets(c, &ec2.DescribeSubnetsInput{MaxResults: aws.Int32(1001)})
			return err
		}},
		{"ENIs below 5", "InvalidParameterValue", func() error {
			_, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(3)})
			return err
		}},
		{"instance IDs with MaxResults", "InvalidParameterCombination", func() error {
			_, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{f.natA}, MaxResults: aws.Int32(5)})
			return err
		}},
		{"ENI IDs with MaxResults", "InvalidParameterCombination", func() error {
			_, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{f.eniA}, MaxResults: aws.Int32(5)})
			return err
		}},
		{"forged token", "InvalidNextToken", func() error {
			_, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{NextToken: aws.String("not-a-token")})
			return err
		}},
		{"group records above 100", "ValidationError", func() error {
			_, err := f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(101)})
			return err
		}},
		{"group records below 1", "ValidationError", func() error {
			_, err := f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(0)})
			return err
		}},
		{"instance records above 50", "ValidationError", func() error {
			_, err := f.asg.DescribeAutoScalingInstances(c, &autoscaling.DescribeAutoScalingInstancesInput{MaxRecords: aws.Int32(51)})
			return err
		}},
		{"forged group token", "InvalidNextToken", func() error {
			_, err := f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{NextToken: aws.String("bm9wZQ")})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { wantCode(t, tc.call(), tc.code) })
	}

	// In bounds, and MaxResults with the IDs of actions that allow it.
	_, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{f.rtbA}, MaxResults: aws.Int32(100)})
	mustOK(t, err)
	_, err = f.ec2.DescribeSubnets(c, &ec2.DescribeSubnetsInput{SubnetIds: []string{f.pubA}, MaxResults: aws.Int32(1000)})
	mustOK(t, err)

	// A token is only good for the action that made it.
	extra, _ := crowd(f, 5, false)
	out, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	mustOK(t, err)
	if out.NextToken == nil || len(instanceIDs(out)) != 5 {
		t.Fatalf("7 instances by 5: first page %v, token %v", instanceIDs(out), out.NextToken)
	}
	_, err = f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{NextToken: out.NextToken})
	wantCode(t, err, "InvalidNextToken")
	out, err = f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), NextToken: out.NextToken})
	mustOK(t, err)
	if got := instanceIDs(out); out.NextToken != nil || !slices.Equal(got, extra[3:]) {
		t.Fatalf("second page %v (token %v), want %v and no token", got, out.NextToken, extra[3:])
	}
}

// The Sim's PageSize pages calls that give no MaxResults, except an ID list that MaxResults may
// not go with; DescribeAddresses never pages.
func TestDefaultPageSize(t *testing.T) {
	f := newFixture(t, Options{PageSize: 2})
	c := ctx(t)
	f.sim.AddAddress("203.0.113.12")

	rts, err := f.ec2.DescribeRouteTables(c, &ec2.DescribeRouteTablesInput{})
	mustOK(t, err)
	if len(rts.RouteTables) != 2 || rts.NextToken == nil {
		t.Fatalf("3 tables with PageSize 2: first page %d tables, token %v", len(rts.RouteTables), rts.NextToken)
	}
	subs, err := f.ec2.DescribeSubnets(c, &ec2.DescribeSubnetsInput{SubnetIds: []string{f.pubA, f.pubB, f.prvA}})
	mustOK(t, err)
	if len(subs.Subnets) != 2 || subs.NextToken == nil {
		t.Fatalf("3 subnets by ID with PageSize 2: first page %d, token %v", len(subs.Subnets), subs.NextToken)
	}
	ins, err := f.ec2.DescribeInstances(c, &ec2.DescribeInstancesInput{InstanceIds: []string{f.natA, f.natB}})
	mustOK(t, err)
	if got := instanceIDs(ins); len(got) != 2 || ins.NextToken != nil {
		t.Fatalf("instances by ID are never paged: %v, token %v", got, ins.NextToken)
	}
	ads, err := f.ec2.DescribeAddresses(c, &ec2.DescribeAddressesInput{})
	mustOK(t, err)
	if len(ads.Addresses) != 3 {
		t.Fatalf("DescribeAddresses answered %d of 3 addresses", len(ads.Addresses))
	}
}

// A token names the last item seen: items deleted or added in between neither repeat nor hide
// the rest.
func TestPagesSurviveChanges(t *testing.T) {
	f := newFixture(t, Options{})
	c := ctx(t)
	extra, _ := crowd(f, 6, false)
	out, err := f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(5)})
	mustOK(t, err)
	var first []string
	for _, n := range out.NetworkInterfaces {
		first = append(first, aws.ToString(n.NetworkInterfaceId))
	}
	if len(first) != 5 || out.NextToken == nil {
		t.Fatalf("8 ENIs by 5: %v, token %v", first, out.NextToken)
	}
	// The owner of the page's last ENI terminates (its ENI is deleted); a new instance comes.
	mustOK(t, f.sim.SetInstanceState(extra[2], StateTerminated))
	_, newENI := f.sim.AddInstance(InstanceSpec{SubnetID: f.pubB})
	var rest []string
	for tok := out.NextToken; tok != nil; tok = out.NextToken {
		out, err = f.ec2.DescribeNetworkInterfaces(c, &ec2.DescribeNetworkInterfacesInput{MaxResults: aws.Int32(5), NextToken: tok})
		mustOK(t, err)
		for _, n := range out.NetworkInterfaces {
			rest = append(rest, aws.ToString(n.NetworkInterfaceId))
		}
		if len(rest) > 20 {
			t.Fatal("paging does not end")
		}
	}
	var want []string
	for _, id := range extra[3:] {
		v, _ := f.sim.Instance(id)
		want = append(want, v.ENI)
	}
	want = append(want, newENI)
	if !slices.Equal(rest, want) {
		t.Fatalf("after the first page: %v, want %v", rest, want)
	}
}

func TestAutoScalingPages(t *testing.T) {
	f := newFixture(t, Options{PageSize: 2})
	c := ctx(t)
	extra, _ := crowd(f, 4, false)
	f.sim.AddAutoScalingGroup(GroupSpec{Name: "more", Instances: extra[:3]})
	f.sim.AddAutoScalingGroup(GroupSpec{Name: "empty"})
	f.sim.AddAutoScalingGroup(GroupSpec{Name: "last", Instances: extra[3:]})

	var names []string
	pages := 0
	gp := autoscaling.NewDescribeAutoScalingGroupsPaginator(f.asg, &autoscaling.DescribeAutoScalingGroupsInput{})
	for gp.HasMorePages() && pages < 10 {
		out, err := gp.NextPage(c)
		mustOK(t, err)
		for _, g := range out.AutoScalingGroups {
			names = append(names, aws.ToString(g.AutoScalingGroupName))
		}
		pages++
	}
	if want := []string{"nat", "more", "empty", "last"}; pages != 2 || !slices.Equal(names, want) {
		t.Fatalf("groups by PageSize 2: %d pages, %v; want 2 pages, %v", pages, names, want)
	}

	// Filters apply before the page is cut: full pages.
	out, err := f.asg.DescribeAutoScalingGroups(c, &autoscaling.DescribeAutoScalingGroupsInput{MaxRecords: aws.Int32(1),
		Filters: []astypes.Filter{{Name: aws.String("tag-key"), Values: []string{"headnat:cluster"}}}})
	mustOK(t, err)
	if len(out.AutoScalingGroups) != 1 || out.NextToken != nil {
		t.Fatalf("one tagged group by 1: %+v, token %v", out.AutoScalingGroups, out.NextToken)
	}

	members := map[string]string{}
	pages = 0
	ip := autoscaling.NewDescribeAutoScalingInstancesPaginator(f.asg, &autoscaling.DescribeAutoScalingInstancesInput{MaxRecords: aws.Int32(3)})
	for ip.HasMorePages() && pages < 10 {
		out, err := ip.NextPage(c)
		mustOK(t, err)
		if len(out.AutoScalingInstances) > 3 {
			t.Fatalf("page of %d with MaxRecords 3", len(out.AutoScalingInstances))
		}
		for _, in := range out.AutoScalingInstances {
			id := aws.ToString(in.InstanceId)
			if members[id] != "" {
				t.Fatalf("%s listed twice", id)
			}
			members[id] = aws.ToString(in.AutoScalingGroupName) + " " + aws.ToString(in.LifecycleState) + " " + aws.ToString(in.HealthStatus)
		}
		pages++
	}
	want := map[string]string{f.natA: "nat", f.natB: "nat", extra[0]: "more", extra[1]: "more", extra[2]: "more", extra[3]: "last"}
	if pages != 2 || len(members) != len(want) {
		t.Fatalf("6 members by 3: %d pages, %v", pages, members)
	}
	for id, g := range want {
		if members[id] != g+" InService HEALTHY" {
			t.Fatalf("%s: %q, want %q", id, members[id], g+" InService HEALTHY")
		}
	}

	// By ID: unknown instances are ignored, not an error.
	byID, err := f.asg.DescribeAutoScalingInstances(c, &autoscaling.DescribeAutoScalingInstancesInput{
		InstanceIds: []string{extra[3], "i-0123456789abcdef0"}})
	mustOK(t, err)
	if len(byID.AutoScalingInstances) != 1 || aws.ToString(byID.AutoScalingInstances[0].InstanceId) != extra[3] {
		t.Fatalf("by ID: %+v", byID.AutoScalingInstances)
	}
}

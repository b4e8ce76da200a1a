package cloud

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/headnat/headnat/test/vpcsim"
)

// A cluster larger than a page: every describe follows NextToken to the last page, and no
// further.
func TestDescribesFollowEveryPage(t *testing.T) {
	w := newWorld(t)
	s := w.sim
	cluster := map[string]string{TagCluster: testCluster}
	wantInst := []string{w.natA, w.natB}
	for i := range 6 {
		sub := w.pubA
		if i%2 == 1 {
			sub = w.pubB
		}
		id, _ := s.AddInstance(vpcsim.InstanceSpec{SubnetID: sub, Tags: cluster})
		wantInst = append(wantInst, id)
	}
	// Five more managed tables, untagged: their home AZ comes from their subnets' AZs.
	wantHome := map[string]string{w.rtbA: azA, w.rtbB: azB}
	for i := range 5 {
		az := []string{azA, azB}[i%2]
		sub := s.AddSubnet(w.vpc, az, fmt.Sprintf("198.18.%d.0/24", 20+i), nil)
		rtb := s.AddRouteTable(w.vpc, cluster)
		s.Associate(rtb, sub)
		wantHome[rtb] = az
	}
	s.AddAutoScalingGroup(vpcsim.GroupSpec{Name: "nat-a", Instances: []string{w.natA}})
	s.AddAutoScalingGroup(vpcsim.GroupSpec{Name: "nat-b", Instances: []string{w.natB}})
	obs := &recorder{}
	c, _ := w.client(t, obs)
	ctx := context.Background()

	before := map[string]int{}
	for _, a := range []string{"DescribeInstances", "DescribeRouteTables", "DescribeSubnets"} {
		before[a] = s.RequestCount(a)
	}
	cl, err := c.Discover(ctx, testCluster, "test")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	var gotInst []string
	for _, in := range cl.Instances {
		gotInst = append(gotInst, in.ID)
	}
	slices.Sort(wantInst)
	if !slices.Equal(gotInst, wantInst) {
		t.Errorf("instances: got %v, want %v", gotInst, wantInst)
	}
	gotHome := map[string]string{}
	for _, tb := range cl.Tables {
		gotHome[tb.ID] = tb.HomeAZ
	}
	if fmt.Sprint(gotHome) != fmt.Sprint(wantHome) {
		t.Errorf("tables and home AZs: got %v, want %v", gotHome, wantHome)
	}
	// 10 instances, 9 tables (the main one and another cluster's among them) and the 6
	// subnets of untagged tables, by 2: each call reads exactly its pages.
	for action, want := range map[string]int{"DescribeInstances": 5, "DescribeRouteTables": 5, "DescribeSubnets": 3} {
		if got := s.RequestCount(action) - before[action]; got != want {
			t.Errorf("%s: %d requests, want %d pages of %d", action, got, want, worldPageSize)
		}
	}

	for _, in := range []struct{ group, id string }{{"nat-a", w.natA}, {"nat-b", w.natB}} {
		g, err := c.DescribeGroup(ctx, in.group, "test")
		if err != nil || len(g.Instances) != 1 || g.Instances[0].ID != in.id {
			t.Errorf("DescribeGroup(%s) = %+v, %v", in.group, g, err)
		}
	}
	if on, err := c.SourceDestCheck(ctx, w.eniB, "test"); err != nil || !on {
		t.Errorf("SourceDestCheck(%s) = %v, %v", w.eniB, on, err)
	}
	if len(obs.counts()) != 0 {
		t.Errorf("API errors: %v", obs.keys())
	}
}

package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/vpcsim"
)

const (
	worldPageSize = 2
	testRegion    = "eu-west-1"
	testCluster   = "lab"
	azA           = "eu-west-1a"
	azB           = "eu-west-1b"
)

// world is a small VPC in vpcsim: two public subnets with a NAT instance each, two private
// subnets with a managed route table each. Describe answers come in pages of two, so every
// test runs the client's NextToken loops.
type world struct {
	sim              *vpcsim.Sim
	url              string
	vpc              string
	pubA, pubB       string
	prvA, prvB       string
	rtbA, rtbB       string // managed; rtbB carries headnat:az and has no default route
	rtbOther         string // not in the cluster
	natA, natB       string // instance ids
	eniA, eniB       string
	launchA, launchB time.Time
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{sim: vpcsim.New(vpcsim.Options{Region: testRegion, Seed: 42, PageSize: worldPageSize})}
	s := w.sim
	cluster := map[string]string{TagCluster: testCluster}
	w.vpc = s.AddVPC("198.18.0.0/16", nil)
	w.pubA = s.AddSubnet(w.vpc, azA, "198.18.0.0/24", nil)
	w.pubB = s.AddSubnet(w.vpc, azB, "198.18.1.0/24", nil)
	w.prvA = s.AddSubnet(w.vpc, azA, "198.18.10.0/24", nil)
	w.prvB = s.AddSubnet(w.vpc, azB, "198.18.11.0/24", nil)
	w.rtbA = s.AddRouteTable(w.vpc, cluster)
	w.rtbB = s.AddRouteTable(w.vpc, map[string]string{TagCluster: testCluster, TagAZ: azB})
	w.rtbOther = s.AddRouteTable(w.vpc, map[string]string{TagCluster: "other"})
	s.Associate(w.rtbA, w.prvA)
	s.Associate(w.rtbB, w.prvB)
	w.launchA = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	w.launchB = w.launchA.Add(time.Hour)
	w.natA, w.eniA = s.AddInstance(vpcsim.InstanceSpec{SubnetID: w.pubA, PrivateIP: "198.18.0.10", Tags: cluster, LaunchTime: w.launchA})
	w.natB, w.eniB = s.AddInstance(vpcsim.InstanceSpec{SubnetID: w.pubB, PrivateIP: "198.18.1.10", Tags: cluster, LaunchTime: w.launchB})
	s.AddInstance(vpcsim.InstanceSpec{SubnetID: w.pubA, Tags: map[string]string{TagCluster: "other"}})
	s.AddInstance(vpcsim.InstanceSpec{SubnetID: w.pubB, Tags: cluster, State: vpcsim.StateStopped})
	if err := s.SetRoute(w.rtbA, DefaultRoute, w.eniA); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

func (w *world) client(t *testing.T, obs Observer) (*Client, *logBuffer) {
	t.Helper()
	log, buf := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, Options{
		Region: testRegion, EC2Endpoint: w.url, ASGEndpoint: w.url, SSMEndpoint: w.url, CloudWatchEndpoint: w.url,
		Credentials: testCreds, Logger: log, Observer: obs,
		ConfirmInterval: 10 * time.Millisecond, LaunchConsistencyWait: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, buf
}

func TestDiscoverCluster(t *testing.T) {
	w := newWorld(t)
	obs := &recorder{}
	c, _ := w.client(t, obs)
	ctx := context.Background()

	cl, err := c.Discover(ctx, testCluster, "test")
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	got := describeCluster(cl)
	want := strings.Join(sortedLines(
		fmt.Sprintf("instance %s running %s %s %s 198.18.0.10 %s", w.natA, azA, w.pubA, w.eniA, w.launchA.Format(time.RFC3339)),
		fmt.Sprintf("instance %s running %s %s %s 198.18.1.10 %s", w.natB, azB, w.pubB, w.eniB, w.launchB.Format(time.RFC3339)),
	), "\n") + "\n" + strings.Join(sortedLines(
		fmt.Sprintf("table %s home=%s subnets=%s target=%s/%s/ state=active", w.rtbA, azA, w.prvA, w.eniA, w.natA),
		fmt.Sprintf("table %s home=%s subnets=%s target=// state=missing", w.rtbB, azB, w.prvB),
	), "\n")
	if got != want {
		t.Errorf("cluster view\n got:\n%s\nwant:\n%s", got, want)
	}

	// A terminated target leaves a blackhole, and the instance leaves the cluster.
	if err := w.sim.SetInstanceState(w.natA, vpcsim.StateTerminated); err != nil {
		t.Fatal(err)
	}
	cl, err = c.Discover(ctx, testCluster, "test")
	if err != nil {
		t.Fatalf("Discover after termination: %v", err)
	}
	if len(cl.Instances) != 1 || cl.Instances[0].ID != w.natB {
		t.Errorf("instances after termination: %s", describeCluster(cl))
	}
	if tb := findTable(cl, w.rtbA); tb == nil || tb.State != RouteBlackhole || tb.Target.ENI != w.eniA {
		t.Errorf("table %s after its target terminated: %+v, want blackhole to %s", w.rtbA, tb, w.eniA)
	}
	if len(obs.counts()) != 0 {
		t.Errorf("API errors on a clean run: %v", obs.keys())
	}
}

func findTable(cl Cluster, id string) *RouteTable {
	for i := range cl.Tables {
		if cl.Tables[i].ID == id {
			return &cl.Tables[i]
		}
	}
	return nil
}

func sortedLines(lines ...string) []string {
	out := append([]string(nil), lines...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func describeCluster(cl Cluster) string {
	var inst, tabs []string
	for _, i := range cl.Instances {
		inst = append(inst, fmt.Sprintf("instance %s %s %s %s %s %s %s", i.ID, i.State, i.AZ, i.SubnetID, i.ENI, i.PrivateIP, i.LaunchTime.UTC().Format(time.RFC3339)))
	}
	for _, t := range cl.Tables {
		tabs = append(tabs, fmt.Sprintf("table %s home=%s subnets=%s target=%s/%s/%s state=%s", t.ID, t.HomeAZ, strings.Join(t.Subnets, ","), t.Target.ENI, t.Target.InstanceID, t.Target.Other, t.State))
	}
	return strings.Join(sortedLines(inst...), "\n") + "\n" + strings.Join(sortedLines(tabs...), "\n")
}

func TestDescribeSelf(t *testing.T) {
	w := newWorld(t)
	w.sim.AddAutoScalingGroup(vpcsim.GroupSpec{Name: "nat-a", MinSize: 1, MaxSize: 1, Instances: []string{w.natA}})
	c, _ := w.client(t, nil)
	ctx := context.Background()

	self, err := c.DescribeSelf(ctx, w.natA)
	if err != nil {
		t.Fatalf("DescribeSelf: %v", err)
	}
	if self.ClusterName != testCluster || self.ASGName != "nat-a" || self.ENI != w.eniA ||
		self.PrivateIP != netip.MustParseAddr("198.18.0.10") || !self.LaunchTime.Equal(w.launchA) {
		t.Errorf("DescribeSelf = %+v", self)
	}
	if name, err := c.ClusterName(ctx, w.natB); err != nil || name != testCluster {
		t.Errorf("ClusterName = %q, %v", name, err)
	}

	untagged, _ := w.sim.AddInstance(vpcsim.InstanceSpec{SubnetID: w.pubA})
	if _, err := c.ClusterName(ctx, untagged); err == nil || !strings.Contains(err.Error(), TagCluster) {
		t.Errorf("ClusterName of an untagged instance: %v, want an error naming %s", err, TagCluster)
	}
	if _, err := c.DescribeSelf(ctx, "i-0ffffffffffffffff"); err == nil {
		t.Error("DescribeSelf of an unknown instance succeeded")
	}
}

func TestHomeAZErrors(t *testing.T) {
	t.Run("no tag and no subnet", func(t *testing.T) {
		w := newWorld(t)
		lone := w.sim.AddRouteTable(w.vpc, map[string]string{TagCluster: testCluster})
		c, _ := w.client(t, nil)
		_, err := c.RouteTables(context.Background(), testCluster, "test")
		if err == nil || !strings.Contains(err.Error(), lone) {
			t.Fatalf("RouteTables = %v, want an error naming %s", err, lone)
		}
	})
	t.Run("subnets in two AZs", func(t *testing.T) {
		w := newWorld(t)
		w.sim.Associate(w.rtbA, w.prvB) // rtbA now serves 1a and 1b, untagged
		c, _ := w.client(t, nil)
		_, err := c.RouteTables(context.Background(), testCluster, "test")
		if err == nil || !strings.Contains(err.Error(), w.rtbA) || !strings.Contains(err.Error(), azB) {
			t.Fatalf("RouteTables = %v, want an error naming %s and both AZs", err, w.rtbA)
		}
	})
	t.Run("the tag settles it", func(t *testing.T) {
		w := newWorld(t)
		w.sim.Associate(w.rtbA, w.prvB)
		if err := w.sim.Tag(w.rtbA, map[string]string{TagAZ: azA}); err != nil {
			t.Fatal(err)
		}
		c, _ := w.client(t, nil)
		tables, err := c.RouteTables(context.Background(), testCluster, "test")
		if err != nil {
			t.Fatal(err)
		}
		if len(tables) != 2 || findTable(Cluster{Tables: tables}, w.rtbA).HomeAZ != azA {
			t.Errorf("tables = %+v", tables)
		}
	})
}

func TestPointRoute(t *testing.T) {
	w := newWorld(t)
	obs := &recorder{}
	c, logs := w.client(t, obs)
	ctx := context.Background()

	check := func(table, eni string) {
		t.Helper()
		r, ok := w.sim.Route(table)
		if !ok || r.NetworkInterfaceID != eni || r.State != vpcsim.RouteActive {
			t.Fatalf("default route of %s = %+v (present %v), want active to %s", table, r, ok, eni)
		}
	}

	// Replace an existing route.
	if err := c.PointRoute(ctx, w.rtbA, w.eniB, "take over: nat-a unhealthy", false); err != nil {
		t.Fatalf("replace: %v", err)
	}
	check(w.rtbA, w.eniB)
	if !strings.Contains(logs.String(), "take over: nat-a unhealthy") || !strings.Contains(logs.String(), "table="+w.rtbA) {
		t.Errorf("route write not logged with its reason and table:\n%s", logs)
	}

	// Replace on a table without default route falls back to CreateRoute.
	if err := c.PointRoute(ctx, w.rtbB, w.eniB, "claim", false); err != nil {
		t.Fatalf("replace on a missing route: %v", err)
	}
	check(w.rtbB, w.eniB)
	if n := w.sim.CountCalls("CreateRoute"); n != 1 {
		t.Errorf("CreateRoute calls = %d, want 1 (fallback)", n)
	}

	// Create on a table whose route someone else made meanwhile replaces nothing: the caller
	// decided on a stale view. Create of a route that already targets the ENI succeeds.
	err := c.PointRoute(ctx, w.rtbB, w.eniA, "claim on a stale view", true)
	if !errors.Is(err, ErrRouteExists) || !strings.Contains(err.Error(), w.eniB) {
		t.Fatalf("create on a route to another ENI: %v, want ErrRouteExists naming %s", err, w.eniB)
	}
	check(w.rtbB, w.eniB)
	if n := w.sim.CountCalls("ReplaceRoute"); n != 1 {
		t.Errorf("ReplaceRoute calls = %d, want 1 (no fallback from CreateRoute)", n)
	}
	if err := c.PointRoute(ctx, w.rtbB, w.eniB, "retried claim", true); err != nil {
		t.Fatalf("create of a route that already targets the ENI: %v", err)
	}
	check(w.rtbB, w.eniB)

	// A bad target is one clear error, and the route is untouched.
	err = c.PointRoute(ctx, w.rtbA, "eni-0ffffffffffffffff", "bad", false)
	if err == nil || ErrorCode(err) != "InvalidNetworkInterfaceID.NotFound" {
		t.Errorf("PointRoute to an unknown ENI: %v (code %q)", err, ErrorCode(err))
	}
	check(w.rtbA, w.eniB)
	if obs.counts()["ReplaceRoute/InvalidNetworkInterfaceID.NotFound"] != 1 {
		t.Errorf("observed errors = %v", obs.counts())
	}
	if err := c.PointRoute(ctx, "", w.eniA, "bad", false); err == nil {
		t.Error("PointRoute accepted an empty table id")
	}
}

// Under 30% throttling and 5xx every route write still lands, and every fault is counted.
func TestPointRouteUnderFaults(t *testing.T) {
	w := newWorld(t)
	obs := &recorder{}
	c, _ := w.client(t, obs)
	ctx := context.Background()
	w.sim.SetFaults(vpcsim.Faults{ThrottleRate: 0.15, ServerErrorRate: 0.15, Seed: 7})

	const writes = 40
	for i := 0; i < writes; i++ {
		eni := w.eniA
		if i%2 == 1 {
			eni = w.eniB
		}
		if err := c.PointRoute(ctx, w.rtbA, eni, fmt.Sprintf("flip %d", i), false); err != nil {
			t.Fatalf("write %d failed under 30%% faults: %v\nobserved: %v", i, err, obs.counts())
		}
		if r, _ := w.sim.Route(w.rtbA); r.NetworkInterfaceID != eni {
			t.Fatalf("write %d: route targets %s, want %s", i, r.NetworkInterfaceID, eni)
		}
	}
	counts := obs.counts()
	faulted := 0
	for _, call := range w.sim.Calls() {
		if call.Faulted {
			faulted++
		}
	}
	total := 0
	for k, n := range counts {
		if !strings.HasPrefix(k, "ReplaceRoute/") {
			t.Errorf("unexpected error kind %s", k)
		}
		total += n
	}
	if faulted == 0 || total != faulted {
		t.Errorf("observed %d errors %v, the simulator injected %d", total, counts, faulted)
	}
	if counts["ReplaceRoute/RequestLimitExceeded"] == 0 {
		t.Errorf("no throttling observed: %v", counts)
	}
}

func TestSourceDestCheck(t *testing.T) {
	w := newWorld(t)
	c, _ := w.client(t, nil)
	ctx := context.Background()
	if !w.sim.SourceDestCheck(w.eniA) {
		t.Fatal("setup: source/dest check should start on")
	}
	if err := c.DisableSourceDestCheck(ctx, w.eniA); err != nil {
		t.Fatalf("DisableSourceDestCheck: %v", err)
	}
	if w.sim.SourceDestCheck(w.eniA) {
		t.Error("source/dest check still on")
	}
	// Already off: confirmed without another write.
	if err := c.DisableSourceDestCheck(ctx, w.eniA); err != nil {
		t.Fatal(err)
	}
	if n := w.sim.CountCalls("ModifyNetworkInterfaceAttribute"); n != 1 {
		t.Errorf("ModifyNetworkInterfaceAttribute calls = %d, want 1", n)
	}

	// When the write never succeeds, the check is not reported off.
	w.sim.SetFaults(vpcsim.Faults{ServerErrorRate: 1, Actions: []string{"ModifyNetworkInterfaceAttribute"}})
	err := c.DisableSourceDestCheck(ctx, w.eniB)
	if err == nil {
		t.Fatal("DisableSourceDestCheck succeeded while every write failed")
	}
	if !w.sim.SourceDestCheck(w.eniB) {
		t.Error("source/dest check of eniB changed")
	}
}

// SourceDestCheckOff finds its own ENI through IMDS (the real metadata mock) and confirms
// through EC2 (the simulator).
func TestSourceDestCheckOffFromIdentity(t *testing.T) {
	w := newWorld(t)
	v := identityValues()
	v["instance-id"] = w.natA
	v["mac-network-interface-id"] = w.eniA
	v["local-ipv4"] = "198.18.0.10"
	v["mac-subnet-id"] = w.pubA
	v["mac-vpc-id"] = w.vpc
	v["mac-vpc-ipv4-cidr-blocks"] = "198.18.0.0/16"
	imdsURL := startMetadataMock(t, v, quietFlags...)

	log, _ := testLogger(t)
	c, err := New(context.Background(), Options{
		EC2Endpoint: w.url, ASGEndpoint: w.url, IMDSEndpoint: imdsURL,
		Credentials: testCreds, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SourceDestCheckOff(context.Background()); err != nil {
		t.Fatalf("SourceDestCheckOff: %v", err)
	}
	if w.sim.SourceDestCheck(w.eniA) {
		t.Error("source/dest check of the instance's own ENI still on")
	}
	if !w.sim.SourceDestCheck(w.eniB) {
		t.Error("another instance's ENI was changed")
	}
}

func TestLifecycle(t *testing.T) {
	w := newWorld(t)
	w.sim.AddAutoScalingGroup(vpcsim.GroupSpec{
		Name: "nat-a", MinSize: 1, MaxSize: 2, Instances: []string{w.natA},
		Hooks: []vpcsim.HookSpec{{Name: "drain", HeartbeatTimeout: 5 * time.Minute}},
	})
	obs := &recorder{}
	c, _ := w.client(t, obs)
	ctx := context.Background()

	g, err := c.DescribeGroup(ctx, "nat-a", "test")
	if err != nil {
		t.Fatal(err)
	}
	if g.Min != 1 || g.Max != 2 || g.Desired != 1 || len(g.Instances) != 1 ||
		g.Instances[0].ID != w.natA || g.Instances[0].AZ != azA || g.Instances[0].LifecycleState != "InService" {
		t.Errorf("group = %+v", g)
	}

	token, err := w.sim.StartLifecycleAction("nat-a", w.natA, "drain")
	if err != nil {
		t.Fatal(err)
	}
	a := LifecycleAction{Group: "nat-a", Hook: "drain", InstanceID: w.natA}
	if err := c.RecordLifecycleActionHeartbeat(ctx, a, "draining"); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if g, _ := c.DescribeGroup(ctx, "nat-a", "test"); len(g.Instances) != 1 || g.Instances[0].LifecycleState != "Terminating:Wait" {
		t.Errorf("group during drain = %+v", g)
	}
	if err := c.CompleteLifecycleAction(ctx, a, LifecycleContinue, "drained"); err != nil {
		t.Fatalf("complete: %v", err)
	}
	view, _ := w.sim.LifecycleAction(token)
	if view.Heartbeats != 1 || !view.Completed || view.Result != "CONTINUE" {
		t.Errorf("lifecycle action = %+v", view)
	}

	// Completing again: no action left. One clear error, counted.
	err = c.CompleteLifecycleAction(ctx, a, LifecycleContinue, "again")
	if err == nil || ErrorCode(err) != "ValidationError" {
		t.Errorf("second completion: %v", err)
	}
	if obs.counts()["CompleteLifecycleAction/ValidationError"] != 1 {
		t.Errorf("observed = %v", obs.counts())
	}
	if err := c.CompleteLifecycleAction(ctx, a, "MAYBE", "bad"); err == nil {
		t.Error("accepted result MAYBE")
	}
	if _, err := c.DescribeGroup(ctx, "nope", "test"); err == nil {
		t.Error("DescribeGroup of an unknown group succeeded")
	}
}

// A stalled service: every call ends within its timeout with a timeout error.
func TestCallTimeout(t *testing.T) {
	w := newWorld(t)
	obs := &recorder{}
	log, _ := testLogger(t)
	c, err := New(context.Background(), Options{
		Region: testRegion, EC2Endpoint: w.url, Credentials: testCreds, Logger: log, Observer: obs,
		Timeouts: Timeouts{Mutate: 300 * time.Millisecond, Attempt: 100 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.sim.SetFaults(vpcsim.Faults{Latency: 5 * time.Second, Actions: []string{"ReplaceRoute"}})
	done := make(chan error, 1)
	go func() { done <- c.PointRoute(context.Background(), w.rtbA, w.eniB, "stalled", false) }()
	select {
	case err = <-done:
	case <-time.After(4 * time.Second):
		t.Fatal("PointRoute did not honour its timeout")
	}
	if err == nil {
		t.Fatal("PointRoute succeeded against a stalled service")
	}
	if !errors.Is(err, context.DeadlineExceeded) && ErrorCode(err) != "timeout" {
		t.Errorf("error %v (code %q) is not a timeout", err, ErrorCode(err))
	}
	if obs.counts()["ReplaceRoute/timeout"] == 0 {
		t.Errorf("timeouts not observed: %v", obs.counts())
	}
	// Whether a timed-out write landed is unknown, as in AWS: the agent re-reads the table.
}

// Right after launch EC2 may not describe the instance yet: DescribeSelf re-reads until it
// does, within LaunchConsistencyWait; an instance that never appears is still an error.
func TestDescribeSelfWaitsForEventualConsistency(t *testing.T) {
	sim := vpcsim.New(vpcsim.Options{Region: testRegion, Seed: 3, Staleness: 800 * time.Millisecond})
	vpc := sim.AddVPC("198.18.0.0/16", nil)
	sub := sim.AddSubnet(vpc, azA, "198.18.0.0/24", nil)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c, err := New(context.Background(), Options{Region: testRegion, EC2Endpoint: srv.URL, Credentials: testCreds,
		ConfirmInterval: 50 * time.Millisecond, LaunchConsistencyWait: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := sim.AddInstance(vpcsim.InstanceSpec{SubnetID: sub, Tags: map[string]string{TagCluster: testCluster}})
	self, err := c.DescribeSelf(context.Background(), id)
	if err != nil || self.ID != id || self.ClusterName != testCluster {
		t.Fatalf("DescribeSelf of a new instance: %+v, %v", self, err)
	}
	c.o.LaunchConsistencyWait = 300 * time.Millisecond
	start := time.Now()
	if _, err := c.DescribeSelf(context.Background(), "i-0123456789abcdef0"); ErrorCode(err) != "InvalidInstanceID.NotFound" {
		t.Fatalf("DescribeSelf of an unknown instance: %v", err)
	} else if time.Since(start) > 3*time.Second {
		t.Fatalf("gave up only after %s", time.Since(start))
	}
}

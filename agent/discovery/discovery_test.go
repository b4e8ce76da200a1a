package discovery

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
)

// fakeCloud answers from fixed values and records the cluster asked for.
type fakeCloud struct {
	id       cloud.Identity
	idErr    error
	self     cloud.Self
	clusters map[string]cloud.Cluster
	asked    []string
}

func (f *fakeCloud) ReadIdentity(context.Context) (cloud.Identity, error) { return f.id, f.idErr }

func (f *fakeCloud) DescribeSelf(_ context.Context, id string) (cloud.Self, error) {
	if id != f.self.ID {
		return cloud.Self{}, errors.New("no such instance " + id)
	}
	return f.self, nil
}

func (f *fakeCloud) Discover(_ context.Context, name, _ string) (cloud.Cluster, error) {
	f.asked = append(f.asked, name)
	c := f.clusters[name]
	c.Name = name
	return c, nil
}

var vpc = netip.MustParsePrefix("198.18.0.0/16")

// newFake: instance i-a in us-east-1a tagged cluster "test", whose cluster has two tables and
// one other member.
func newFake() *fakeCloud {
	self := cloud.Instance{ID: "i-a", AZ: "us-east-1a", ENI: "eni-a"}
	return &fakeCloud{
		id:   cloud.Identity{InstanceID: "i-a", AZ: "us-east-1a", ENI: "eni-a", VPCCIDRs: []netip.Prefix{vpc}},
		self: cloud.Self{Instance: self, ClusterName: "test"},
		clusters: map[string]cloud.Cluster{"test": {
			Instances: []cloud.Instance{{ID: "i-b", AZ: "us-east-1b"}},
			Tables:    []cloud.RouteTable{{ID: "rtb-a", HomeAZ: "us-east-1a"}, {ID: "rtb-b", HomeAZ: "us-east-1b"}},
		}},
	}
}

func testConfig() config.Config {
	cfg := config.Default()
	cfg.Listen = ":7070"
	return cfg
}

// GIVEN an instance tagged with its cluster and no cluster configured WHEN resolved THEN the
// tag names the cluster, every tagged table is managed, the instance is a member even before
// EC2 lists it, and the data plane covers the VPC from IMDS.
func TestResolveFromTags(t *testing.T) {
	f := newFake()
	r, err := Resolve(context.Background(), testConfig(), f)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.asked, []string{"test"}) || r.Cluster.Name != "test" {
		t.Fatalf("asked for %v, resolved %q: want cluster test", f.asked, r.Cluster.Name)
	}
	if len(r.Cluster.Tables) != 2 {
		t.Errorf("tables %+v, want rtb-a and rtb-b", r.Cluster.Tables)
	}
	if !slices.ContainsFunc(r.Cluster.Instances, func(in cloud.Instance) bool { return in.ID == "i-a" }) ||
		len(r.Cluster.Instances) != 2 {
		t.Errorf("instances %+v, want i-b and this instance i-a", r.Cluster.Instances)
	}
	if !slices.Equal(r.Spec.VPCCIDRs, []netip.Prefix{vpc}) || r.Spec.AgentPort != 7070 || r.Spec.Tailnet != nil {
		t.Errorf("spec %+v: want the VPC CIDR from IMDS, agent port 7070, no tailnet", r.Spec)
	}
	if r.Identity.InstanceID != "i-a" || r.Self.ClusterName != "test" {
		t.Errorf("identity %+v, self %+v", r.Identity, r.Self)
	}
}

// GIVEN configured values WHEN resolved THEN they win over tags and IMDS.
func TestResolveConfiguredWins(t *testing.T) {
	f := newFake()
	f.clusters["other"] = f.clusters["test"]
	cfg := testConfig()
	cfg.Cluster = "other"
	cfg.RouteTables = []string{"rtb-b"}
	own := netip.MustParsePrefix("198.19.0.0/16")
	cfg.VPCCIDRs = []netip.Prefix{own}
	cfg.Tailnet.LoginServer = "https://headscale.example.com"
	r, err := Resolve(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Cluster.Name != "other" || len(r.Cluster.Tables) != 1 || r.Cluster.Tables[0].ID != "rtb-b" {
		t.Errorf("cluster %+v: want other with only rtb-b", r.Cluster)
	}
	if !slices.Equal(r.Spec.VPCCIDRs, []netip.Prefix{own}) {
		t.Errorf("VPC CIDRs %v, want the configured %v", r.Spec.VPCCIDRs, own)
	}
	if r.Spec.Tailnet == nil || r.Spec.Tailnet.Interface != cfg.Tailnet.Interface {
		t.Errorf("tailnet spec %+v, want one on %q", r.Spec.Tailnet, cfg.Tailnet.Interface)
	}
}

// GIVEN bad configuration or an unusable cluster WHEN resolved THEN it fails saying why.
func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*fakeCloud, *config.Config)
		want string
	}{
		{"IMDS fails", func(f *fakeCloud, _ *config.Config) { f.idErr = errors.New("boom") }, "read identity from IMDS: boom"},
		{"no cluster", func(f *fakeCloud, _ *config.Config) { f.self.ClusterName = "" }, "no cluster: instance i-a has no headnat:cluster tag"},
		{"no tables", func(_ *fakeCloud, c *config.Config) { c.Cluster = "empty" }, `cluster "empty": no route tables tagged headnat:cluster=empty`},
		{"untagged table", func(_ *fakeCloud, c *config.Config) { c.RouteTables = []string{"rtb-x"} },
			"route table rtb-x is not tagged headnat:cluster=test (tagged: rtb-a, rtb-b)"},
		{"bad listen", func(_ *fakeCloud, c *config.Config) { c.Listen = "nope" }, `listen "nope"`},
		{"bad port", func(_ *fakeCloud, c *config.Config) { c.Listen = ":70000" }, "port must be 0-65535"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, cfg := newFake(), testConfig()
			tc.mod(f, &cfg)
			_, err := Resolve(context.Background(), cfg, f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// The agent's port is admitted only from configured sources, and an ephemeral port gets none.
func TestListenPort(t *testing.T) {
	for _, tc := range []struct {
		listen  string
		port    int
		sources int
	}{{":7070", 7070, 1}, {"127.0.0.1:0", 0, 0}, {"198.18.0.10:17070", 17070, 1}} {
		cfg := testConfig()
		cfg.Listen = tc.listen
		cfg.AgentSourceCIDRs = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
		r, err := Resolve(context.Background(), cfg, newFake())
		if err != nil {
			t.Fatal(err)
		}
		if r.Spec.AgentPort != tc.port || len(r.Spec.AgentSourceCIDRs) != tc.sources {
			t.Errorf("listen %s: port %d, sources %v; want port %d with %d sources", tc.listen,
				r.Spec.AgentPort, r.Spec.AgentSourceCIDRs, tc.port, tc.sources)
		}
	}
}

// Scope keeps the configured tables in their order and adds this instance once.
func TestScope(t *testing.T) {
	c := cloud.Cluster{Name: "test", Instances: []cloud.Instance{{ID: "i-a"}},
		Tables: []cloud.RouteTable{{ID: "rtb-a"}, {ID: "rtb-b"}, {ID: "rtb-c"}}}
	got, err := Scope(c, []string{"rtb-c", "rtb-a"}, cloud.Instance{ID: "i-a"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Tables) != 2 || got.Tables[0].ID != "rtb-c" || got.Tables[1].ID != "rtb-a" || len(got.Instances) != 1 {
		t.Errorf("scoped %+v: want rtb-c, rtb-a and the one instance", got)
	}
	got, _ = Scope(c, nil, cloud.Instance{ID: "i-new"})
	if len(got.Tables) != 3 || len(got.Instances) != 2 || len(c.Instances) != 1 {
		t.Errorf("scoped %+v (input now %+v): want every table, i-new added to a copy", got, c.Instances)
	}
}

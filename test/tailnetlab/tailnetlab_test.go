package tailnetlab

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/policy"
	"github.com/headnat/headnat/test/netns"
)

func TestMain(m *testing.M) {
	netns.Sweep()
	os.Exit(m.Run())
}

var vpc = netip.MustParsePrefix("198.18.0.0/16")

func testPolicy(t *testing.T) []byte {
	t.Helper()
	b, err := policy.Render(policy.Params{Admins: []string{"admin@"}, VPCCIDRs: []netip.Prefix{vpc}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHarness brings up headscale and two subnet routers with the tailscale CLI, and checks
// the policy's routes are auto-approved with exactly one primary.
func TestHarness(t *testing.T) {
	tn := NewTailnet(t, TailnetOptions{Policy: testPolicy(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := tn.HS.CreateUser(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	key, err := tn.HS.PreAuthKey(ctx, "", []string{"tag:nat"}, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "hskey-") && len(key) < 16 {
		t.Fatalf("odd key length %d", len(key))
	}
	a, b := tn.AddNode(t, "r1"), tn.AddNode(t, "r2")
	for i, n := range []*TNode{a, b} {
		if err := n.TS.Up(ctx, tn.HS.ServerURL, key, []string{"router-1", "router-2"}[i], vpc); err != nil {
			t.Fatal(err)
		}
	}
	nodes := tn.HS.WaitNodes(t, 60*time.Second, "both routers approved with one primary", func(ns []Node) bool {
		primaries := 0
		for _, n := range ns {
			if !slices.Contains(n.Approved, vpc) || !n.Online {
				return false
			}
			if slices.Contains(n.Primary, vpc) {
				primaries++
			}
		}
		return len(ns) == 2 && primaries == 1
	})
	for _, n := range nodes {
		if !slices.Equal(n.Tags, []string{"tag:nat"}) || !n.IPv4().IsValid() {
			t.Errorf("node %+v: want tag:nat and an IPv4", n)
		}
	}
	st, err := a.TS.Status(ctx)
	if err != nil || st.BackendState != "Running" {
		t.Fatalf("status %+v: %v", st, err)
	}
	if err := tn.HS.CheckPolicy(ctx, testPolicy(t)); err != nil {
		t.Errorf("policy check of the rendered policy: %v", err)
	}
	if err := tn.HS.CheckPolicy(ctx, []byte(`{"acls":[{"action":"accept","src":["tag:nope"],"dst":["*:*"]}]}`)); err == nil {
		t.Error("policy check accepted a policy with an undefined tag")
	}
	logs, _ := os.ReadFile(tn.HS.LogPath)
	if strings.Contains(string(logs), key) {
		t.Log("note: headscale's own log contains the pre-auth key")
	}
}

package lab

// Labs with more than one NAT instance in an AZ.

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// waitPeersHealthy waits until the NAT's agent is healthy and sees every other NAT healthy.
func waitPeersHealthy(t *testing.T, l *Lab, site string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	var last api.Status
	if err := waitFor(timeout, func() bool {
		st, err := l.AgentStatus(ctx, site)
		if err != nil || !st.Self.Healthy || len(st.Peers) != len(l.NATs)-1 {
			return false
		}
		last = st
		for _, p := range st.Peers {
			if !p.Healthy {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatalf("nat-%s: not healthy with every peer healthy: %v; last peers %+v", site, err, last.Peers)
	}
}

// Two NATs in AZ a, one in b: each has its own namespace, address, ENI, EIP and agent; the
// oldest in the home AZ serves the table; when it dies, the other NAT of its AZ takes the
// table (not nat-b), and the NATs of one AZ reach each other through the router.
func TestSecondNATOfTheAZTakesOver(t *testing.T) {
	l := ownLab(t, Options{Name: "twoina", NATs: map[string]int{"a": 2}, FailbackAfter: testFailback})
	ctx := context.Background()
	if got := strings.Join(l.NATNames(), ","); got != "a,a2,b" {
		t.Fatalf("NATs %s, want a,a2,b", got)
	}
	a, a2, b := l.MustSite("a"), l.MustSite("a2"), l.MustSite("b")
	if len(l.Sites) != 2 || l.Sites[0] != a || l.Sites[1] != b || l.MustSite("nat-a2") != a2 || l.MustSite("us-east-1a") != a {
		t.Fatalf("sites %v, want a and b; lookups by nat-a2 and zone", l.Sites)
	}
	if a2.AZ != "a" || a2.RouteTable != a.RouteTable || a2.Host != a.Host || a2.NAT == a.NAT ||
		a2.ENI == a.ENI || a2.EIP == a.EIP || a2.NATIP == a.NATIP || !a2.LaunchTime.After(b.LaunchTime) {
		t.Fatalf("nat-a2 %+v\nnat-a %+v", a2, a)
	}
	for _, s := range l.NATs {
		waitPeersHealthy(t, l, s.Name, 60*time.Second)
	}
	if site, _ := l.Target(a.RouteTable); site != a.Name {
		t.Fatalf("private-a targets nat-%s, want nat-a (oldest in its home AZ)", site)
	}
	if hz, code, err := l.Healthz(ctx, a2.Name); err != nil || code != 200 || hz.Instance != a2.InstanceID || hz.AZ != a2.Zone {
		t.Fatalf("nat-a2 /healthz: %d %+v %v", code, hz, err)
	}

	killed := time.Now()
	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, a2.Name, 30*time.Second)
	if err := l.WaitEgress(ctx, a, a2, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range l.MovesSince(killed) {
		if m.Table != a.RouteTable || m.TargetAZ != a2.Name {
			t.Errorf("unexpected move after the kill: %+v", m)
		}
	}
	if site, _ := l.Target(b.RouteTable); site != b.Name {
		t.Fatalf("private-b targets nat-%s, want nat-b", site)
	}

	// Same subnet, still through the router: a partition separates a2 from b and from a.
	if err := l.Revive(a.Name); err != nil {
		t.Fatal(err)
	}
	a.NAT.MustRun(t, "ping", "-c1", "-W2", a2.NATIP)
	if err := l.Partition(); err != nil {
		t.Fatal(err)
	}
	for _, to := range []*Site{a, b} {
		if _, err := a2.NAT.Run("ping", "-c1", "-W1", to.NATIP); err == nil {
			t.Errorf("nat-a2 reaches nat-%s across the partition", to.Name)
		}
	}
}

package lab

// Labs with more than one NAT instance in an AZ.

import (
	"context"
	"slices"
	"strings"
	"syscall"
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
		if err != nil || !st.Self.Healthy || len(st.Peers) != len(l.NATs())-1 {
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
	if len(l.Sites()) != 2 || l.Sites()[0] != a || l.Sites()[1] != b || l.MustSite("nat-a2") != a2 || l.MustSite("us-east-1a") != a {
		t.Fatalf("sites %v, want a and b; lookups by nat-a2 and zone", l.Sites())
	}
	if a2.AZ != "a" || a2.RouteTable != a.RouteTable || a2.Host != a.Host || a2.NAT == a.NAT ||
		a2.ENI == a.ENI || a2.EIP == a.EIP || a2.NATIP == a.NATIP || !a2.LaunchTime.After(b.LaunchTime) {
		t.Fatalf("nat-a2 %+v\nnat-a %+v", a2, a)
	}
	for _, s := range l.NATs() {
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

// issue #6: table private-a (home AZ a: nat-a, the oldest, and nat-a2) points at nat-b in the
// other AZ. nat-a's agent goes down while its host still answers (restarting, as its peers
// see it) and nat-b dies. nat-a2, healthy in the home AZ, must take the table within about a
// second: waiting restart_grace for nat-a leaves the subnet without internet, and nat-a could
// not take the table before it is back anyway.
func TestRestartingHomePeerDoesNotHoldTable(t *testing.T) {
	const grace = 30 * time.Second
	l := ownLab(t, Options{Name: "threenats", NATs: map[string]int{"a": 2, "b": 1}, FailbackAfter: time.Minute,
		AgentEnv: []string{"HEADNAT_PROBE_RESTART_GRACE=" + grace.String()}})
	ctx := context.Background()
	a, a2, b := l.MustSite("a"), l.MustSite("a2"), l.MustSite("b")
	for _, s := range l.NATs() {
		waitPeersHealthy(t, l, s.Name, 60*time.Second)
	}

	// Point private-a at nat-b, and wait until the agents that stay up have seen it.
	if err := l.Sim.SetRoute(a.RouteTable, "0.0.0.0/0", b.ENI); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Site{a2, b} {
		if err := waitFor(15*time.Second, func() bool {
			st, err := l.AgentStatus(ctx, s.Name)
			return err == nil && slices.ContainsFunc(st.Tables, func(tv api.TableStatus) bool {
				return tv.ID == a.RouteTable && tv.TargetENI == b.ENI
			})
		}); err != nil {
			t.Fatalf("nat-%s did not see private-a move to nat-b: %v", s.Name, err)
		}
	}
	if err := l.WaitEgress(ctx, a, b, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// nat-a's agent down, its host up: its port refuses connections. Then nat-b dies.
	if err := l.StopAgent(a.Name, syscall.SIGKILL, 0); err != nil {
		t.Fatal(err)
	}
	// Before Kill: it returns once nat-b's agent and tailscaled are reaped, which on a loaded
	// machine can be after nat-a2 has already seen the link go down and decided.
	dead := time.Now()
	if err := l.Kill(b.Name); err != nil {
		t.Fatal(err)
	}

	reasons := map[string]bool{} // what nat-a2 said about private-a's owner meanwhile
	err := waitFor(grace+10*time.Second, func() bool {
		if st, err := l.AgentStatus(ctx, a2.Name); err == nil {
			for _, tv := range st.Tables {
				if tv.ID == a.RouteTable && tv.PreferredReason != "" {
					reasons[tv.PreferredReason] = true
				}
			}
		}
		site, state := l.Target(a.RouteTable)
		return site == a2.Name && state == "active"
	})
	var seen []string
	for r := range reasons {
		seen = append(seen, r)
	}
	if err != nil {
		t.Fatalf("private-a never moved to nat-a2: %v; nat-a2 said: %q", err, seen)
	}
	moved, err := l.WaitMove(ctx, a.RouteTable, a2.Name, dead, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := moved.Time.Sub(dead)
	if limit := 8 * time.Second; took > limit {
		t.Errorf("nat-a2 took private-a %s after nat-b died, beyond %s (restart_grace %s): it deferred to the restarting nat-a (%s); it said: %q",
			took.Round(time.Millisecond), limit, grace, a.InstanceID, seen)
	}
	st, err := l.AgentStatus(ctx, a2.Name)
	if err != nil {
		t.Fatal(err)
	}
	var takeover bool
	for _, d := range st.Decisions {
		if d.Table != a.RouteTable || d.Time.Before(dead) {
			continue
		}
		takeover = takeover || d.Result == "ok"
		if strings.Contains(d.Reason, "partitioned") {
			t.Errorf("nat-a2's decision calls a peer partitioned; nat-a's agent is down and nat-b is dead: %+v", d)
		}
	}
	if !takeover {
		t.Errorf("no successful decision of nat-a2 for private-a since nat-b died: %+v", st.Decisions)
	}
	if err := l.WaitEgress(ctx, a, a2, 15*time.Second); err != nil {
		t.Fatal(err)
	}
}

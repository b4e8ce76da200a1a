package tailnet

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headnat/headnat/policy"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/tailnetlab"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		netns.Sweep()
	}
	os.Exit(m.Run())
}

// syncBuffer is a log sink shared by a Router and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// natNode is a tailscaled driven by a Router, as the agent drives it.
type natNode struct {
	*tailnetlab.TNode
	id      string
	r       *Router
	logs    *syncBuffer
	desired Desired
	keyN    int
}

func newNAT(t *testing.T, tn *tailnetlab.Tailnet, az, id string, key func() string) *natNode {
	n := &natNode{TNode: tn.AddNode(t, "nat"+az), id: id, logs: &syncBuffer{}}
	n.r = New(NewLocalClient(n.TS.Socket()), slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	n.desired = Desired{
		ControlURL: tn.HS.ServerURL,
		Hostname:   Hostname("us-east-1"+az, id),
		Tags:       []string{"tag:nat"},
		Routes:     []netip.Prefix{vpc},
		SSH:        true,
		AuthKey: func(context.Context) (string, error) {
			n.keyN++
			return key(), nil
		},
	}
	return n
}

func (n *natNode) set(t *testing.T, timeout time.Duration) (State, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return n.r.Set(ctx, n.desired)
}

// waitFor calls Set until ok accepts the state, for up to timeout.
func (n *natNode) waitFor(t *testing.T, timeout time.Duration, what string, ok func(State) bool) State {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, err := n.set(t, 20*time.Second)
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: waiting for %s: state %+v err %v", n.id, what, st, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func hasVPC(ps []netip.Prefix) bool { return slices.Contains(ps, vpc) }

// TestRealHeadscale drives real tailscaled processes with the Router against a real headscale
// server: login with a key, approval and primary election, drift, withdraw, a wrong key, and
// headscale going away.
func TestRealHeadscale(t *testing.T) {
	pol, err := policy.Render(policy.Params{Admins: []string{"admin@"}, VPCCIDRs: []netip.Prefix{vpc}})
	if err != nil {
		t.Fatal(err)
	}
	tn := tailnetlab.NewTailnet(t, tailnetlab.TailnetOptions{Policy: pol})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := tn.HS.CheckPolicy(ctx, pol); err != nil {
		t.Fatalf("headscale policy check: %v", err)
	}
	if _, err := tn.HS.CreateUser(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	natKey, err := tn.HS.PreAuthKey(ctx, "", []string{"tag:nat"}, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	adminKey, err := tn.HS.PreAuthKey(ctx, "admin", nil, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	a := newNAT(t, tn, "a", "i-0aaaaaaaaaaaaaaa1", func() string { return natKey })
	b := newNAT(t, tn, "b", "i-0bbbbbbbbbbbbbbb2", func() string { return natKey })
	adm := tn.AddNode(t, "admin")

	// Login through the Router, each key read once.
	for _, n := range []*natNode{a, b} {
		t0 := time.Now()
		st, err := n.set(t, 60*time.Second)
		if err != nil {
			t.Fatalf("%s: Set: %v\nlog:\n%s", n.id, err, n.logs)
		}
		t.Logf("%s logged in in %s: %+v", n.id, time.Since(t0).Round(time.Millisecond), st)
		if st.Backend != "Running" || !st.IP.Is4() || st.Hostname != n.desired.Hostname || n.keyN != 1 || !st.SSH {
			t.Errorf("%s: state %+v, key read %d times", n.id, st, n.keyN)
		}
	}
	if err := adm.TS.Up(ctx, tn.HS.ServerURL, adminKey, "admin-laptop"); err != nil {
		t.Fatal(err)
	}

	// Both approved, exactly one primary, each sees the other as a NAT peer.
	sa := a.waitFor(t, 30*time.Second, "approved", func(s State) bool { return s.Approved && s.Peers[b.id].IsValid() })
	sb := b.waitFor(t, 30*time.Second, "approved", func(s State) bool { return s.Approved && s.Peers[a.id].IsValid() })
	if hasVPC(sa.Primary) == hasVPC(sb.Primary) {
		t.Fatalf("want exactly one primary: a %+v, b %+v", sa, sb)
	}
	if !slices.Equal(sa.Tags, []string{"tag:nat"}) || sa.Peers[b.id] != sb.IP || sb.Peers[a.id] != sa.IP {
		t.Errorf("tags/peers: a %+v, b %+v", sa, sb)
	}
	nodes := tn.HS.WaitNodes(t, 10*time.Second, "one primary", func(ns []tailnetlab.Node) bool {
		p := 0
		for _, n := range ns {
			if hasVPC(n.Primary) {
				p++
			}
		}
		return p == 1
	})
	for _, n := range nodes {
		if !strings.HasPrefix(n.Name, "nat-") {
			continue
		}
		if !slices.Equal(n.Tags, []string{"tag:nat"}) || !hasVPC(n.Approved) {
			t.Errorf("headscale node %+v: want tag:nat and %s approved", n, vpc)
		}
	}
	primary, standby := a, b
	if hasVPC(sb.Primary) {
		primary, standby = b, a
	}
	t.Logf("primary %s, standby %s", primary.id, standby.id)

	// Nothing drifted: no write, no key read.
	keyN := standby.keyN
	st, err := standby.set(t, 10*time.Second)
	if err != nil || strings.Contains(standby.logs.String(), "re-asserting") || standby.keyN != keyN {
		t.Fatalf("idle Set: %+v %v\n%s", st, err, standby.logs)
	}

	// Drift made with the tailscale CLI is re-asserted by the next Set.
	if _, err := standby.TS.CLI(ctx, "set", "--hostname=drifted", "--advertise-routes=", "--accept-dns=true", "--ssh=false"); err != nil {
		t.Fatal(err)
	}
	st, err = standby.set(t, 20*time.Second)
	if err != nil || st.Hostname != standby.desired.Hostname || !slices.Equal(st.Advertised, []netip.Prefix{vpc}) || !st.SSH {
		t.Errorf("after drift: %+v %v", st, err)
	}
	if out, err := standby.TS.CLI(ctx, "debug", "prefs"); err != nil || !strings.Contains(out, `"RunSSH": true`) {
		t.Errorf("tailscaled's prefs after the SSH drift: %v\n%s", err, out)
	}
	if !strings.Contains(standby.logs.String(), "changed=hostname,routes,accept-dns") || standby.keyN != keyN {
		t.Errorf("drift not re-asserted in one edit, or the key was read:\n%s", standby.logs)
	}
	tn.HS.WaitNodes(t, 20*time.Second, "drifted hostname restored in headscale", func(ns []tailnetlab.Node) bool {
		for _, n := range ns {
			if n.Name == standby.desired.Hostname {
				return hasVPC(n.Approved)
			}
		}
		return false
	})

	// Withdraw moves the primary route to the standby.
	t0 := time.Now()
	if err := primary.r.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	tn.HS.WaitNodes(t, 30*time.Second, "headscale moving the primary route", func(ns []tailnetlab.Node) bool {
		for _, n := range ns {
			if n.Name == standby.desired.Hostname {
				return hasVPC(n.Primary)
			}
		}
		return false
	})
	hsMoved := time.Since(t0)
	standby.waitFor(t, 30*time.Second, "standby sees itself primary", func(s State) bool { return hasVPC(s.Primary) })
	t.Logf("withdraw: headscale moved the primary in %s, the standby saw it in %s", hsMoved.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	// A later Set advertises again; the route stays with the new primary.
	st = primary.waitFor(t, 30*time.Second, "re-advertised and standby", func(s State) bool {
		return slices.Equal(s.Advertised, []netip.Prefix{vpc}) && slices.Equal(s.Standby, []netip.Prefix{vpc}) && s.Approved
	})
	t.Logf("old primary after Set: %+v", st)

	// A wrong key: one clear error, one log line, the key nowhere.
	// Well-formed, but not a key headscale made.
	wrongKey := natKey[:len(natKey)-12] + "000000000000"
	c := newNAT(t, tn, "c", "i-0ccccccccccccccc3", func() string { return wrongKey })
	c.r.LoginWait = 8 * time.Second
	t0 = time.Now()
	var cst State
	for range 3 {
		cst, err = c.set(t, 15*time.Second)
		if err == nil || !cst.Degraded {
			t.Fatalf("wrong key: state %+v err %v", cst, err)
		}
	}
	t.Logf("wrong key: %s after %s: %v", cst.Backend, time.Since(t0).Round(time.Millisecond), err)
	js, _ := json.Marshal(cst)
	for what, s := range map[string]string{"log": c.logs.String(), "state": string(js), "error": err.Error()} {
		if strings.Contains(s, wrongKey) || strings.Contains(s, natKey) {
			t.Errorf("a key leaked into the %s: %s", what, s)
		}
	}
	if !strings.Contains(cst.Error, "login failed: ") {
		t.Errorf("wrong key: error %q does not say headscale refused the login", cst.Error)
	}
	if n := strings.Count(c.logs.String(), "tailnet: degraded"); n != 1 || c.keyN != 1 {
		t.Errorf("%d degraded log lines (want 1), key read %d times (want 1 within LoginRetry):\n%s", n, c.keyN, c.logs)
	}
	for _, f := range []string{tn.HS.LogPath, a.TS.LogPath, b.TS.LogPath, c.TS.LogPath} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte(natKey)) || bytes.Contains(b, []byte(wrongKey)) {
			t.Logf("note: %s holds a key (the daemon's own log, not ours)", f)
		}
	}

	// headscale gone: Set reports degraded within its context.
	tn.HS.Kill()
	t0 = time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = standby.set(t, 3*time.Second)
		if d := time.Since(t0); d > 0 && err == nil && time.Now().After(deadline) {
			t.Fatalf("still not degraded %s after headscale died: %+v", d, st)
		}
		if err != nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("headscale killed: degraded after %s: %v", time.Since(t0).Round(time.Millisecond), err)
	// A login against the dead server is bounded by the context, not LoginWait.
	c.r.LoginRetry, c.r.LoginWait = 0, time.Minute
	t1 := time.Now()
	if _, err := c.set(t, 2*time.Second); err == nil || time.Since(t1) > 4*time.Second {
		t.Errorf("Set with a 2s context took %s (err %v)", time.Since(t1), err)
	} else {
		t.Logf("login with headscale dead: %v after %s", err, time.Since(t1).Round(time.Millisecond))
	}
	if err := tn.HS.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t0 = time.Now()
	standby.waitFor(t, 60*time.Second, "recovery after headscale restart", func(s State) bool { return s.Running() })
	t.Logf("headscale restarted: standby recovered in %s", time.Since(t0).Round(time.Millisecond))
	if !strings.Contains(standby.logs.String(), "tailnet: recovered") {
		t.Errorf("no recovery line:\n%s", standby.logs)
	}
}

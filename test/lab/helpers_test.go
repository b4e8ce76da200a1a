package lab

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
)

// testFailback is the agents' failback_after in the shared lab: short, so that tests are quick,
// long enough to tell "after" from "before".
const testFailback = 5 * time.Second

// shared is one lab with agents for the tests that can share it. Each test resets it first.
var shared struct {
	once sync.Once
	l    *Lab
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		netns.Sweep()
	}
	code := m.Run()
	if shared.l != nil {
		shared.l.Close()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// newLogger logs the lab's own actions to a file in dir.
func newLogger(dir string) *slog.Logger {
	f, err := os.OpenFile(filepath.Join(dir, "lab.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// sharedLab returns the shared lab, built on first use, reset to its starting shape: no faults,
// both instances alive with agents running and healthy, each table pointing home.
func sharedLab(t *testing.T) *Lab {
	t.Helper()
	netns.RequireRoot(t)
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "headnat-lab-e2e-")
		if shared.err != nil {
			return
		}
		shared.l, shared.err = Up(context.Background(), Options{
			Name: "e2e", StateDir: shared.dir, FailbackAfter: testFailback, Logger: newLogger(shared.dir),
		})
	})
	if shared.err != nil {
		t.Fatalf("shared lab: %v%s", shared.err, logTails(shared.dir))
	}
	l := shared.l
	onFailure(t, l)
	if err := resetLab(l); err != nil {
		t.Fatalf("reset the shared lab: %v", err)
	}
	return l
}

// ownLab builds a lab for one test, removed when the test ends (ForTest).
func ownLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	return ForTest(t, opts, TestOptions{})
}

// onFailure dumps the agents' logs and the lab's kernel state if the test fails.
func onFailure(t *testing.T, l *Lab) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("lab state at failure:\n%s\nroute moves: %+v%s", l.Dump(), l.Moves(), logTails(l.Dir()))
		}
	})
}

// logTails returns the last lines of every log in dir.
func logTails(dir string) string { return LogTails(dir, 80) }

// resetLab heals faults, revives instances, restarts missing agents and waits (bounded) until
// every agent is healthy and every host egresses through its own AZ's NAT.
func resetLab(l *Lab) error {
	ctx := context.Background()
	l.Sim.SetFaults(vpcsim.Faults{})
	if err := l.Reset(); err != nil {
		return err
	}
	for _, s := range l.NATs() {
		if err := l.WaitHealthz(ctx, s.Name, 60*time.Second, func(_ api.Healthz, code int) bool { return code == 200 }); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(testFailback + 60*time.Second)
	for _, s := range l.Sites() {
		if err := waitFor(time.Until(deadline), func() bool { site, st := l.Target(s.RouteTable); return site == s.Name && st == vpcsim.RouteActive }); err != nil {
			return fmt.Errorf("table private-%s not back home: %w", s.Name, err)
		}
	}
	return l.WaitHome(ctx, time.Until(deadline))
}

// waitFor polls cond every 100ms until it holds or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) error {
	ok, err := Poll(context.Background(), timeout, 100*time.Millisecond, cond)
	if err == nil && !ok {
		err = fmt.Errorf("condition not met within %s", timeout)
	}
	return err
}

// waitTarget waits until table's default route points at site's NAT and is active.
func waitTarget(t *testing.T, l *Lab, table, site string, timeout time.Duration) {
	t.Helper()
	if err := waitFor(timeout, func() bool { s, st := l.Target(table); return s == site && st == vpcsim.RouteActive }); err != nil {
		s, st := l.Target(table)
		t.Fatalf("table %s: default route points at %q (%s), want nat-%s: %v", table, s, st, site, err)
	}
}

// routeWritesSince counts successful ReplaceRoute/CreateRoute calls at or after t.
func routeWritesSince(l *Lab, t time.Time) []vpcsim.Call {
	var out []vpcsim.Call
	for _, c := range l.Sim.Calls() {
		if !c.Time.Before(t) && c.Code == "" && (c.Action == "ReplaceRoute" || c.Action == "CreateRoute") {
			out = append(out, c)
		}
	}
	return out
}

// headnatRules returns the iptables rules (all tables, no counters) in a NAT namespace that
// mention headnat.
func headnatRules(t *testing.T, s *Site) []string {
	t.Helper()
	out := s.NAT.MustRun(t, "iptables-save")
	var rules []string
	table := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "*") {
			table = line
		}
		if strings.Contains(strings.ToUpper(line), "HEADNAT") && !strings.HasPrefix(line, "#") {
			rules = append(rules, table+" "+line)
		}
	}
	return rules
}

package lab

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// TestOptions change ForTest.
type TestOptions struct {
	// Report adds to what a failed test logs (e.g. headscale's node list).
	Report func(l *Lab) string
	// Redact is applied to everything ForTest logs (e.g. to remove an auth key).
	Redact func(string) string
}

// ForTest brings up a lab for one test: named after it unless o.Name is set (labs of parallel
// tests share nothing: every namespace name is unique, every address lives in the lab's own
// namespaces), its state and logs in the test's temporary directory (lab.log for the lab's
// own), removed when the test ends. On failure the test's log gets the lab's state, the route
// moves and the tails of its logs. It skips unless root; as root, missing binaries fail it.
func ForTest(t *testing.T, o Options, to TestOptions) *Lab {
	t.Helper()
	netns.RequireRoot(t)
	redact := to.Redact
	if redact == nil {
		redact = func(s string) string { return s }
	}
	dir := t.TempDir()
	f, err := os.OpenFile(filepath.Join(dir, "lab.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if o.Name == "" {
		o.Name = strings.ToLower(t.Name())
	}
	o.StateDir = dir
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Up(ctx, o)
	if err != nil {
		t.Fatalf("lab: %s", redact(err.Error()+LogTails(dir, 60)))
	}
	t.Logf("lab up in %s", time.Since(start).Round(100*time.Millisecond))
	t.Cleanup(l.Close)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		extra := ""
		if to.Report != nil {
			extra = to.Report(l) + "\n"
		}
		t.Log(redact(extra + "lab state at failure:\n" + l.Dump() + "\nroute moves: " + movesText(l.Moves()) + LogTails(dir, 80)))
	})
	return l
}

func movesText(ms []Move) string {
	var b strings.Builder
	for _, m := range ms {
		b.WriteString("\n  " + m.Time.Format("15:04:05.000") + " " + m.Action + " " + m.Table + " (home " + m.TableAZ + ") -> nat-" + m.TargetAZ)
	}
	return b.String()
}

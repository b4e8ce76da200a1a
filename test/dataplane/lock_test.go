package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/dataplane"
	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
	"golang.org/x/sys/unix"
)

// holdLock takes the host-wide lock as headnat does (the file must still be the one at
// path once locked) and returns its release.
func holdLock(t *testing.T) func() {
	t.Helper()
	path := dataplane.DefaultLockPath
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			fi, ferr := f.Stat()
			pi, perr := os.Stat(path)
			if ferr == nil && perr == nil && os.SameFile(fi, pi) {
				return func() { f.Close() }
			}
		}
		f.Close()
		if time.Now().After(deadline) {
			t.Fatalf("could not take %s within 30s", path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOneLockForTheHost runs alone (not parallel): it holds the host-wide lock.
func TestOneLockForTheHost(t *testing.T) {
	netns.RequireRoot(t)
	l := &lab{Topology: topo.New(t, topo.ModeNAT), state: filepath.Join(t.TempDir(), "a", "dataplane.json")}
	release := holdLock(t)
	released := false
	defer func() {
		if !released {
			release()
		}
	}()

	// An apply with a state path of its own still waits for the lock.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := l.NAT.Cmd(ctx, headnatBin, l.args("apply")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("apply ran while the lock was held (exit %v):\n%s", err, out.String())
	case <-time.After(1500 * time.Millisecond):
	}
	if strings.Contains(rules(t, l.NAT), "HEADNAT") {
		t.Fatal("apply wrote rules while the lock was held")
	}
	release()
	released = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("apply after the lock was released: %v\n%s", err, out.String())
		}
	case <-time.After(45 * time.Second):
		t.Fatal("apply did not finish after the lock was released")
	}
	mustHeadnat(t, l.NAT, l.args("verify")...)

	// Remove deletes the lock file.
	mustHeadnat(t, l.NAT, l.remove()...)
	if _, err := os.Stat(dataplane.DefaultLockPath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lock file after remove: %v", err)
	}
}

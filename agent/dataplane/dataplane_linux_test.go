//go:build linux

package dataplane

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFlockSurvivesRemoveDeletingTheFile: a waiter whose file Remove deleted must lock the
// new file, not hold a lock on the deleted one beside a newcomer.
func TestFlockSurvivesRemoveDeletingTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "dataplane.lock")
	release, err := flock(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan func(bool), 1)
	go func() {
		r, err := flock(path)
		if err != nil {
			t.Error(err)
			r = func(bool) {}
		}
		got <- r
	}()
	select {
	case <-got:
		t.Fatal("a second flock got the lock while it was held")
	case <-time.After(300 * time.Millisecond):
	}
	release(true) // as Remove does
	var waiter func(bool)
	select {
	case waiter = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiter never got the lock")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the waiter holds a lock on a deleted file: %v", err)
	}
	// A newcomer now waits for the waiter: they hold the same file.
	done := make(chan struct{})
	go func() {
		r, err := flock(path)
		if err == nil {
			r(false)
		}
		close(done)
	}()
	select {
	case <-done:
		t.Fatal("a newcomer got the lock beside the waiter")
	case <-time.After(300 * time.Millisecond):
	}
	waiter(true)
	<-done
	if _, err := os.Stat(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

package dataplane

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestOneHostWideLock(t *testing.T) {
	f := newFixture(t)
	var lk FakeLock
	f.dp.deps.Lock = lk.Lock
	f.apply(t)
	f.spec.StatePath = t.TempDir() + "/other.json"
	f.apply(t)
	if _, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath}); err != nil {
		t.Fatal(err)
	}
	want := []string{DefaultLockPath, DefaultLockPath, DefaultLockPath}
	if !slices.Equal(lk.Taken, want) || !slices.Equal(lk.Deleted, []string{DefaultLockPath}) || lk.Held {
		t.Fatalf("locks taken %q, deleted %q, held %t", lk.Taken, lk.Deleted, lk.Held)
	}
	// A lock that cannot be taken stops Apply before any write.
	g := newFixture(t)
	g.dp.deps.Lock = func(string) (func(bool), error) { return nil, errors.New("busy") }
	if _, err := g.dp.Apply(context.Background(), g.spec); err == nil || !strings.Contains(err.Error(), "busy") || g.ipt.Writes != 0 {
		t.Fatalf("Apply = %v with %d writes", err, g.ipt.Writes)
	}
}

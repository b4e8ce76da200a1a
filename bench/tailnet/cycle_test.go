package main

import (
	"testing"
	"time"
)

func TestDistMet(t *testing.T) {
	d := distOf([]time.Duration{300 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond})
	if d.p50 != 200*time.Millisecond || d.max != 300*time.Millisecond || !d.met(time.Second) || d.met(250*time.Millisecond) {
		t.Errorf("distOf = %+v", d)
	}
	if d := distOf([]time.Duration{100 * time.Millisecond, -1}); d.met(time.Second) || d.missing != 1 {
		t.Errorf("a run without recovery must miss the target: %+v", d)
	}
}

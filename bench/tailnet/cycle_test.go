package main

import (
	"errors"
	"testing"
	"time"

	"github.com/headnat/headnat/test/lab"
)

func TestOutageOf(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int, ok bool) lab.Sample {
		s := lab.Sample{Time: t0.Add(time.Duration(ms) * time.Millisecond), Via: "b"}
		if !ok {
			s.Err, s.Via = errors.New("timeout"), ""
		}
		return s
	}
	for _, tt := range []struct {
		name      string
		ss        []lab.Sample
		failed    int
		longest   time.Duration
		recovered bool
	}{
		{"none failed", []lab.Sample{at(0, true), at(100, true)}, 0, 0, true},
		{"two runs, the longer counts", []lab.Sample{at(0, true), at(100, false), at(200, true), at(300, false), at(400, false), at(500, false), at(600, true)}, 4, 300 * time.Millisecond, true},
		{"no recovery runs to the last request", []lab.Sample{at(0, true), at(100, false), at(900, false)}, 2, 800 * time.Millisecond, false},
	} {
		o := outageOf(tt.ss)
		if o.failed != tt.failed || o.longest != tt.longest || o.recovered != tt.recovered || o.requests != len(tt.ss) {
			t.Errorf("%s: %+v, want failed %d, longest %s, recovered %v", tt.name, o, tt.failed, tt.longest, tt.recovered)
		}
	}
}

func TestDistMet(t *testing.T) {
	d := distOf([]time.Duration{300 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond})
	if d.p50 != 200*time.Millisecond || d.max != 300*time.Millisecond || !d.met(time.Second) || d.met(250*time.Millisecond) {
		t.Errorf("distOf = %+v", d)
	}
	if d := distOf([]time.Duration{100 * time.Millisecond, -1}); d.met(time.Second) || d.missing != 1 {
		t.Errorf("a run without recovery must miss the target: %+v", d)
	}
}

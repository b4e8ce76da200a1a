package health

import (
	"testing"
	"time"
)

func TestRiseFall(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	type step struct {
		ok      bool
		healthy bool
		changed bool
	}
	P := func(h, c bool) step { return step{true, h, c} }
	F := func(h, c bool) step { return step{false, h, c} }
	cases := []struct {
		name       string
		rise, fall int
		steps      []step
		sinceStep  int // index of the step whose time Since must report
		decided    bool
	}{
		{"fresh start can't pass yet", 3, 3,
			[]step{P(false, false), P(false, false), P(true, true), P(true, false)}, 2, true},
		{"fresh start failing stays unhealthy, decided after fall", 3, 3,
			[]step{F(false, false), F(false, false), F(false, false), F(false, false)}, 0, true},
		{"fresh start interrupted rise restarts", 3, 3,
			[]step{P(false, false), P(false, false), F(false, false), P(false, false), P(false, false), P(true, true)}, 5, true},
		{"fall after consecutive failures", 2, 3,
			[]step{P(false, false), P(true, true), F(true, false), F(true, false), F(false, true), F(false, false)}, 4, true},
		{"flapping never falls", 1, 3,
			[]step{P(true, true), F(true, false), F(true, false), P(true, false), F(true, false), F(true, false), P(true, false)}, 0, true},
		{"flapping never rises", 3, 1,
			[]step{P(false, false), P(false, false), F(false, false), P(false, false), P(false, false), F(false, false)}, 0, true},
		{"recover after fall needs rise again", 2, 2,
			[]step{P(false, false), P(true, true), F(true, false), F(false, true), P(false, false), P(true, true)}, 5, true},
		{"undecided while only passing short of rise", 3, 3,
			[]step{P(false, false), P(false, false)}, 0, false},
		{"rise and fall of one", 1, 1,
			[]step{P(true, true), F(false, true), P(true, true)}, 2, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := NewRiseFall(tc.rise, tc.fall)
			if r.Healthy() || !r.Since().IsZero() || r.Decided() {
				t.Fatal("fresh counter must be unhealthy, undecided, without Since")
			}
			for i, s := range tc.steps {
				h, c := r.Observe(s.ok, t0.Add(time.Duration(i)*time.Second))
				if h != s.healthy || c != s.changed {
					t.Fatalf("step %d (ok=%v): got healthy=%v changed=%v, want %v %v", i, s.ok, h, c, s.healthy, s.changed)
				}
				if r.Healthy() != h {
					t.Fatalf("step %d: Healthy() disagrees with Observe", i)
				}
			}
			if want := t0.Add(time.Duration(tc.sinceStep) * time.Second); !r.Since().Equal(want) {
				t.Errorf("Since = %v, want %v", r.Since(), want)
			}
			if r.Decided() != tc.decided {
				t.Errorf("Decided = %v, want %v", r.Decided(), tc.decided)
			}
		})
	}
}

func TestRiseFallClampsToOne(t *testing.T) {
	r := NewRiseFall(0, -2)
	if h, c := r.Observe(true, time.Unix(1, 0)); !h || !c {
		t.Fatalf("rise<1 must act as 1: healthy=%v changed=%v", h, c)
	}
	if h, c := r.Observe(false, time.Unix(2, 0)); h || !c {
		t.Fatalf("fall<1 must act as 1: healthy=%v changed=%v", h, c)
	}
}

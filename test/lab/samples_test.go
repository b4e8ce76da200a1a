package lab

import (
	"errors"
	"testing"
	"time"
)

func TestOutageOf(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int, ok bool) Sample {
		s := Sample{Time: t0.Add(time.Duration(ms) * time.Millisecond), Via: "b"}
		if !ok {
			s.Err, s.Via = errors.New("timeout"), ""
		}
		return s
	}
	for _, tt := range []struct {
		name      string
		ss        []Sample
		failed    int
		longest   time.Duration
		recovered bool
	}{
		{"none failed", []Sample{at(0, true), at(100, true)}, 0, 0, true},
		{"two runs, the longer counts", []Sample{at(0, true), at(100, false), at(200, true), at(300, false), at(400, false), at(500, false), at(600, true)}, 4, 300 * time.Millisecond, true},
		{"no recovery runs to the last request", []Sample{at(0, true), at(100, false), at(900, false)}, 2, 800 * time.Millisecond, false},
	} {
		o := OutageOf(tt.ss)
		if o.Failed != tt.failed || o.Longest != tt.longest || o.Recovered != tt.recovered || o.Requests != len(tt.ss) {
			t.Errorf("%s: %+v, want failed %d, longest %s, recovered %v", tt.name, o, tt.failed, tt.longest, tt.recovered)
		}
	}
}

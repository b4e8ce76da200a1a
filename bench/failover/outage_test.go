package main

import (
	"errors"
	"testing"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/test/lab"
)

func TestAnalyse(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	fail := errors.New("timeout")
	s := []lab.Sample{
		// out of order on purpose; host-b is someone else
		{Time: at(100), Site: "a", Err: fail},
		{Time: at(0), Site: "a", Via: "a"},
		{Time: at(50), Site: "a", Err: fail},
		{Time: at(150), Site: "a", Via: "b"},
		{Time: at(60), Site: "b", Err: fail},
		{Time: at(200), Site: "a", Err: fail},
		{Time: at(250), Site: "a", Via: "b"},
		{Time: at(900), Site: "a", Err: fail}, // outside the first window
		{Time: at(950), Site: "a", Err: fail},
	}
	r := analyse(s, "a", "a", t0, at(300))
	if r.Requests != 6 || r.Failed != 3 || r.Episodes != 2 || !r.Recovered || r.ViaOther != 2 {
		t.Fatalf("got %+v", r)
	}
	if r.Outage != 100*time.Millisecond || !r.FirstFail.Equal(at(50)) || !r.FirstOK.Equal(at(150)) {
		t.Fatalf("outage %s from %s to %s, want 100ms from +50ms to +150ms", r.Outage, r.FirstFail, r.FirstOK)
	}
	r = analyse(s, "a", "a", at(160), at(1000))
	if r.Recovered || r.Outage != 50*time.Millisecond || r.Episodes != 2 || r.Failed != 3 {
		t.Fatalf("recovered, then failing again: got %+v", r)
	}
	r = analyse(s, "a", "a", at(800), at(1000))
	if r.Recovered || r.Outage != 50*time.Millisecond || !r.FirstOK.IsZero() {
		t.Fatalf("never recovered: outage runs to the last request; got %+v", r)
	}
	if r := analyse(s, "a", "a", t0, at(50)); r.Failed != 0 || r.Outage != 0 || !r.Recovered {
		t.Fatalf("no failure: got %+v", r)
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Second)
	}
	for p, want := range map[float64]time.Duration{50: 10 * time.Second, 95: 19 * time.Second, 100: 20 * time.Second, 0: time.Second} {
		if got := benchdoc.Percentile(ds, p); got != want {
			t.Errorf("p%v = %s, want %s", p, got, want)
		}
	}
	if benchdoc.Percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

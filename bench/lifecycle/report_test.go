package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/vpcsim"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

// azOfName: the lab's NAT names are the AZ and a number ("a", "a2", "b3").
func azOfName(nat string) string { return strings.TrimRight(nat, "0123456789") }

func TestSummarize(t *testing.T) {
	fail := errors.New("timeout")
	s := []lab.Sample{
		// out of order on purpose, both hosts mixed
		{Time: at(100), Site: "a", Err: fail},
		{Time: at(0), Site: "b", Via: "b"},
		{Time: at(0), Site: "a", Via: "a"},
		{Time: at(50), Site: "a", Err: fail},
		{Time: at(150), Site: "a", Via: "a2"}, // the new NAT of its own AZ
		{Time: at(50), Site: "b", Err: fail},
		{Time: at(200), Site: "a", Via: "b"}, // through the other AZ
		{Time: at(100), Site: "b", Via: "b"},
		{Time: at(150), Site: "b", Err: fail}, // b's last request failed
	}
	// host a: 5 requests, 2 failed, outage 50 → 150 = 100ms, 1 through the other AZ;
	// host b: 4 requests, 2 failed, outages 50 → 100 = 50ms and 150 → 150 (no recovery) = 0.
	got := summarize(s, azOfName)
	want := trafficResult{Requests: 9, Failed: 4, Longest: 100 * time.Millisecond, Recovered: false, OtherAZ: 1}
	if got != want {
		t.Fatalf("summarize = %+v, want %+v", got, want)
	}
	if got := summarize(between(s, at(0), at(50)), azOfName); got != (trafficResult{Requests: 2, Recovered: true}) {
		t.Fatalf("the first 50ms: %+v", got)
	}
	if got := summarize(nil, azOfName); got != (trafficResult{Recovered: true}) {
		t.Fatalf("no samples: %+v", got)
	}
}

func TestDistOf(t *testing.T) {
	d := distOf([]time.Duration{3 * time.Second, time.Second, -1, 2 * time.Second, 4 * time.Second})
	// 4 values: nearest-rank p50 is the 2nd smallest (ceil(0.5*4) = 2).
	if d.n != 4 || d.missing != 1 || d.p50 != 2*time.Second || d.max != 4*time.Second || d.min != time.Second {
		t.Fatalf("distOf = %+v", d)
	}
	if got := d.String(); got != "2.00 s / 4.00 s (1 without)" {
		t.Fatalf("String = %q", got)
	}
	// 3 values: ceil(1.5) = 2nd smallest.
	if d := distOf([]time.Duration{300 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond}); d.p50 != 200*time.Millisecond || d.max != 300*time.Millisecond {
		t.Fatalf("distOf of 3 = %+v", d)
	}
	if d := distOf(nil); d.n != 0 || d.String() != "none" {
		t.Fatalf("distOf(nil) = %+v %q", d, d.String())
	}
}

func TestHookCompleted(t *testing.T) {
	calls := []vpcsim.Call{
		{Time: at(10), Action: "CompleteLifecycleAction", Params: map[string]string{"InstanceId": "i-1", "LifecycleHookName": lab.DrainHook}}, // before since
		{Time: at(20), Action: "CompleteLifecycleAction", Code: "ValidationError", Params: map[string]string{"InstanceId": "i-1", "LifecycleHookName": lab.DrainHook}},
		{Time: at(30), Action: "CompleteLifecycleAction", Params: map[string]string{"InstanceId": "i-1", "LifecycleHookName": lab.LaunchHook}},
		{Time: at(40), Action: "RecordLifecycleActionHeartbeat", Params: map[string]string{"InstanceId": "i-1", "LifecycleHookName": lab.DrainHook}},
		{Time: at(50), Action: "CompleteLifecycleAction", Params: map[string]string{"InstanceId": "i-2", "LifecycleHookName": lab.DrainHook}},
		{Time: at(60), Action: "CompleteLifecycleAction", Params: map[string]string{"InstanceId": "i-1", "LifecycleHookName": lab.DrainHook}},
	}
	if got, ok := hookCompleted(calls, "i-1", lab.DrainHook, at(15)); !ok || !got.Equal(at(60)) {
		t.Fatalf("terminate hook of i-1: %v %v, want +60ms", got, ok)
	}
	if got, ok := hookCompleted(calls, "i-1", lab.LaunchHook, t0); !ok || !got.Equal(at(30)) {
		t.Fatalf("launch hook of i-1: %v %v, want +30ms", got, ok)
	}
	if _, ok := hookCompleted(calls, "i-3", lab.DrainHook, t0); ok {
		t.Fatal("found a completion for an instance that made none")
	}
}

// fixture: two refreshes of two NATs each and two spot interruptions, one without a move.
func fixture() *report {
	sec := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
	return &report{
		cfg:      &config{interval: 50 * time.Millisecond, spotDelay: 20 * time.Second},
		args:     []string{"-refreshes", "2", "-spots", "2", "-out", ""},
		agentCfg: api.ConfigSummary{ProbeInterval: api.Duration(200 * time.Millisecond), FailbackAfter: api.Duration(5 * time.Second)},
		refreshes: []refreshResult{
			{N: 1, Traffic: trafficResult{Requests: 600, Recovered: true}, Duration: sec(20), Replaced: []replacement{
				{Old: "a", New: "a2", AZ: "a", InService: sec(4), HandOver: sec(1.5), Gone: sec(2)},
				{Old: "b", New: "b2", AZ: "b", InService: sec(3), HandOver: sec(1.2), Gone: sec(1.8)}}},
			{N: 2, Traffic: trafficResult{Requests: 580, Failed: 2, Longest: 100 * time.Millisecond, Recovered: true, OtherAZ: 3}, Duration: sec(21), Replaced: []replacement{
				{Old: "a2", New: "a3", AZ: "a", InService: sec(5), HandOver: sec(1.1), Gone: sec(2.5)},
				{Old: "b2", New: "b3", AZ: "b", InService: sec(6), HandOver: -1, Gone: sec(2.2)}},
				Notes: []string{"no write of AZ b's table to nat-b3"},
				Extra: []lab.Move{{Time: at(0), Action: "ReplaceRoute", TableAZ: "a2", TargetAZ: "b2"}}},
		},
		spots: []spotResult{
			{N: 1, NAT: "a3", AZ: "a", To: "b3", Relaunched: "a4", NoticeCall: sec(0.2), Moved: sec(1.4), Margin: sec(18), InService: sec(4), Home: sec(5.5),
				Interrupt: trafficResult{Requests: 900, Recovered: true}, Failback: trafficResult{Requests: 500, Failed: 1, Longest: 50 * time.Millisecond, Recovered: true}},
			{N: 2, NAT: "b3", AZ: "b", To: "a4", Relaunched: "b4", NoticeCall: sec(0.3), Moved: -1, Margin: 0, InService: sec(3), Home: sec(6),
				Interrupt: trafficResult{Requests: 880, Failed: 40, Longest: 2 * time.Second, Recovered: true}, Failback: trafficResult{Requests: 520, Recovered: true}},
		},
	}
}

func TestStats(t *testing.T) {
	r := fixture()
	rs := statsOfRefreshes(r.refreshes)
	// launch → InService 3, 4, 5, 6 s: p50 the 2nd = 4 s; hand-over 1.1, 1.2, 1.5 s (one none): p50 1.2 s.
	if rs.replaced != 4 || rs.extra != 1 || rs.traffic != (trafficResult{Requests: 1180, Failed: 2, Longest: 100 * time.Millisecond, Recovered: true, OtherAZ: 3}) ||
		rs.inService.p50 != 4*time.Second || rs.inService.max != 6*time.Second ||
		rs.handOver.p50 != 1200*time.Millisecond || rs.handOver.max != 1500*time.Millisecond || rs.handOver.missing != 1 ||
		rs.gone.p50 != 2*time.Second || rs.gone.max != 2500*time.Millisecond {
		t.Fatalf("refresh stats %+v", rs)
	}
	ss := statsOfSpots(r.spots)
	// The margin counts only the interruption whose table moved.
	if ss.interrupt.Requests != 1780 || ss.interrupt.Failed != 40 || ss.failback.Requests != 1020 || ss.failback.Failed != 1 ||
		ss.moved.n != 1 || ss.moved.missing != 1 || ss.margin.n != 1 || ss.margin.min != 18*time.Second ||
		ss.home.p50 != 5500*time.Millisecond || ss.home.max != 6*time.Second || ss.noticeCall.max != 300*time.Millisecond {
		t.Fatalf("spot stats %+v", ss)
	}
	tot := r.total()
	if tot != (totals{requests: 1180 + 2800, failed: 43, replacements: 6, longest: 2 * time.Second}) {
		t.Fatalf("totals %+v", tot)
	}
	want := "43 of 3980 requests failed across 6 planned replacements (4 NAT instances replaced in 2 instance refreshes; " +
		"2 spot interruptions with the relaunch and fail-back after each); the longest outage of a host was 2000 ms."
	if got := r.claim(); got != want {
		t.Fatalf("claim:\n%s\nwant\n%s", got, want)
	}
}

func TestMarkdown(t *testing.T) {
	r := fixture()
	md := r.markdown()
	for _, want := range []string{
		"<!-- BEGIN bench-lifecycle -->\n",
		"**43 of 3980 requests failed across 6 planned replacements",
		"| failed requests (both hosts, all refreshes) | 2 of 1180 |",
		"| terminate start → route table handed to the new NAT, p50 / max | 1.20 s / 1.50 s (1 without) |",
		"| 2 | b | nat-b2 → nat-b3 | 6000 ms | none | 2200 ms |",
		"- refresh 2: no write of AZ b's table to nat-b3",
		"| route writes besides the hand-overs (listed in the notes) | 1 |",
		"- refresh 2: route write besides the hand-overs: ReplaceRoute of AZ a's table → nat-b2 at 00:00:00.000",
		"| route writes besides the move and the fail-back (listed in the notes) | 0 |",
		"| margin: table moved → interruption, min / p50 | 18.00 s / 18.00 s |",
		"| 2 | nat-b3 | nat-a4 | none | – | 40 of 1400 | 2000 ms | nat-b4 | 3000 ms | 6000 ms |",
		"`go run ./bench/lifecycle -refreshes 2 -spots 2 -out \"\"`",
		"<!-- END bench-lifecycle -->\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
	r.spots = nil
	if md := r.markdown(); strings.Contains(md, "Spot interruptions:") || !strings.Contains(md, "(4 NAT instances replaced in 2 instance refreshes)") {
		t.Errorf("a refresh-only run:\n%s", md)
	}
}

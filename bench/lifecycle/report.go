package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/headnat/headnat/agent/api"
	agentconfig "github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/test/lab"
)

type report struct {
	cfg       *config
	args      []string
	machine   benchdoc.Machine
	loadStart string
	loadEnd   string
	finished  time.Time
	agentCfg  api.ConfigSummary
	refreshes []refreshResult
	spots     []spotResult
}

// dist is p50 (nearest rank) and max of the measured durations; missing counts the runs
// without a value (negative: the event was not recorded).
type dist struct {
	n, missing    int
	min, p50, max time.Duration
}

func distOf(ds []time.Duration) dist {
	var have []time.Duration
	d := dist{}
	for _, x := range ds {
		if x < 0 {
			d.missing++
			continue
		}
		have = append(have, x)
	}
	d.n = len(have)
	d.p50, d.max = benchdoc.Percentile(have, 50), benchdoc.Percentile(have, 100)
	if len(have) > 0 {
		d.min = slices.Min(have)
	}
	return d
}

// String is "p50 / max" in seconds, with the runs that had no value.
func (d dist) String() string {
	if d.n == 0 {
		return "none"
	}
	s := fmt.Sprintf("%s / %s", benchdoc.Secs(d.p50), benchdoc.Secs(d.max))
	if d.missing > 0 {
		s += fmt.Sprintf(" (%d without)", d.missing)
	}
	return s
}

// refreshStats are the instance refreshes' totals.
type refreshStats struct {
	traffic                   trafficResult
	replaced, extra           int
	inService, handOver, gone dist
}

func statsOfRefreshes(rs []refreshResult) refreshStats {
	s := refreshStats{traffic: trafficResult{Recovered: true}}
	var in, ho, gone []time.Duration
	for _, r := range rs {
		s.traffic = s.traffic.add(r.Traffic)
		s.replaced += len(r.Replaced)
		s.extra += len(r.Extra)
		for _, x := range r.Replaced {
			in, ho, gone = append(in, x.InService), append(ho, x.HandOver), append(gone, x.Gone)
		}
	}
	s.inService, s.handOver, s.gone = distOf(in), distOf(ho), distOf(gone)
	return s
}

// spotStats are the spot interruptions' totals.
type spotStats struct {
	interrupt, failback                  trafficResult
	moved, noticeCall, margin, inService dist
	home                                 dist
	extra                                int
}

func statsOfSpots(ss []spotResult) spotStats {
	s := spotStats{interrupt: trafficResult{Recovered: true}, failback: trafficResult{Recovered: true}}
	var moved, call, margin, in, home []time.Duration
	for _, x := range ss {
		s.interrupt = s.interrupt.add(x.Interrupt)
		s.failback = s.failback.add(x.Failback)
		s.extra += len(x.Extra)
		moved, call, in, home = append(moved, x.Moved), append(call, x.NoticeCall), append(in, x.InService), append(home, x.Home)
		if x.Moved >= 0 {
			margin = append(margin, x.Margin)
		}
	}
	s.moved, s.noticeCall, s.margin, s.inService, s.home = distOf(moved), distOf(call), distOf(margin), distOf(in), distOf(home)
	return s
}

// totals of both parts: requests and failed requests, planned replacements.
type totals struct {
	requests, failed int
	replacements     int // NATs replaced by refreshes plus spot interruptions
	longest          time.Duration
}

func (r *report) total() totals {
	rs, ss := statsOfRefreshes(r.refreshes), statsOfSpots(r.spots)
	t := rs.traffic.add(ss.interrupt).add(ss.failback)
	return totals{requests: t.Requests, failed: t.Failed, replacements: rs.replaced + len(r.spots), longest: t.Longest}
}

// claim is the sentence that says what the run shows.
func (r *report) claim() string {
	t := r.total()
	var parts []string
	if len(r.refreshes) > 0 {
		parts = append(parts, fmt.Sprintf("%d NAT instances replaced in %d instance %s", statsOfRefreshes(r.refreshes).replaced,
			len(r.refreshes), plural(len(r.refreshes), "refresh", "refreshes")))
	}
	if len(r.spots) > 0 {
		parts = append(parts, fmt.Sprintf("%d spot %s with the relaunch and fail-back after each",
			len(r.spots), plural(len(r.spots), "interruption", "interruptions")))
	}
	s := fmt.Sprintf("%d of %d requests failed across %d planned %s (%s)", t.failed, t.requests, t.replacements,
		plural(t.replacements, "replacement", "replacements"), strings.Join(parts, "; "))
	if t.failed > 0 {
		s += fmt.Sprintf("; the longest outage of a host was %s", benchdoc.Ms(t.longest))
	}
	return s + "."
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// outage is a window's longest outage, marked when a host had not recovered at its end.
func outage(t trafficResult) string {
	if !t.Recovered {
		return "≥ " + benchdoc.Ms(t.Longest) + " (no recovery)"
	}
	return benchdoc.Ms(t.Longest)
}

// summary is the short text printed at the end of a run.
func (r *report) summary() string {
	var b strings.Builder
	if len(r.refreshes) > 0 {
		s := statsOfRefreshes(r.refreshes)
		fmt.Fprintf(&b, "%d instance %s, %d NATs replaced: %d of %d requests failed, longest outage %s; launch → InService %s, terminate → hand-over %s, terminate → terminated %s (p50 / max)\n",
			len(r.refreshes), plural(len(r.refreshes), "refresh", "refreshes"), s.replaced, s.traffic.Failed, s.traffic.Requests, outage(s.traffic), s.inService, s.handOver, s.gone)
	}
	if len(r.spots) > 0 {
		s := statsOfSpots(r.spots)
		t := s.interrupt.add(s.failback)
		fmt.Fprintf(&b, "%d spot %s: %d of %d requests failed, longest outage %s; notice → table moved %s (p50 / max), margin to the interruption min %s\n",
			len(r.spots), plural(len(r.spots), "interruption", "interruptions"), t.Failed, t.Requests, outage(t), s.moved, benchdoc.Secs(s.margin.min))
	}
	fmt.Fprintln(&b, r.claim())
	return b.String()
}

// markdown is the section of docs/BENCHMARKS.md, markers included.
func (r *report) markdown() string {
	begin, end := benchdoc.Markers(benchName)
	c, def := r.agentCfg, agentconfig.Default()
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Planned replacements: instance refresh and spot interruption\n\n", begin)
	fmt.Fprintf(&b, "Measured %s on %s; load average %s at the start, %s at the end; the run took %s.\n\n",
		r.machine.Started.UTC().Format("2006-01-02"), r.machine, r.loadStart, r.loadEnd, r.finished.Sub(r.machine.Started).Round(time.Second))
	fmt.Fprintf(&b, "**%s**\n\n", r.claim())
	b.WriteString("Lab: `test/lab` on one kernel, the real agents (`bin/headnat agent`, one per NAT instance, each with its own IMDS\n" +
		"mock) against the VPC simulator, whose route writes move the router namespace's kernel routes, and whose Auto\n" +
		"Scaling group has a launch hook (the new agent completes it once its NAT works) and a terminate hook (the old agent\n" +
		"completes it once it has handed its route tables over). Client traffic: each private host starts an HTTP request to\n" +
		fmt.Sprintf("the echo server every %s, each on a fresh TCP connection with a %s timeout (`lab.Traffic`), from before the\n", r.cfg.interval, requestTimeout) +
		"first step of a run until 2 s after the lab is back in its healthy state (every AZ's table on that AZ's NAT, every\n" +
		"agent healthy and seeing the others). An outage is a host's run of failed requests, from the start of the first to\n" +
		fmt.Sprintf("the start of the first successful one after it (`lab.OutageOf`, resolved to the request interval). Each run starts\n"+
			"after a random extra wait (uniform over %s), so that its steps fall at any phase of the agents' polls.\n\n", jitter))
	b.WriteString("- **Instance refresh** (`lab.Refresh`'s steps, each timed): every NAT instance, one at a time, is replaced: a new\n" +
		"  instance is launched in its AZ and waits in Pending:Wait until its agent completes the launch hook (InService);\n" +
		"  then the old one is terminated through the terminate hook (its IMDS target lifecycle state becomes Terminated);\n" +
		"  its agent drains, its route table moves to the new instance, and the agent completes the hook, on which EC2\n" +
		"  terminates the instance.\n")
	fmt.Fprintf(&b, "- **Spot interruption** (`lab.SpotNotice`), alternately in AZ a and AZ b: the NAT's IMDS serves an interruption\n"+
		"  notice with the interruption %s later (AWS gives 2 minutes), and at that time the lab terminates the instance,\n"+
		"  whatever its agent did. The AZ's table moves to the other AZ's NAT. Then a NAT is launched in the AZ again and\n"+
		"  the run waits until it is InService and the table is back on it (the other AZ's agent fails it back after\n"+
		"  failback_after).\n\n", r.cfg.spotDelay)
	fmt.Fprintf(&b, "Settings (as the agents report them on /status): probe interval %s, timeout %s, rise %d, fall %d; failback_after\n"+
		"%s instead of the default 60s, so that the run is short (it only delays the fail-back to a relaunched NAT).\n"+
		"Lifecycle settings are the defaults: IMDS poll every %s, the group's view every %s, drain_timeout %s.\n\n",
		c.ProbeInterval, c.ProbeTimeout, c.Rise, c.Fall, c.FailbackAfter, def.Lifecycle.PollInterval, def.Lifecycle.GroupPollInterval, def.DrainTimeout)

	if len(r.refreshes) > 0 {
		r.refreshText(&b)
	}
	if len(r.spots) > 0 {
		r.spotText(&b)
	}
	fmt.Fprintf(&b, "Command: `sudo make %s`, which runs `go run ./bench/lifecycle %s`.\n", benchName, benchdoc.ShellJoin(r.args))
	fmt.Fprintf(&b, "%s\n", end)
	return b.String()
}

func (r *report) refreshText(b *strings.Builder) {
	s := statsOfRefreshes(r.refreshes)
	fmt.Fprintf(b, "Instance refreshes: %d, %d NAT instances replaced.\n\n", len(r.refreshes), s.replaced)
	b.WriteString("| measure | result |\n|---|---:|\n")
	fmt.Fprintf(b, "| failed requests (both hosts, all refreshes) | %d of %d |\n", s.traffic.Failed, s.traffic.Requests)
	fmt.Fprintf(b, "| longest outage of a host | %s |\n", outage(s.traffic))
	fmt.Fprintf(b, "| requests that left through the other AZ's NAT | %d |\n", s.traffic.OtherAZ)
	fmt.Fprintf(b, "| launch → InService (launch hook completed by the new agent), p50 / max | %s |\n", s.inService)
	fmt.Fprintf(b, "| terminate start → route table handed to the new NAT, p50 / max | %s |\n", s.handOver)
	fmt.Fprintf(b, "| terminate start → instance terminated (terminate hook completed by the old agent), p50 / max | %s |\n", s.gone)
	fmt.Fprintf(b, "| route writes besides the hand-overs (listed in the notes) | %d |\n\n", s.extra)
	b.WriteString("Launch → InService counts from the instance's launch into the group (its launch hook's start; the lab then starts its\n" +
		"IMDS mock and its agent, as a boot would) to the agent's CompleteLifecycleAction; terminate start is the start of the\n" +
		"terminate hook. The times are the simulator's records of the calls and route writes.\n\n")

	b.WriteString("| refresh | replaced (old → new) | failed | longest outage | through the other AZ | duration |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|\n")
	var notes []string
	for _, x := range r.refreshes {
		var pairs []string
		for _, p := range x.Replaced {
			pairs = append(pairs, fmt.Sprintf("nat-%s → nat-%s", p.Old, p.New))
		}
		fmt.Fprintf(b, "| %d | %s | %d of %d | %s | %d | %s |\n", x.N, strings.Join(pairs, ", "), x.Traffic.Failed, x.Traffic.Requests,
			outage(x.Traffic), x.Traffic.OtherAZ, x.Duration.Round(100*time.Millisecond))
		for _, n := range x.Notes {
			notes = append(notes, fmt.Sprintf("refresh %d: %s", x.N, n))
		}
		for _, m := range x.Extra {
			notes = append(notes, fmt.Sprintf("refresh %d: route write besides the hand-overs: %s", x.N, moveText(m)))
		}
	}
	b.WriteString("\n| refresh | AZ | old → new | launch → InService | terminate → hand-over | terminate → terminated |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|\n")
	for _, x := range r.refreshes {
		for _, p := range x.Replaced {
			fmt.Fprintf(b, "| %d | %s | nat-%s → nat-%s | %s | %s | %s |\n", x.N, p.AZ, p.Old, p.New, benchdoc.Ms(p.InService), benchdoc.Ms(p.HandOver), benchdoc.Ms(p.Gone))
		}
	}
	b.WriteString("\n")
	writeNotes(b, notes)
}

func (r *report) spotText(b *strings.Builder) {
	s := statsOfSpots(r.spots)
	fmt.Fprintf(b, "Spot interruptions: %d, each noticed %s before the interruption.\n\n", len(r.spots), r.cfg.spotDelay)
	b.WriteString("| measure | result |\n|---|---:|\n")
	fmt.Fprintf(b, "| failed requests from the notice to the relaunch (both hosts, all interruptions) | %d of %d |\n", s.interrupt.Failed, s.interrupt.Requests)
	fmt.Fprintf(b, "| failed requests from the relaunch to the end of the fail-back | %d of %d |\n", s.failback.Failed, s.failback.Requests)
	fmt.Fprintf(b, "| longest outage of a host | %s |\n", outage(s.interrupt.add(s.failback)))
	fmt.Fprintf(b, "| notice → route table moved to the other AZ's NAT, p50 / max | %s |\n", s.moved)
	fmt.Fprintf(b, "| of which the lab's IMDS mock restart to serve the notice, p50 / max | %s |\n", s.noticeCall)
	fmt.Fprintf(b, "| margin: table moved → interruption, min / p50 | %s / %s |\n", benchdoc.Secs(s.margin.min), benchdoc.Secs(s.margin.p50))
	fmt.Fprintf(b, "| relaunched NAT: launch → InService, p50 / max | %s |\n", s.inService)
	fmt.Fprintf(b, "| relaunched NAT: InService → its table back (after failback_after %s), p50 / max | %s |\n", r.agentCfg.FailbackAfter, s.home)
	fmt.Fprintf(b, "| route writes besides the move and the fail-back (listed in the notes) | %d |\n\n", s.extra)
	b.WriteString("The notice counts from the start of the `SpotNotice` call, which restarts the NAT's IMDS mock with the notice (on\n" +
		"AWS the notice appears at once); the interruption time is whole seconds, as AWS gives it, so the notice comes up to\n" +
		"1 s less than the delay before it.\n\n")
	b.WriteString("| # | interrupted | table to | notice → moved | margin | failed | longest outage | relaunched | launch → InService | InService → table back |\n")
	b.WriteString("|---:|---|---|---:|---:|---:|---:|---|---:|---:|\n")
	var notes []string
	for _, x := range r.spots {
		t := x.traffic()
		margin := "–"
		if x.Moved >= 0 {
			margin = benchdoc.Ms(x.Margin)
		}
		fmt.Fprintf(b, "| %d | nat-%s | nat-%s | %s | %s | %d of %d | %s | nat-%s | %s | %s |\n", x.N, x.NAT, x.To, benchdoc.Ms(x.Moved), margin,
			t.Failed, t.Requests, outage(t), x.Relaunched, benchdoc.Ms(x.InService), benchdoc.Ms(x.Home))
		for _, n := range x.Notes {
			notes = append(notes, fmt.Sprintf("spot %d: %s", x.N, n))
		}
		for _, m := range x.Extra {
			notes = append(notes, fmt.Sprintf("spot %d: route write besides the move and the fail-back: %s", x.N, moveText(m)))
		}
	}
	b.WriteString("\n")
	writeNotes(b, notes)
}

func writeNotes(b *strings.Builder, notes []string) {
	if len(notes) == 0 {
		return
	}
	b.WriteString("Notes:\n\n")
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	b.WriteString("\n")
}

// moveText describes a route write: the table's AZ and the NAT it was pointed at. A Move names
// the table by its AZ's NAT at the time ("a2"); the lab names NATs after their AZ ("a", "a2").
func moveText(m lab.Move) string {
	return fmt.Sprintf("%s of AZ %s's table → nat-%s at %s", m.Action, strings.TrimRight(m.TableAZ, "0123456789"), m.TargetAZ,
		m.Time.UTC().Format("15:04:05.000"))
}

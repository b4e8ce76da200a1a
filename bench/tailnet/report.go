package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
)

// Targets: every run, not only the typical one.
const (
	targetUnplanned = 5 * time.Second
	targetPlanned   = time.Second
)

type report struct {
	cfg       *config
	args      []string
	machine   benchdoc.Machine
	loadStart string
	loadEnd   string
	finished  time.Time
	main      *labRun
	baseline  *labRun // headscale's default batching; nil if not run
}

// dist is p50, p95 (nearest rank) and max of some durations, and how many of them.
type dist struct {
	n             int
	p50, p95, max time.Duration
	missing       int // runs without a value (no recovery)
}

func distOf(ds []time.Duration) dist {
	d := dist{}
	var have []time.Duration
	for _, x := range ds {
		if x < 0 {
			d.missing++
			continue
		}
		have = append(have, x)
	}
	d.n = len(have)
	d.p50, d.p95, d.max = benchdoc.Percentile(have, 50), benchdoc.Percentile(have, 95), benchdoc.Percentile(have, 100)
	return d
}

func (d dist) String() string {
	s := fmt.Sprintf("%s / %s / %s", benchdoc.Secs(d.p50), benchdoc.Secs(d.p95), benchdoc.Secs(d.max))
	if d.missing > 0 {
		s += fmt.Sprintf(" (%d without recovery)", d.missing)
	}
	return s
}

// met: every run has a value within target.
func (d dist) met(target time.Duration) bool { return d.n > 0 && d.missing == 0 && d.max <= target }

func recoveries(cs []cycle) dist {
	var ds []time.Duration
	for _, c := range cs {
		ds = append(ds, c.Recovery)
	}
	return distOf(ds)
}

func gaps(cs []cycle) dist {
	var ds []time.Duration
	for _, c := range cs {
		ds = append(ds, c.Gap)
	}
	return distOf(ds)
}

func failed(cs []cycle) (failed, requests int) {
	for _, c := range cs {
		failed += c.Failed
		requests += c.Requests
	}
	return failed, requests
}

func exits(cs []cycle) dist {
	var ds []time.Duration
	for _, c := range cs {
		ds = append(ds, c.Exit)
	}
	return distOf(ds)
}

func withdrawnFirst(cs []cycle) int {
	n := 0
	for _, c := range cs {
		if c.Withdrawn {
			n++
		}
	}
	return n
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// summary is the short text printed at the end of a run.
func (r *report) summary() string {
	var b strings.Builder
	m := r.main
	if len(m.Unplanned) > 0 {
		f, n := failed(m.Unplanned)
		d := recoveries(m.Unplanned)
		fmt.Fprintf(&b, "%d unplanned: kill → admin through the other NAT p50/p95/max %s; %d of %d requests failed; target ≤ %s: %s\n",
			len(m.Unplanned), d, f, n, benchdoc.Secs(targetUnplanned), verdict(d.met(targetUnplanned)))
	}
	if len(m.Planned) > 0 {
		f, n := failed(m.Planned)
		d := gaps(m.Planned)
		fmt.Fprintf(&b, "%d planned: longest gap p50/p95/max %s; %d of %d requests failed; target ≤ %s: %s\n",
			len(m.Planned), d, f, n, benchdoc.Secs(targetPlanned), verdict(d.met(targetPlanned)))
	}
	if bl := r.baseline; bl != nil && len(bl.Planned) > 0 {
		f, n := failed(bl.Planned)
		fmt.Fprintf(&b, "%d planned with headscale's default batching: longest gap p50/p95/max %s; %d of %d requests failed\n",
			len(bl.Planned), gaps(bl.Planned), f, n)
	}
	return b.String()
}

// markdown is the section of docs/BENCHMARKS.md, markers included.
func (r *report) markdown() string {
	begin, end := benchdoc.Markers(benchName)
	m := r.main
	a := m.Agent
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Tailnet: the admin's access when the primary subnet router goes away\n\n", begin)
	fmt.Fprintf(&b, "Measured %s on %s; load average %s at the start, %s at the end; the run took %s.\n\n",
		r.machine.Started.UTC().Format("2006-01-02"), r.machine, r.loadStart, r.loadEnd, r.finished.Sub(r.machine.Started).Round(time.Second))
	b.WriteString("Lab: `test/lab` with its tailnet: a real headscale (v0.29.2) in the internet namespace, a real tailscaled\n" +
		"(v1.102.5) on each of the two NAT instances, logged in and kept as a subnet router for the VPC by its agent\n" +
		"(`bin/headnat agent`), and an admin node outside the VPC that accepts the routes. headscale makes one NAT the\n" +
		"primary router of the VPC route; the admin's traffic to the VPC goes through it.\n" +
		fmt.Sprintf("The admin GETs a private host's service (which answers with the address it saw: the VPC address of the NAT that\n"+
			"routed the request) every %s, each request on a fresh TCP connection with a %s timeout (`lab.AdminTraffic`).\n\n", r.cfg.interval, r.cfg.timeout))
	b.WriteString("- **Unplanned**: the primary router's NAT instance dies (`Kill`: its link goes down, its agent is SIGKILLed, its\n" +
		"  tailscaled runs on cut off, as on a powered-off host). Measured: kill → start of the first successful admin\n" +
		"  request through the other NAT. Then the instance is revived (its tailscaled starts afresh, as after a boot).\n" +
		"- **Planned**: the primary router's agent gets SIGTERM (`StopAgent`, as `systemctl stop` or an instance\n" +
		"  refresh would) and drains: it withdraws its tailnet routes first, then hands its route table to the peer, then\n" +
		"  exits. Measured: the admin's longest gap, from the start of the first failed request to the start of the first\n" +
		"  successful one after it (0 when none failed; resolved to the request interval), and the failed requests. Then\n" +
		"  the agent is started again.\n\n" +
		"After each run the benchmark waits until the lab is whole again (both NATs online with their route approved, one\n" +
		"primary router, both agents healthy holding their own route table, the admin reaching both private hosts), the\n" +
		fmt.Sprintf("restored NAT a standby router, then %s more (two headscale probe cycles). The fault comes after a random extra\n", settle) +
		fmt.Sprintf("wait (uniform over %s), so that it falls at any phase of headscale's prober. The primary router alternates between\n", jitter) +
		"the NATs, since headscale does not fail back.\n\n")
	fmt.Fprintf(&b, "Settings: headscale `node.routes.ha.probe_interval` %s, `probe_timeout` %s (the fastest headscale allows), "+
		"`tuning.batch_change_delay` %s, `tuning.node_store_batch_timeout` %s (headscale's defaults: %s, %s). Agents: probe interval %s, "+
		"timeout %s, rise %d, fall %d, refresh (the tailnet is re-asserted on it) from the defaults; failback_after %s (shortened; the tailnet does "+
		"not depend on it).\n\n",
		m.ProbeInterval, m.ProbeTimeout, m.BatchDelay, m.StoreTimeout, defaultBatchChangeDelay, defaultNodeStoreBatchTimeout,
		a.ProbeInterval, a.ProbeTimeout, a.Rise, a.Fall, a.FailbackAfter)

	b.WriteString("| measure | p50 / p95 / max | target |\n|---|---:|---|\n")
	if len(m.Unplanned) > 0 {
		d := recoveries(m.Unplanned)
		f, n := failed(m.Unplanned)
		fmt.Fprintf(&b, "| unplanned, %d runs: kill → first admin request through the other NAT | %s | ≤ %s every run: **%s** |\n",
			len(m.Unplanned), d, benchdoc.Secs(targetUnplanned), verdict(d.met(targetUnplanned)))
		fmt.Fprintf(&b, "| unplanned: longest gap (failed-request window) | %s | |\n", gaps(m.Unplanned))
		fmt.Fprintf(&b, "| unplanned: failed admin requests, all runs | %d of %d | |\n", f, n)
	}
	if len(m.Planned) > 0 {
		d := gaps(m.Planned)
		f, n := failed(m.Planned)
		fmt.Fprintf(&b, "| planned, %d runs: longest gap (failed-request window) | %s | ≤ %s every run: **%s** |\n",
			len(m.Planned), d, benchdoc.Secs(targetPlanned), verdict(d.met(targetPlanned)))
		fmt.Fprintf(&b, "| planned: SIGTERM → first admin request through the other NAT | %s | |\n", recoveries(m.Planned))
		fmt.Fprintf(&b, "| planned: failed admin requests, all runs | %d of %d | |\n", f, n)
		fmt.Fprintf(&b, "| planned: SIGTERM → agent exited | %s | |\n", exits(m.Planned))
		fmt.Fprintf(&b, "| planned: runs whose /healthz said \"withdrawn\" before the agent exited | %d of %d | |\n", withdrawnFirst(m.Planned), len(m.Planned))
	}
	if bl := r.baseline; bl != nil && len(bl.Planned) > 0 {
		f, n := failed(bl.Planned)
		fmt.Fprintf(&b, "| for comparison, planned with headscale's default batching (%s, %s), %d runs in a second lab: longest gap | %s | |\n",
			bl.BatchDelay, bl.StoreTimeout, len(bl.Planned), gaps(bl.Planned))
		fmt.Fprintf(&b, "| the same: SIGTERM → first admin request through the other NAT | %s | |\n", recoveries(bl.Planned))
		fmt.Fprintf(&b, "| the same: failed admin requests | %d of %d | |\n", f, n)
	}
	b.WriteString("\nAnchors: Tailscale documents that subnet-router failover \"can take up to ~15 seconds\" after the primary goes\n" +
		"offline (its high-availability page); in this lab headscale took about 10 s when the primary's tailscaled was\n" +
		"SIGKILLed (`test/tailnetlab` TestMeasureFailover: headscale waits for a reconnect before it calls the node offline).\n\n")

	b.WriteString("What decides the time:\n\n" +
		fmt.Sprintf("- A dead host (unplanned): headscale's HA prober pings the primary every %s and calls it unhealthy when no answer\n", m.ProbeInterval) +
		fmt.Sprintf("  comes within %s, so the move starts up to %s after the death (the probe in flight or the next one times out); then headscale\n", m.ProbeTimeout, m.ProbeInterval+m.ProbeTimeout) +
		"  sends the new primary to the admin in its next map batch (`tuning.batch_change_delay`), and the admin's next new\n" +
		"  connection goes through the other NAT. The agents' own failover of the route tables (under a second) runs beside it\n" +
		"  and does not decide this time.\n" +
		"- A withdrawal (planned): the draining agent withdraws its routes while its NAT still forwards. The old primary's\n" +
		"  tailscaled stops accepting packets for the VPC at once, so the admin's requests fail until it gets the new primary:\n" +
		"  headscale takes the new route set into its node store (`tuning.node_store_batch_timeout`), elects the other NAT and\n" +
		"  sends the change in its next map batch (`tuning.batch_change_delay`). No prober and no timeout is involved.\n" +
		"- A tailscaled SIGKILLed on a host that stays up (not measured here; see the anchor): headscale sees the session\n" +
		"  end and gives the node 10 × 1 s to reconnect before it calls it offline: about 10 s.\n\n" +
		"What the agent does to help: on a planned stop it withdraws the routes first, so headscale moves the primary without\n" +
		"waiting for its prober or for the session to time out, and the route tables move only after that; its NAT keeps\n" +
		"forwarding until the agent exits.\n\n")

	r.perRun(&b)
	fmt.Fprintf(&b, "Command: `sudo make bench-tailnet`, which runs `go run ./bench/tailnet %s`.\n", benchdoc.ShellJoin(r.args))
	fmt.Fprintf(&b, "%s\n", end)
	return b.String()
}

func (r *report) perRun(b *strings.Builder) {
	runs := []*labRun{r.main}
	if r.baseline != nil {
		runs = append(runs, r.baseline)
	}
	b.WriteString("Per run (lab: main = the settings above; baseline = headscale's default batching):\n\n")
	b.WriteString("| lab | # | kind | primary before | → after | fault → admin through it | longest gap | failed | agent exit | withdrawn first |\n")
	b.WriteString("|---|---:|---|---|---|---:|---:|---:|---:|---|\n")
	var notes []string
	for _, run := range runs {
		for _, c := range append(slices.Clone(run.Unplanned), run.Planned...) {
			kind, exit, wd := "unplanned", "–", "–"
			if c.Planned {
				kind, exit, wd = "planned", benchdoc.Ms(c.Exit), strconv.FormatBool(c.Withdrawn)
			}
			fmt.Fprintf(b, "| %s | %d | %s | nat-%s | nat-%s | %s | %s | %d of %d | %s | %s |\n",
				run.Name, c.N, kind, c.From, c.To, benchdoc.Ms(c.Recovery), benchdoc.Ms(c.Gap), c.Failed, c.Requests, exit, wd)
			if c.Note != "" {
				notes = append(notes, fmt.Sprintf("%s %s %d: %s", run.Name, kind, c.N, strings.TrimPrefix(c.Note, "; ")))
			}
		}
	}
	b.WriteString("\n")
	if len(notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
}

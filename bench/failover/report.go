package main

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/bench/internal/benchdoc"
)

// Targets with the default settings.
const (
	targetP50 = time.Second
	targetMax = 2 * time.Second
)

type report struct {
	cfg       *config
	args      []string
	machine   benchdoc.Machine
	loadStart string
	loadEnd   string
	finished  time.Time
	agentCfg  api.ConfigSummary
	failures  []failureResult
	idle      *idleResult // quiet
	loaded    *idleResult // with CPU burners
}

// idles are the idle runs made, quiet first.
func (r *report) idles() []*idleResult {
	var out []*idleResult
	for _, id := range []*idleResult{r.idle, r.loaded} {
		if id != nil {
			out = append(out, id)
		}
	}
	return out
}

// label names an idle run in the table and the summary.
func (id *idleResult) label() string {
	if id.Burners == 0 {
		return fmt.Sprintf("%s quiet idle", id.Duration.Round(time.Second))
	}
	return fmt.Sprintf("%s idle with %d CPU burners on %d cores", id.Duration.Round(time.Second), id.Burners, runtime.NumCPU())
}

// requests are the idle run's requests, failed ones and those through the other AZ's NAT.
func (id *idleResult) requests() (req, failed, other int) {
	for _, h := range id.Hosts {
		req += h.Requests
		failed += h.Failed
		other += h.ViaOther
	}
	return req, failed, other
}

// eventful: an idle run that something happened in (its agent logs are worth keeping).
func (id *idleResult) eventful() bool {
	if len(id.Moves) > 0 || len(id.Decisions) > 0 || len(id.Restarted) > 0 {
		return true
	}
	for _, n := range id.HealthLines {
		if n > 0 {
			return true
		}
	}
	_, failed, other := id.requests()
	return failed > 0 || other > 0
}

// outage is one host's outage in one failure.
type outage struct {
	n    int
	host string
	r    hostResult
}

// outages are the affected hosts' outages: the killed NAT's own host always, the other host
// when it lost a request too.
func (r *report) outages() []outage {
	var out []outage
	for _, f := range r.failures {
		for _, h := range f.Hosts {
			if h.Host == f.Site || h.Failed > 0 {
				out = append(out, outage{f.N, h.Host, h})
			}
		}
	}
	return out
}

type stats struct {
	p50, p95, max                  time.Duration
	failed, requests, backFailed   int
	unrecovered, multi             int
	takeOver, afterWrite, failback []time.Duration
	killCmd                        []time.Duration
}

func (r *report) stats() stats {
	var s stats
	var ds []time.Duration
	for _, o := range r.outages() {
		ds = append(ds, o.r.Outage)
		if !o.r.Recovered {
			s.unrecovered++
		}
		if o.r.Episodes > 1 {
			s.multi++
		}
	}
	s.p50, s.p95, s.max = benchdoc.Percentile(ds, 50), benchdoc.Percentile(ds, 95), benchdoc.Percentile(ds, 100)
	for _, f := range r.failures {
		for _, h := range f.Hosts {
			s.failed += h.Failed
			s.requests += h.Requests
		}
		for _, h := range f.Back {
			s.backFailed += h.Failed
		}
		if f.TakeOver >= 0 {
			s.takeOver = append(s.takeOver, f.TakeOver)
			if h := host(f.Hosts, f.Site); !h.FirstOK.IsZero() {
				s.afterWrite = append(s.afterWrite, h.FirstOK.Sub(f.move))
			}
		}
		if f.Failback >= 0 {
			s.failback = append(s.failback, f.Failback)
		}
		s.killCmd = append(s.killCmd, f.KillCmd)
	}
	return s
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// targets reports each target: what, whether met, and a line saying so.
func (r *report) targets() []string {
	var out []string
	if len(r.failures) > 0 {
		s := r.stats()
		ok := s.unrecovered == 0
		out = append(out,
			fmt.Sprintf("p50 outage %s ≤ %s: %s", benchdoc.Secs(s.p50), benchdoc.Secs(targetP50), verdict(ok && s.p50 <= targetP50)),
			fmt.Sprintf("max outage %s ≤ %s: %s", benchdoc.Secs(s.max), benchdoc.Secs(targetMax), verdict(ok && s.max <= targetMax)))
	}
	for _, id := range r.idles() {
		out = append(out, fmt.Sprintf("false failovers in %s: %d, target 0: %s", id.label(), len(id.Moves), verdict(len(id.Moves) == 0)))
	}
	return out
}

// summary is the short text printed at the end of a run.
func (r *report) summary() string {
	var b strings.Builder
	if len(r.failures) > 0 {
		s := r.stats()
		fmt.Fprintf(&b, "%d failures: outage p50 %s, p95 %s, max %s; %d of %d requests failed during the failures, %d at the fail-backs\n",
			len(r.failures), benchdoc.Secs(s.p50), benchdoc.Secs(s.p95), benchdoc.Secs(s.max), s.failed, s.requests, s.backFailed)
	}
	for _, id := range r.idles() {
		req, failed, _ := id.requests()
		fmt.Fprintf(&b, "%s: %d route moves, %d of %d requests failed, load average %s at the end\n", id.label(), len(id.Moves), failed, req, id.LoadEnd)
	}
	for _, t := range r.targets() {
		fmt.Fprintln(&b, "target: "+t)
	}
	return b.String()
}

func median(ds []time.Duration) time.Duration { return benchdoc.Percentile(ds, 50) }

func maxOf(ds []time.Duration) time.Duration { return benchdoc.Percentile(ds, 100) }

func minOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Min(ds)
}

// markdown is the section of docs/BENCHMARKS.md, markers included.
func (r *report) markdown() string {
	begin, end := benchdoc.Markers(benchName)
	c := r.agentCfg
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n## Failover: unplanned death of a NAT instance\n\n", begin)
	endNote := ""
	if r.loaded != nil {
		endNote = " (right after the loaded idle run)"
	}
	fmt.Fprintf(&b, "Measured %s on %s; load average %s at the start, %s at the end%s; the run took %s.\n\n",
		r.machine.Started.UTC().Format("2006-01-02"), r.machine, r.loadStart, r.loadEnd, endNote, r.finished.Sub(r.machine.Started).Round(time.Second))
	b.WriteString("Lab: `test/lab` on one kernel, the real agents (`bin/headnat agent`, one per AZ, each with its own IMDS mock)\n" +
		"against the VPC simulator, whose route writes move the router namespace's kernel routes. A failure is\n" +
		"`Kill`: the NAT instance's link goes down and its agent is SIGKILLed (EC2 still reports it running),\n" +
		"alternately in AZ a and AZ b. Client traffic: each private host (host-a, host-b) starts an HTTP request to\n" +
		fmt.Sprintf("the echo server every %s, each on a fresh TCP connection with a %s timeout (`lab.Traffic`).\n", r.cfg.interval, requestTimeout) +
		"Outage = start of the first failed request → start of the first successful request after it, per affected\n" +
		"host (the killed NAT's own subnet; the other host is counted too if it lost anything). After each failure\n" +
		"the instance is revived (`Revive`) and the run waits for the fail-back, both agents healthy and seeing each\n" +
		"other, so every failure starts from the healthy state. The kill comes after a random extra wait (uniform\n" +
		fmt.Sprintf("over %s), so that it does not fall at a fixed phase of the survivor's probe ticks.\n\n", jitter))
	fmt.Fprintf(&b, "Settings (as the agents report them on /status): probe interval %s, timeout %s, rise %d, fall %d: the\n"+
		"defaults. failback_after %s instead of the default 60s, so that the run is short: it only delays the fail-back,\n"+
		"detection and take-over do not depend on it.\n\n", c.ProbeInterval, c.ProbeTimeout, c.Rise, c.Fall, c.FailbackAfter)

	b.WriteString("| measure | result | target |\n|---|---:|---|\n")
	if len(r.failures) > 0 {
		s := r.stats()
		ok := s.unrecovered == 0
		fmt.Fprintf(&b, "| outage p50, %d failures | %s | ≤ %s: **%s** |\n", len(r.failures), benchdoc.Secs(s.p50), benchdoc.Secs(targetP50), verdict(ok && s.p50 <= targetP50))
		fmt.Fprintf(&b, "| outage p95 (nearest rank) | %s | |\n", benchdoc.Secs(s.p95))
		fmt.Fprintf(&b, "| outage max | %s | ≤ %s: **%s** |\n", benchdoc.Secs(s.max), benchdoc.Secs(targetMax), verdict(ok && s.max <= targetMax))
		fmt.Fprintf(&b, "| failed requests during the failures (both hosts) | %d of %d | |\n", s.failed, s.requests)
		fmt.Fprintf(&b, "| kill → take-over write accepted by EC2, median (min–max) | %s (%s–%s) | |\n",
			benchdoc.Ms(median(s.takeOver)), benchdoc.Ms(minOf(s.takeOver)), benchdoc.Ms(maxOf(s.takeOver)))
		fmt.Fprintf(&b, "| of which the kill command itself (`ip link set eth0 down` in a new process, SIGKILL), median | %s | |\n", benchdoc.Ms(median(s.killCmd)))
		fmt.Fprintf(&b, "| take-over write → first successful request, median (max) | %s (%s) | |\n", benchdoc.Ms(median(s.afterWrite)), benchdoc.Ms(maxOf(s.afterWrite)))
		fmt.Fprintf(&b, "| failed requests at the fail-backs (planned, after failback_after) | %d | |\n", s.backFailed)
	}
	for _, id := range r.idles() {
		req, failed, _ := id.requests()
		which := "quiet"
		if id.Burners > 0 {
			which = "loaded"
		}
		fmt.Fprintf(&b, "| route moves (false failovers) in %s | %d | 0: **%s** |\n", id.label(), len(id.Moves), verdict(len(id.Moves) == 0))
		fmt.Fprintf(&b, "| failed requests in the %s idle run | %d of %d | |\n", which, failed, req)
	}
	b.WriteString("\n")

	if len(r.failures) > 0 {
		r.perFailure(&b)
	}
	if len(r.idles()) > 0 {
		r.idleText(&b)
	}
	fmt.Fprintf(&b, "Command: `sudo make bench-failover`, which runs `go run ./bench/failover %s`.\n", benchdoc.ShellJoin(r.args))
	fmt.Fprintf(&b, "%s\n", end)
	return b.String()
}

func (r *report) perFailure(b *strings.Builder) {
	c := r.agentCfg
	lo := time.Duration(c.Fall-1)*time.Duration(c.ProbeInterval) + time.Duration(c.ProbeTimeout)
	hi := lo + time.Duration(c.ProbeInterval)
	fmt.Fprintf(b, "With these settings the survivor declares its peer dead after %d consecutive failed probes, %s to %s after the\n"+
		"link goes down (the first probe after it starts within one interval, each fails at the timeout); the route write\n"+
		"follows. Times are measured from the start of the kill command; outages are resolved to the request interval (%s).\n\n",
		c.Fall, benchdoc.Ms(lo), benchdoc.Ms(hi), r.cfg.interval)
	b.WriteString("Per failure: the killed NAT's host (outage, failed requests), the other host's failed requests, when EC2\n" +
		"accepted the take-over write (after the kill) and the fail-back write (after the revive), and requests lost\n" +
		"at the fail-back (both hosts).\n\n")
	b.WriteString("| # | killed | outage | failed | other host failed | take-over | fail-back | lost at fail-back |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|\n")
	var notes []string
	for _, f := range r.failures {
		h := host(f.Hosts, f.Site)
		var otherFailed, backFailed int
		for _, x := range f.Hosts {
			if x.Host != f.Site {
				otherFailed += x.Failed
			}
		}
		for _, x := range f.Back {
			backFailed += x.Failed
		}
		out := benchdoc.Ms(h.Outage)
		if !h.Recovered {
			out = "≥ " + out + " (no recovery)"
		}
		fmt.Fprintf(b, "| %d | nat-%s | %s | %d | %d | %s | %s | %d |\n", f.N, f.Site, out, h.Failed, otherFailed, benchdoc.Ms(f.TakeOver), benchdoc.Ms(f.Failback), backFailed)
		if f.Note != "" {
			notes = append(notes, fmt.Sprintf("failure %d: %s", f.N, f.Note))
		}
		for _, x := range f.Hosts {
			if x.Episodes > 1 {
				notes = append(notes, fmt.Sprintf("failure %d: host-%s lost requests in %d separate runs (outage above is the first)", f.N, x.Host, x.Episodes))
			}
		}
		if f.Baseline > 0 {
			notes = append(notes, fmt.Sprintf("failure %d: %d request(s) failed or left through the other AZ before the kill", f.N, f.Baseline))
		}
		for _, m := range f.Extra {
			notes = append(notes, fmt.Sprintf("failure %d: extra route write %s private-%s → nat-%s at %s", f.N, m.Action, m.TableAZ, m.TargetAZ, m.Time.UTC().Format("15:04:05.000")))
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

// idleText describes the idle runs, side by side in one table.
func (r *report) idleText(b *strings.Builder) {
	ids := r.idles()
	c := r.agentCfg
	b.WriteString("Idle runs: both NATs healthy, no faults, the same client traffic as above. Every route move in them is a false\n" +
		"failover.")
	if r.loaded != nil {
		id := r.loaded
		fmt.Fprintf(b, " The loaded run comes after the quiet one (never during the failures, whose figures stay comparable):\n"+
			"%d CPU burners on the %d cores, each a process of its own (this benchmark's binary re-run, busy-looping on one\n"+
			"thread) at the agents' priority, started with the run and killed at its end, like another tenant's workload.",
			id.Burners, runtime.NumCPU())
	}
	fmt.Fprintf(b, "\nShadow probes: this benchmark's own GET of the other NAT's /healthz over the VPC path, from each NAT's namespace,\n"+
		"every %s like the agents' probes but waiting up to %s, to show how late the answers come (it is not the agents'\n"+
		"probe and shares their CPU contention only roughly; the agents fail over after %d probes in a row fail or take\n"+
		"longer than %s). Run delay: time the agents' threads were runnable but waited for a CPU (schedstat, summed over\n"+
		"threads).\n\n", c.ProbeInterval, shadowTimeout, c.Fall, c.ProbeTimeout)

	row := func(name string, cell func(*idleResult) string) {
		fmt.Fprintf(b, "| %s |", name)
		for _, id := range ids {
			fmt.Fprintf(b, " %s |", cell(id))
		}
		b.WriteString("\n")
	}
	b.WriteString("| idle run |")
	for _, id := range ids {
		if id.Burners == 0 {
			b.WriteString(" quiet |")
		} else {
			fmt.Fprintf(b, " loaded: %d burners |", id.Burners)
		}
	}
	b.WriteString("\n|---|")
	for range ids {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	row("duration", func(id *idleResult) string { return id.Duration.Round(time.Second).String() })
	if r.loaded != nil {
		row("CPU burners (nice; the agents' nice)", func(id *idleResult) string {
			if id.Burners == 0 {
				return fmt.Sprintf("none (agents %s, %s)", id.Nice["nat-a"], id.Nice["nat-b"])
			}
			s := fmt.Sprintf("%d (nice %s; agents %s, %s)", id.Burners, id.Nice["burners"], id.Nice["nat-a"], id.Nice["nat-b"])
			if id.BurnersEnded > 0 {
				s += fmt.Sprintf(", %d ended early", id.BurnersEnded)
			}
			return s
		})
		row("CPU the burners got (of the machine's core-seconds)", func(id *idleResult) string {
			if id.Burners == 0 {
				return "–"
			}
			core := id.Duration.Seconds() * float64(runtime.NumCPU())
			return fmt.Sprintf("%s (%.0f%% of %.0f s)", id.BurnerCPU.Round(time.Second), 100*id.BurnerCPU.Seconds()/core, core)
		})
	}
	row("load average at its start", func(id *idleResult) string { return id.LoadStart })
	row("load average at its end", func(id *idleResult) string { return id.LoadEnd })
	row("1-minute load average at each minute", func(id *idleResult) string { return strings.Join(id.LoadSteps, ", ") })
	row("requests (failed; through the other AZ's NAT)", func(id *idleResult) string {
		req, failed, other := id.requests()
		return fmt.Sprintf("%d (%d; %d)", req, failed, other)
	})
	row("**route moves (false failovers)**", func(id *idleResult) string {
		return fmt.Sprintf("**%d** (target 0: %s)", len(id.Moves), verdict(len(id.Moves) == 0))
	})
	row("route decisions by the agents", func(id *idleResult) string { return strconv.Itoa(len(id.Decisions)) })
	for _, m := range healthMsgs {
		row(fmt.Sprintf("agent log lines %q", m), func(id *idleResult) string { return strconv.Itoa(id.HealthLines[m]) })
	}
	row("agents' CPU time (% of a core), nat-a / nat-b", func(id *idleResult) string {
		var out []string
		for _, s := range []string{"a", "b"} {
			d, ok := id.AgentCPU[s]
			if !ok {
				out = append(out, "restarted")
				continue
			}
			out = append(out, fmt.Sprintf("%s (%.1f%%)", d.Round(10*time.Millisecond), 100*d.Seconds()/id.Duration.Seconds()))
		}
		return strings.Join(out, " / ")
	})
	row("agents' run delay, nat-a / nat-b", func(id *idleResult) string {
		var out []string
		for _, s := range []string{"a", "b"} {
			d, ok := id.RunDelay[s]
			if !ok {
				out = append(out, "restarted")
				continue
			}
			out = append(out, d.Round(10*time.Millisecond).String())
		}
		return strings.Join(out, " / ")
	})
	row("benchmark process CPU (client loop, echo server, VPC simulator, shadow probes)", func(id *idleResult) string {
		return fmt.Sprintf("%s (%.1f%%)", id.BenchCPU.Round(10*time.Millisecond), 100*id.BenchCPU.Seconds()/id.Duration.Seconds())
	})
	for i, site := range r.shadowDirs() {
		row(fmt.Sprintf("shadow probes %s: answered in p50 / p99 / max", site), func(id *idleResult) string {
			if i >= len(id.Shadow) {
				return "–"
			}
			s := id.Shadow[i]
			return fmt.Sprintf("%s / %s / %s", msf(benchdoc.Percentile(s.Latencies, 50)), msf(benchdoc.Percentile(s.Latencies, 99)), msf(maxOf(s.Latencies)))
		})
		row(fmt.Sprintf("shadow probes %s: failed or later than %s (most in a row), of all", site, c.ProbeTimeout), func(id *idleResult) string {
			if i >= len(id.Shadow) {
				return "–"
			}
			s := id.Shadow[i]
			return fmt.Sprintf("%d (%d) of %d", s.Late, s.LongestRun, len(s.Latencies)+s.Errors)
		})
	}
	b.WriteString("\n")

	var notes []string
	for _, id := range ids {
		name := "quiet"
		if id.Burners > 0 {
			name = "loaded"
		}
		if len(id.Restarted) > 0 {
			notes = append(notes, fmt.Sprintf("%s: agents restarted during it: %s", name, strings.Join(id.Restarted, ", ")))
		}
		for _, m := range id.Moves {
			notes = append(notes, fmt.Sprintf("%s: route move %s private-%s → nat-%s at %s", name, m.Action, m.TableAZ, m.TargetAZ, m.Time.UTC().Format("15:04:05.000")))
		}
		for _, d := range id.Decisions {
			notes = append(notes, fmt.Sprintf("%s: decision %s %s → %s: %s [%s]", name, d.Kind, d.Table, d.Target, d.Reason, d.Result))
		}
		for _, s := range id.Shadow {
			if s.Errors > 0 {
				notes = append(notes, fmt.Sprintf("%s: %d shadow probe(s) nat-%s → nat-%s got no 200 answer within %s", name, s.Errors, s.From, s.To, shadowTimeout))
			}
		}
	}
	if len(notes) > 0 {
		b.WriteString("Notes:\n\n")
		for _, n := range notes {
			fmt.Fprintf(b, "- %s\n", n)
		}
		b.WriteString("\n")
	}
}

// shadowDirs names the shadow probes' directions ("nat-a → nat-b"), in the order of the results.
func (r *report) shadowDirs() []string {
	ids := r.idles()
	if len(ids) == 0 {
		return nil
	}
	var out []string
	for _, s := range ids[0].Shadow {
		out = append(out, fmt.Sprintf("nat-%s → nat-%s", s.From, s.To))
	}
	return out
}

// msf is a short latency in milliseconds with one decimal.
func msf(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

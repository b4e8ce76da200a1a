package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
)

// idleResult is the lab left alone, healthy, with client traffic; with Burners CPU burners
// running beside it for the loaded idle run.
type idleResult struct {
	Duration     time.Duration
	Burners      int               // CPU burner processes running during it (0: the quiet run)
	BurnerCPU    time.Duration     // CPU time the burners got
	BurnersEnded int               // burners that exited before the end (none should)
	Nice         map[string]string // nice of the agents ("nat-a") and of the burners ("burners")
	Hosts        []hostResult
	Moves        []lab.Move
	Decisions    []api.Decision
	HealthLines  map[string]int // agent log lines about health changes, by message
	Restarted    []string       // agents whose pid changed (crashed) during the run
	LoadStart    string
	LoadEnd      string
	LoadSteps    []string                 // 1-minute load average at each progress step
	AgentCPU     map[string]time.Duration // CPU time each agent used during the run
	RunDelay     map[string]time.Duration // time each agent's threads waited for a CPU
	BenchCPU     time.Duration            // this process: client loop, echo server, VPC simulator
	Shadow       []*shadowResult
}

// healthMsgs are the agent's log messages that mark a change of a health verdict.
var healthMsgs = []string{"peer health changed", "own health changed", "peer's host answers but its agent does not"}

// idleRun leaves the lab healthy for d with the client traffic; with load > 0, that many CPU
// burners run for exactly that time.
func (c *config) idleRun(ctx context.Context, l *lab.Lab, p benchlab.Progress, probe api.ConfigSummary, d time.Duration, load int) (*idleResult, error) {
	if err := waitHealthy(ctx, l, healthyBound); err != nil {
		return nil, err
	}
	for _, s := range l.Sites() {
		if t, state := l.Target(s.RouteTable); t != s.Name || state != api.RouteActive {
			return nil, fmt.Errorf("private-%s points at %q (%s), not home, before the idle run", s.Name, t, state)
		}
	}
	r := &idleResult{Burners: load, HealthLines: map[string]int{}, AgentCPU: map[string]time.Duration{},
		RunDelay: map[string]time.Duration{}, Nice: map[string]string{}}
	pids := map[string]int{}
	cpu0 := map[string]time.Duration{}
	wait0 := map[string]time.Duration{}
	offsets := map[string]int64{}
	for _, s := range l.Sites() {
		pids[s.Name] = l.AgentPid(s.Name)
		cpu0[s.Name] = procCPU(pids[s.Name])
		wait0[s.Name] = runDelay(pids[s.Name])
		r.Nice["nat-"+s.Name] = procNice(pids[s.Name])
		if fi, err := os.Stat(l.AgentLog(s.Name)); err == nil {
			offsets[s.Name] = fi.Size()
		}
	}
	self0 := selfCPU()
	r.LoadStart = benchdoc.LoadAvg()
	what := "idle run: both NATs healthy, no faults"
	if load > 0 {
		what = fmt.Sprintf("loaded idle run: %d CPU burners on %d cores, both NATs healthy, no faults", load, runtime.NumCPU())
	}
	p.Say("%s, %s of traffic every %s from each private host ...", what, d, c.interval)

	start := time.Now()
	var burn *burners
	if load > 0 {
		var err error
		if burn, err = startBurners(load, d+30*time.Second); err != nil {
			return nil, err
		}
		defer burn.stop()
		if pids := burn.pids(); len(pids) > 0 {
			r.Nice["burners"] = procNice(pids[0])
		}
	}
	col, stop := startTraffic(ctx, l, c.interval, d)
	defer stop()
	shadowDone := make(chan struct{})
	sctx, cancelShadow := context.WithTimeout(ctx, d)
	defer func() { cancelShadow(); <-shadowDone }()
	go func() {
		defer close(shadowDone)
		r.Shadow = shadowProbes(sctx, l, time.Duration(probe.ProbeInterval), time.Duration(probe.ProbeTimeout), d)
	}()
	for elapsed := time.Duration(0); elapsed < d; {
		step := min(time.Minute, d-elapsed)
		if err := lab.Sleep(ctx, step); err != nil {
			return nil, err
		}
		elapsed += step
		var failed int
		for _, s := range col.all() {
			if s.Err != nil {
				failed++
			}
		}
		load1 := strings.Fields(benchdoc.LoadAvg())[0]
		r.LoadSteps = append(r.LoadSteps, load1)
		p.Say("idle %s/%s: %d requests, %d failed, %d route moves, load %s", elapsed, d, len(col.all()), failed, len(l.MovesSince(start)), load1)
	}
	stop()
	cancelShadow()
	<-shadowDone
	end := time.Now()
	r.Duration = end.Sub(start)
	r.LoadEnd = benchdoc.LoadAvg()
	if burn != nil {
		r.BurnerCPU, r.BurnersEnded = burn.stop()
	}
	r.BenchCPU = selfCPU() - self0
	for _, s := range l.Sites() {
		pid := l.AgentPid(s.Name)
		if pid != pids[s.Name] {
			r.Restarted = append(r.Restarted, s.Name)
		} else {
			r.AgentCPU[s.Name] = procCPU(pid) - cpu0[s.Name]
			r.RunDelay[s.Name] = runDelay(pid) - wait0[s.Name]
		}
		for msg, n := range countLines(l.AgentLog(s.Name), offsets[s.Name], healthMsgs) {
			r.HealthLines[msg] += n
		}
	}
	samples := col.all()
	for _, s := range l.Sites() {
		r.Hosts = append(r.Hosts, analyse(samples, s.Name, s.Name, start, end.Add(time.Second)))
	}
	r.Moves = l.MovesSince(start)
	for _, dec := range l.Decisions() {
		if !dec.Time.Before(start) {
			r.Decisions = append(r.Decisions, dec)
		}
	}
	return r, nil
}

// shadowResult is the benchmark's own copy of one agent's peer probe: from one NAT's namespace,
// GET the other NAT's /healthz over the VPC path, every probe interval, one at a time.
type shadowResult struct {
	From, To   string
	Latencies  []time.Duration // answered probes
	Errors     int             // no 200 answer within shadowTimeout
	Late       int             // errors, and answers later than the agents' probe timeout
	LongestRun int             // most consecutive late probes (the agents fail over after fall)
}

// shadowTimeout is the shadow probe's own timeout, longer than the agents' so that it sees how
// late the answers are.
const shadowTimeout = time.Second

// shadowProbes runs a shadow probe in each direction until ctx ends (at most bound).
func shadowProbes(ctx context.Context, l *lab.Lab, interval, timeout, bound time.Duration) []*shadowResult {
	var out []*shadowResult
	var wg sync.WaitGroup
	for _, from := range l.Sites() {
		to := l.Other(from)
		r := &shadowResult{From: from.Name, To: to.Name}
		out = append(out, r)
		wg.Go(func() { shadowProbe(ctx, l, from, to, interval, timeout, bound, r) })
	}
	wg.Wait()
	return out
}

func shadowProbe(ctx context.Context, l *lab.Lab, from, to *lab.Site, interval, timeout, bound time.Duration, r *shadowResult) {
	if interval <= 0 || timeout <= 0 {
		return
	}
	client := l.Client(from.NAT.Name, shadowTimeout)
	url := fmt.Sprintf("http://%s:%d%s", to.NATIP, lab.AgentPort, api.PathHealthz)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	run := 0
	for range int(bound/interval) + 1 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		t0 := time.Now()
		ok := get(ctx, client, url)
		took := time.Since(t0)
		if ctx.Err() != nil {
			return // cut short by the end of the run, not an answer
		}
		if ok {
			r.Latencies = append(r.Latencies, took)
		} else {
			r.Errors++
		}
		if !ok || took > timeout {
			r.Late++
			run++
			r.LongestRun = max(r.LongestRun, run)
		} else {
			run = 0
		}
	}
}

// get reports whether url answered 200 with a body.
func get(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return err == nil && resp.StatusCode == http.StatusOK
}

// countLines counts, from offset on, the lines of a file that contain each of msgs.
func countLines(path string, offset int64, msgs []string) map[string]int {
	out := map[string]int{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return out
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		for _, m := range msgs {
			if strings.Contains(sc.Text(), m) {
				out[m]++
			}
		}
	}
	return out
}

// procCPU is the user+system CPU time of a process so far (0 if unknown).
func procCPU(pid int) time.Duration {
	f := procFields(pid)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const userHZ = 100 // the unit of /proc/<pid>/stat times on Linux
	return time.Duration(ut+st) * time.Second / userHZ
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

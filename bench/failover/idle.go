package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/test/lab"
)

// idleResult is the lab left alone, healthy, with client traffic.
type idleResult struct {
	Duration    time.Duration
	Hosts       []hostResult
	Moves       []lab.Move
	Decisions   []api.Decision
	HealthLines map[string]int // agent log lines about health changes, by message
	Restarted   []string       // agents whose pid changed (crashed) during the run
	LoadStart   string
	LoadEnd     string
	AgentCPU    map[string]time.Duration // CPU time each agent used during the run
	BenchCPU    time.Duration            // this process: client loop, echo server, VPC simulator
}

// healthMsgs are the agent's log messages that mark a change of a health verdict.
var healthMsgs = []string{"peer health changed", "own health changed", "peer's host answers but its agent does not"}

func (c *config) idleRun(ctx context.Context, l *lab.Lab, p progress) (*idleResult, error) {
	if err := waitHealthy(ctx, l, healthyBound); err != nil {
		return nil, err
	}
	for _, s := range l.Sites {
		if t, state := l.Target(s.RouteTable); t != s.Name || state != api.RouteActive {
			return nil, fmt.Errorf("private-%s points at %q (%s), not home, before the idle run", s.Name, t, state)
		}
	}
	r := &idleResult{HealthLines: map[string]int{}, AgentCPU: map[string]time.Duration{}}
	pids := map[string]int{}
	cpu0 := map[string]time.Duration{}
	offsets := map[string]int64{}
	for _, s := range l.Sites {
		pids[s.Name] = l.AgentPid(s.Name)
		cpu0[s.Name] = procCPU(pids[s.Name])
		if fi, err := os.Stat(l.AgentLog(s.Name)); err == nil {
			offsets[s.Name] = fi.Size()
		}
	}
	self0 := selfCPU()
	r.LoadStart = benchdoc.LoadAvg()
	p.say("idle run: both NATs healthy, no faults, %s of traffic every %s from each private host ...", c.idle, c.interval)

	start := time.Now()
	col, stop := startTraffic(ctx, l, c.interval, c.idle)
	defer stop()
	for elapsed := time.Duration(0); elapsed < c.idle; {
		step := min(time.Minute, c.idle-elapsed)
		if err := sleep(ctx, step); err != nil {
			return nil, err
		}
		elapsed += step
		var failed int
		for _, s := range col.all() {
			if s.Err != nil {
				failed++
			}
		}
		p.say("idle %s/%s: %d requests, %d failed, %d route moves", elapsed, c.idle, len(col.all()), failed, len(l.MovesSince(start)))
	}
	stop()
	end := time.Now()
	r.Duration = end.Sub(start)
	r.LoadEnd = benchdoc.LoadAvg()
	r.BenchCPU = selfCPU() - self0
	for _, s := range l.Sites {
		pid := l.AgentPid(s.Name)
		if pid != pids[s.Name] {
			r.Restarted = append(r.Restarted, s.Name)
		} else {
			r.AgentCPU[s.Name] = procCPU(pid) - cpu0[s.Name]
		}
		for msg, n := range countLines(l.AgentLog(s.Name), offsets[s.Name], healthMsgs) {
			r.HealthLines[msg] += n
		}
	}
	samples := col.all()
	for _, s := range l.Sites {
		r.Hosts = append(r.Hosts, analyse(samples, s.Name, s.Name, start, end.Add(time.Second)))
	}
	r.Moves = l.MovesSince(start)
	for _, d := range l.Decisions() {
		if !d.Time.Before(start) {
			r.Decisions = append(r.Decisions, d)
		}
	}
	return r, nil
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
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b)[i+1:])
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

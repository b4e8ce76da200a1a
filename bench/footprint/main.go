// Command footprint measures the agent's memory in the lab of test/lab (run as root): two NAT
// instances, with the tailnet unless -no-tailnet, run the agent first natively (this machine's
// architecture), then as linux/arm64 under qemu-aarch64-static (the AMI's binary). Over
// -settle of steady state it samples each agent's VmHWM (peak resident set) and VmRSS from
// /proc, the resident pages of the agent's binary from smaps, its CPU time, and the Go runtime's
// own figures from /metrics. Under qemu the process is qemu itself, so its resident set is only
// an upper bound for the arm64 agent's; the arm64 binary's own pages are measured, and the
// anonymous memory is taken from the native run. It writes its figures into its own section of
// docs/BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/tailnetlab"
)

const benchName = "bench-footprint"

// LimitMB is the budget for the agent's resident memory on arm64.
const LimitMB = 30

type config struct {
	bin, arm64 string
	settle     time.Duration
	noTailnet  bool
	out        string
	env        []string
	archs      []string
}

type sample struct {
	arch             string
	hwm, rss         float64 // MB, the largest over the NATs
	anon, file       float64 // MB: VmRSS's anonymous and file-backed (the binary's pages) parts
	goSys, heapInuse float64 // MB, from /metrics, the largest over the NATs
	cpu              float64 // CPU seconds per minute of steady state, the largest over the NATs
	binPages         float64 // MB: resident pages mapped from the agent's own binary (smaps), the largest
	samples          int
}

func main() {
	var c config
	fs := flag.NewFlagSet(benchName, flag.ContinueOnError)
	fs.StringVar(&c.bin, "bin", "", "directory with headnat, ec2-metadata-mock and the tailnet's binaries (default: $HEADNAT_BIN or bin/)")
	fs.StringVar(&c.arm64, "arm64", "bin/linux-arm64", "directory with the linux/arm64 headnat (make ami-bins)")
	fs.DurationVar(&c.settle, "settle", 30*time.Second, "steady state sampled per architecture")
	fs.BoolVar(&c.noTailnet, "no-tailnet", false, "leave the tailnet out")
	fs.Func("env", "KEY=VALUE added to the agents' environment (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return errors.New("want KEY=VALUE")
		}
		c.env = append(c.env, v)
		return nil
	})
	archList := fs.String("arch", "native,arm64", "which agents to measure: native, arm64 or both")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "file whose "+benchName+" section is replaced (\"\" prints only)")
	benchlab.Main(fs, func() error {
		c.archs = strings.Split(*archList, ",")
		for _, a := range c.archs {
			if a != "native" && a != "arm64" {
				return fmt.Errorf("-arch %q: want native, arm64 or both", a)
			}
		}
		if c.settle < 5*time.Second || c.settle > 10*time.Minute {
			return errors.New("-settle 5s..10m")
		}
		return nil
	}, c.run)
}

func (c *config) run(ctx context.Context) error {
	if err := benchlab.Prepare(benchName, "ip", "iptables", "qemu-aarch64-static"); err != nil {
		return err
	}
	machine, loadStart := benchdoc.DescribeMachine(), benchdoc.LoadAvg()
	p := benchlab.Progress{Start: time.Now()}
	bin, err := lab.FindBinDir(c.bin)
	if err != nil {
		return err
	}
	arm64, err := filepath.Abs(filepath.Join(c.arm64, "headnat"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(arm64); err != nil {
		return fmt.Errorf("no arm64 agent (make ami-bins): %w", err)
	}
	var res []sample
	for _, arch := range c.archs {
		dir, err := binDir(bin, arch, arm64)
		if err != nil {
			return err
		}
		agentBin := arm64
		if arch == "native" {
			agentBin = filepath.Join(bin, "headnat")
		}
		s, err := c.measure(ctx, p, dir, arch, agentBin)
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", arch, err)
		}
		res = append(res, s)
	}
	summary, md := report(c, res, machine, loadStart, benchdoc.LoadAvg())
	if err := benchlab.Publish(benchName, c.out, summary, md, p); err != nil {
		return err
	}
	return nil
}

// binDir makes a bin directory for the lab whose headnat is the native agent, or a wrapper
// that execs the arm64 one under qemu (same pid, so /proc/<pid> is the agent's).
func binDir(bin, arch, arm64 string) (string, error) {
	dir, err := os.MkdirTemp("", benchName+"-bin-")
	if err != nil {
		return "", err
	}
	for _, b := range append([]string{"ec2-metadata-mock"}, tailnetlab.Binaries...) {
		if err := os.Symlink(filepath.Join(bin, b), filepath.Join(dir, b)); err != nil {
			return "", err
		}
	}
	if arch == "native" {
		return dir, os.Symlink(filepath.Join(bin, "headnat"), filepath.Join(dir, "headnat"))
	}
	qemu, err := exec.LookPath("qemu-aarch64-static")
	if err != nil {
		return "", err
	}
	script := fmt.Sprintf("#!/bin/sh\nexec %s %s \"$@\"\n", qemu, arm64)
	return dir, os.WriteFile(filepath.Join(dir, "headnat"), []byte(script), 0o755)
}

func (c *config) measure(ctx context.Context, p benchlab.Progress, dir, arch, agentBin string) (sample, error) {
	s := sample{arch: arch}
	p.Say("%s: building the lab (2 NATs, tailnet %v) ...", arch, !c.noTailnet)
	bl, err := benchlab.Up(ctx, benchName, lab.Options{Name: benchName, BinDir: dir, Tailnet: !c.noTailnet, AgentEnv: c.env,
		ReadyTimeout: 3 * time.Minute}, p)
	if err != nil {
		return s, err
	}
	defer bl.Close(false)
	l := bl.Lab
	p.Say("%s: lab up; sampling for %s", arch, c.settle)
	start := time.Now()
	cpu0 := map[string]float64{}
	for _, n := range l.NATNames() {
		if cpu0[n], err = cpuSeconds(l.AgentPid(n)); err != nil {
			return s, err
		}
	}
	end := start.Add(c.settle)
	for time.Now().Before(end) {
		for _, n := range l.NATNames() {
			pid := l.AgentPid(n)
			if pid == 0 {
				return s, fmt.Errorf("agent %s is not running", n)
			}
			st, err := procStatus(pid)
			if err != nil {
				return s, err
			}
			s.hwm, s.rss = max(s.hwm, st["VmHWM"]), max(s.rss, st["VmRSS"])
			s.anon, s.file = max(s.anon, st["RssAnon"]), max(s.file, st["RssFile"])
			pages, err := mappedRss(pid, agentBin)
			if err != nil {
				return s, err
			}
			s.binPages = max(s.binPages, pages)
			s.samples++
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	for _, n := range l.NATNames() {
		cpu1, err := cpuSeconds(l.AgentPid(n))
		if err != nil {
			return s, err
		}
		s.cpu = max(s.cpu, (cpu1-cpu0[n])/time.Since(start).Minutes())
	}
	// Once at the end, with time to spare: an agent under qemu on a busy machine answers slowly.
	for _, n := range l.NATNames() {
		m, err := scrape(ctx, l, n)
		if err != nil {
			return s, fmt.Errorf("agent %s /metrics: %w", n, err)
		}
		s.goSys = max(s.goSys, m["go_memstats_sys_bytes"]/1e6)
		s.heapInuse = max(s.heapInuse, m["go_memstats_heap_inuse_bytes"]/1e6)
	}
	p.Say("%s: VmHWM %.1f MB, VmRSS %.1f MB, Go runtime %.1f MB (heap in use %.1f MB), CPU %.2f s/min", arch, s.hwm, s.rss, s.goSys, s.heapInuse, s.cpu)
	return s, nil
}

func scrape(ctx context.Context, l *lab.Lab, nat string) (lab.Metrics, error) {
	site, err := l.Site(nat)
	if err != nil {
		return nil, err
	}
	var last error
	for range 3 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", lab.AgentPort), nil)
		if err != nil {
			return nil, err
		}
		resp, err := l.Client(site.NAT.Name, 20*time.Second).Do(req)
		if err != nil {
			last = err
			continue
		}
		m, err := lab.ParseMetrics(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		return m, err
	}
	return nil, last
}

// cpuSeconds is the user and system CPU time of a process so far.
func cpuSeconds(pid int) (float64, error) {
	if pid == 0 {
		return 0, errors.New("agent not running")
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	var ticks float64
	for _, v := range f[11:13] { // utime, stime
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return ticks / 100, nil // USER_HZ
}

// mappedRss is the resident size, in MB, of a process's mappings of one file. Under qemu the
// guest's binary is mapped by qemu from the file, and the guest's accesses fault its pages in,
// so this is the arm64 agent's own share of the binary, without qemu's.
func mappedRss(pid int, file string) (float64, error) {
	file, err := filepath.EvalSymlinks(file)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	var kb float64
	var in, found bool
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			in = len(f) >= 6 && strings.Join(f[5:], " ") == file
			found = found || in
		case in && len(f) == 3 && f[0] == "Rss:":
			n, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/smaps: %w", pid, err)
			}
			kb += n
		}
	}
	if !found {
		return 0, fmt.Errorf("pid %d maps nothing from %s", pid, file)
	}
	return kb / 1000, nil
}

// procStatus reads the kB fields of /proc/<pid>/status, in MB.
func procStatus(pid int) (map[string]float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]float64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		f := strings.Fields(v)
		if ok && len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseFloat(f[0], 64); err == nil {
				m[k] = n / 1000
			}
		}
	}
	return m, nil
}

func report(c *config, res []sample, m benchdoc.Machine, load0, load1 string) (summary, md string) {
	var sb, mb strings.Builder
	begin, end := benchdoc.Markers(benchName)
	env := "the AMI unit's (" + strings.Join(lab.UnitEnv, " ") + ")"
	if len(c.env) > 0 {
		env += " and " + strings.Join(c.env, " ")
	}
	fmt.Fprintf(&mb, "%s\n## Agent memory (%s)\n\n", begin, benchName)
	fmt.Fprintf(&mb, "`make %s`: the lab's two NAT agents (tailnet: %v; environment: %s), %s of steady state after the lab is up, "+
		"sampled every second; the largest figure of the two agents. Machine: %s; load %s before, %s after; %s.\n\n",
		benchName, !c.noTailnet, env, c.settle, m, load0, load1, m.Started.UTC().Format("2006-01-02"))
	mb.WriteString("| agent | peak resident (VmHWM) | resident (VmRSS) | of which anonymous | of which file-backed | the agent binary's pages (smaps) | Go runtime's memory (go_memstats_sys) | heap in use | CPU |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	var native, arm *sample
	for i, s := range res {
		name := "native (" + strings.TrimSpace(m.CPU) + ")"
		if s.arch == "arm64" {
			name = "linux/arm64 under qemu-aarch64-static (qemu included)"
			arm = &res[i]
		} else {
			native = &res[i]
		}
		fmt.Fprintf(&mb, "| %s | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %.1f MB | %.2f s/min |\n",
			name, s.hwm, s.rss, s.anon, s.file, s.binPages, s.goSys, s.heapInuse, s.cpu)
		fmt.Fprintf(&sb, "%s: VmHWM %.1f MB, VmRSS %.1f MB, binary pages %.1f MB, Go runtime %.1f MB, heap in use %.1f MB, CPU %.2f s/min (%d samples)\n",
			s.arch, s.hwm, s.rss, s.binPages, s.goSys, s.heapInuse, s.cpu, s.samples)
	}
	mb.WriteString("\n")
	if native != nil {
		verdict := within(native.hwm)
		fmt.Fprintf(&mb, "Natively the agent peaks at %.1f MB resident, %s the %d MB budget: %.1f MB of it are the binary's "+
			"file-backed pages (clean, shared with the page cache), %.1f MB anonymous memory.", native.hwm, verdict, LimitMB, native.binPages, native.anon)
		fmt.Fprintf(&sb, "native: peak %.1f MB, %s the %d MB budget\n", native.hwm, verdict, LimitMB)
	}
	if arm != nil {
		fmt.Fprintf(&mb, " Under qemu the process is qemu, whose own heap and translated code come on top of the agent's, so its "+
			"resident set says little; but qemu maps the arm64 binary from its file and the agent's accesses fault its pages in, "+
			"so the binary's resident pages, %.1f MB, are the arm64 agent's own.", arm.binPages)
		if native != nil {
			est := arm.binPages + native.anon
			fmt.Fprintf(&mb, " With the native agent's anonymous memory (the Go runtime's figures are the same on both: %.1f vs %.1f MB "+
				"heap in use), the arm64 agent comes to about %.1f MB, %s the budget.", native.heapInuse, arm.heapInuse, est, within(est))
			fmt.Fprintf(&sb, "arm64: about %.1f MB (its binary's pages %.1f MB + the native anonymous %.1f MB), %s the budget\n",
				est, arm.binPages, native.anon, within(est))
		}
	}
	fmt.Fprintf(&mb, "\n%s\n", end)
	return sb.String(), mb.String()
}

func within(mb float64) string {
	if mb > LimitMB {
		return "OVER"
	}
	return "within"
}

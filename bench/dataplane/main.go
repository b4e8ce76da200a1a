// Command dataplane benchmarks the NAT data plane in the lab of test/dataplane/topo (run as
// root): TCP throughput from the private host to the internet host through a NAT instance
// applied by `headnat dataplane apply`, against the same topology with plain routing and no
// rules on the NAT instance, and new TCP connections per second through each. It writes its
// figures into its own section of docs/BENCHMARKS.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
)

const benchName = "bench-dataplane"

type config struct {
	load    string // /proc/loadavg when the run started
	headnat string
	runs    int
	seconds int
	conns   int
	workers int
	out     string
}

func main() {
	// Helpers run inside a namespace by this same binary.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "_accept":
			exitOn(acceptMain(os.Args[2:]))
			return
		case "_connect":
			exitOn(connectMain(os.Args[2:]))
			return
		}
	}
	var c config
	fs := flag.NewFlagSet("bench-dataplane", flag.ContinueOnError)
	fs.StringVar(&c.headnat, "headnat", "", "headnat binary (default: built into a temporary directory)")
	fs.IntVar(&c.runs, "runs", 7, "iperf3 runs per setup (median reported)")
	fs.IntVar(&c.seconds, "seconds", 5, "seconds per iperf3 run")
	fs.IntVar(&c.conns, "conns", 5000, "TCP connections per connection-rate run (3 runs per setup)")
	fs.IntVar(&c.workers, "workers", 8, "concurrent connecting workers")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "file whose bench-dataplane section is replaced (\"\" prints only)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if c.runs < 1 || c.runs > 50 || c.seconds < 1 || c.seconds > 60 || c.conns < 1 || c.conns > 20000 || c.workers < 1 || c.workers > 64 {
		fmt.Fprintln(os.Stderr, "bench-dataplane: --runs 1..50, --seconds 1..60, --conns 1..20000, --workers 1..64")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := c.run(ctx)
	stop()
	exitOn(err)
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-dataplane:", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

const (
	iperfPort   = 5201
	acceptPort  = 7100
	echoPort    = 7007
	connRuns    = 3
	stepTimeout = 2 * time.Minute
)

type setup struct {
	name string
	t    *topo.Topology
	// what the echo server must see: the EIP through the NAT, the private address routed
	wantSeen string
	gbps     []float64
	cps      []float64
}

func (c *config) run(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it builds network namespaces): sudo make bench-dataplane")
	}
	for _, tool := range []string{"ip", "iptables", "iperf3", "socat", "ss"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed", tool)
		}
	}
	netns.Sweep()
	c.load = benchdoc.LoadAvg()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "bench-dataplane-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.headnat == "" {
		c.headnat = filepath.Join(tmp, "headnat")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", c.headnat, "github.com/headnat/headnat/cmd/headnat").CombinedOutput(); err != nil {
			return fmt.Errorf("build headnat: %w: %s", err, out)
		}
	}
	if c.headnat, err = filepath.Abs(c.headnat); err != nil {
		return err
	}

	nat := &setup{name: "headnat", wantSeen: topo.EIP}
	routed := &setup{name: "routed", wantSeen: topo.PrivAddr}
	for _, s := range []struct {
		s    *setup
		mode topo.Mode
	}{{nat, topo.ModeNAT}, {routed, topo.ModeRouted}} {
		t, err := topo.Build(s.mode)
		if err != nil {
			return err
		}
		defer t.Close()
		s.s.t = t
	}
	state := filepath.Join(tmp, "dataplane.json")
	if out, err := nat.t.NAT.Run(c.headnat, "dataplane", "apply", "--vpc-cidr", topo.VPCCIDR, "--state-path", state); err != nil {
		return fmt.Errorf("headnat dataplane apply: %w", err)
	} else {
		fmt.Fprintf(os.Stderr, "headnat dataplane apply:\n%s", out)
	}

	for _, s := range []*setup{nat, routed} {
		in := s.t.Inet
		if err := topo.StartEcho(in, topo.InetAddr, echoPort); err != nil {
			return err
		}
		seen, err := topo.Dial(s.t.Priv, topo.InetAddr, echoPort, 3*time.Second)
		if err != nil {
			return fmt.Errorf("%s: private -> internet: %w", s.name, err)
		}
		if seen != s.wantSeen {
			return fmt.Errorf("%s: the internet host saw %s, want %s", s.name, seen, s.wantSeen)
		}
		if err := in.Start(exec.Command("iperf3", "-s", "-B", topo.InetAddr, "-p", fmt.Sprint(iperfPort))); err != nil {
			return err
		}
		if err := in.Start(exec.Command(self, "_accept", "-addr", fmt.Sprintf("%s:%d", topo.InetAddr, acceptPort))); err != nil {
			return err
		}
		for _, p := range []int{iperfPort, acceptPort} {
			if err := topo.WaitListen(in, p, 5*time.Second); err != nil {
				return err
			}
		}
	}

	// Alternate the setups run by run so that drift on the machine hits both alike.
	for i := range c.runs {
		order := []*setup{nat, routed}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			g, err := c.iperf(ctx, s)
			if err != nil {
				return fmt.Errorf("%s: iperf3 run %d: %w", s.name, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "%s: iperf3 run %d: %.2f Gbit/s\n", s.name, i+1, g)
			s.gbps = append(s.gbps, g)
		}
	}
	for i := range connRuns {
		order := []*setup{nat, routed}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, s := range order {
			r, err := c.connect(ctx, self, s)
			if err != nil {
				return fmt.Errorf("%s: connection run %d: %w", s.name, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "%s: connection run %d: %.0f/s\n", s.name, i+1, r)
			s.cps = append(s.cps, r)
		}
	}

	// Still correct after the load.
	if out, err := nat.t.NAT.Run(c.headnat, "dataplane", "verify", "--vpc-cidr", topo.VPCCIDR, "--state-path", state); err != nil {
		return fmt.Errorf("headnat dataplane verify after the benchmark: %w: %s", err, out)
	}

	section := c.report(nat, routed)
	fmt.Print(section)
	if c.out == "" {
		return nil
	}
	if err := benchdoc.Update(c.out, benchName, section); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "updated %s\n", c.out)
	return nil
}

func (c *config) iperf(ctx context.Context, s *setup) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(c.seconds)*time.Second+30*time.Second)
	defer cancel()
	out, err := s.t.Priv.Cmd(ctx, "iperf3", "-c", topo.InetAddr, "-p", fmt.Sprint(iperfPort), "-t", fmt.Sprint(c.seconds), "-J").Output()
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil {
		return 0, fmt.Errorf("%v: %s", errors.Join(err, jerr), bytes.TrimSpace(out))
	}
	if res.Error != "" {
		return 0, errors.New(res.Error)
	}
	if err != nil {
		return 0, err
	}
	if res.End.SumReceived.BitsPerSecond <= 0 {
		return 0, errors.New("no throughput reported")
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

type connectResult struct {
	OK      int64   `json:"ok"`
	Failed  int64   `json:"failed"`
	Seconds float64 `json:"seconds"`
}

func (c *config) connect(ctx context.Context, self string, s *setup) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	out, err := s.t.Priv.Cmd(ctx, self, "_connect", "-addr", fmt.Sprintf("%s:%d", topo.InetAddr, acceptPort),
		"-n", fmt.Sprint(c.conns), "-workers", fmt.Sprint(c.workers), "-timeout", "60s").Output()
	if err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	var r connectResult
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, err
	}
	if r.Failed > 0 || r.OK != int64(c.conns) {
		return 0, fmt.Errorf("%d of %d connections failed (%d completed)", r.Failed, c.conns, r.OK)
	}
	return float64(r.OK) / r.Seconds, nil
}

// acceptMain serves TCP: each connection gets one byte, then the server closes it.
func acceptMain(args []string) error {
	fs := flag.NewFlagSet("_accept", flag.ContinueOnError)
	addr := fs.String("addr", "", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			_, _ = conn.Write([]byte{'.'})
			_ = conn.Close()
		}()
	}
}

// connectMain opens n connections with a pool of workers, each reading the server's byte
// until it closes, and prints a connectResult. It stops at the timeout.
func connectMain(args []string) error {
	fs := flag.NewFlagSet("_connect", flag.ContinueOnError)
	addr := fs.String("addr", "", "server address")
	n := fs.Int("n", 1000, "connections")
	workers := fs.Int("workers", 8, "concurrent workers")
	timeout := fs.Duration("timeout", time.Minute, "overall limit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ok, failed, next atomic.Int64
	start := time.Now()
	deadline := start.Add(*timeout)
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16)
			for next.Add(1) <= int64(*n) && time.Now().Before(deadline) {
				conn, err := net.DialTimeout("tcp", *addr, 3*time.Second)
				if err != nil {
					failed.Add(1)
					continue
				}
				_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
				_, err = io.ReadFull(conn, buf[:1])
				if err == nil {
					_, err = conn.Read(buf) // the server's FIN
					if errors.Is(err, io.EOF) {
						err = nil
					}
				}
				_ = conn.Close()
				if err != nil {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(connectResult{OK: ok.Load(), Failed: failed.Load(), Seconds: time.Since(start).Seconds()})
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func iperfVersion() string {
	out, err := exec.Command("iperf3", "--version").Output()
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(out))
	if len(f) >= 2 {
		return f[1]
	}
	return "unknown"
}

func join(xs []float64, format string) string {
	var s []string
	for _, x := range xs {
		s = append(s, fmt.Sprintf(format, x))
	}
	return strings.Join(s, ", ")
}

func (c *config) report(nat, routed *setup) string {
	gN, gR := median(nat.gbps), median(routed.gbps)
	var paired []float64 // runs were interleaved: run i of each setup ran back to back
	for i := range min(len(nat.gbps), len(routed.gbps)) {
		paired = append(paired, nat.gbps[i]/routed.gbps[i])
	}
	cN, cR := median(nat.cps), median(routed.cps)
	ratio := gN / gR
	verdict := "meets the target"
	if ratio < 0.95 {
		verdict = "BELOW the target"
	}
	var b strings.Builder
	begin, end := benchdoc.Markers(benchName)
	fmt.Fprintf(&b, "%s\n## Data plane: forwarding through the NAT instance\n\n", begin)
	fmt.Fprintf(&b, "Measured %s on %s, iperf3 %s; load average %s at the start.\n\n",
		time.Now().UTC().Format("2006-01-02"), benchdoc.DescribeMachine(), iperfVersion(), c.load)
	b.WriteString("Lab: `test/dataplane/topo` on one kernel (veth pairs between network namespaces): private host →\n" +
		"VPC router (the private route table sends 0.0.0.0/0 to the NAT instance) → single-interface NAT instance\n" +
		"hairpinning on eth0 → router/IGW → internet host, and the replies back the same way. *headnat*: the NAT\n" +
		"instance after `headnat dataplane apply` (masquerade, forward filter, MSS clamp, conntrack), the IGW\n" +
		"lets out only the NAT's address. *Routed*: the same topology and paths, the NAT instance only forwards\n" +
		"(ip_forward=1, no rules, no conntrack), the IGW lets the private subnet out unmapped and the internet\n" +
		"host routes the replies back. (Mapping the private host at the IGW instead does not work in this lab:\n" +
		"the router sees the flow twice, before and after the NAT instance, and conntrack has already decided\n" +
		"it needs no NAT on the first pass.)\n\n")
	b.WriteString("| measure | headnat | routed | ratio |\n|---|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| TCP throughput private → internet, iperf3 1 stream × %d s, median of %d | %.2f Gbit/s | %.2f Gbit/s | **%.3f×** (target ≥ 0.95×: %s) |\n",
		c.seconds, c.runs, gN, gR, ratio, verdict)
	fmt.Fprintf(&b, "| new TCP connections per second, %d connects × %d workers, median of %d | %.0f/s | %.0f/s | %.3f× |\n\n",
		c.conns, c.workers, connRuns, cN, cR, cN/cR)
	fmt.Fprintf(&b, "Runs (interleaved, so that drift on the machine hits both alike): throughput headnat [%s], routed [%s] Gbit/s,\n"+
		"run-by-run ratios [%s] (median %.3f×); connections headnat [%s], routed [%s] per second.\n",
		join(nat.gbps, "%.2f"), join(routed.gbps, "%.2f"), join(paired, "%.3f"), median(paired), join(nat.cps, "%.0f"), join(routed.cps, "%.0f"))
	b.WriteString("Every connection completed; `headnat dataplane verify` was clean after the load.\n\n")
	fmt.Fprintf(&b, "Command: `sudo make bench-dataplane`, which runs `go run ./bench/dataplane %s`.\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(&b, "%s\n", end)
	return b.String()
}

// Command failover benchmarks unplanned failover in the lab of test/lab (run as root, with the
// agents built into bin/): N times a NAT instance dies (link down, agent SIGKILLed), alternating
// between the AZs, while each private host sends a request every 50 ms to the echo server; the
// outage each host sees is measured, then the instance is revived and the fail-back awaited.
// Then the lab idles, healthy and with the same traffic, and every route move is a false
// failover. It writes its figures into its own section of docs/BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
)

type config struct {
	n             int
	idle          time.Duration
	interval      time.Duration
	failbackAfter time.Duration
	bin           string
	out           string
	keepLogs      bool
}

// benchName names this benchmark and its section of docs/BENCHMARKS.md.
const benchName = "bench-failover"

func main() {
	var c config
	fs := flag.NewFlagSet(benchName, flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 20, "unplanned failures, alternating between AZ a and AZ b (0: none)")
	fs.DurationVar(&c.idle, "idle", 10*time.Minute, "idle run with both NATs healthy (0: none)")
	fs.DurationVar(&c.interval, "interval", 50*time.Millisecond, "request interval per private host")
	fs.DurationVar(&c.failbackAfter, "failback-after", 5*time.Second, "agents' failback_after (shortened so that the run is short; detection does not depend on it)")
	fs.StringVar(&c.bin, "bin", "", "directory with headnat and ec2-metadata-mock (default: $HEADNAT_BIN or the repository's bin/)")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "file whose "+benchName+" section is replaced (\"\" prints only)")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the lab's directory (agent logs) after the run")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if c.n < 0 || c.n > 200 || c.idle < 0 || c.idle > 2*time.Hour || c.interval < 10*time.Millisecond ||
		c.interval > time.Second || c.failbackAfter < time.Second || c.failbackAfter > 5*time.Minute {
		fmt.Fprintln(os.Stderr, benchName+": -n 0..200, -idle 0..2h, -interval 10ms..1s, -failback-after 1s..5m")
		os.Exit(2)
	}
	if c.n == 0 && c.idle == 0 {
		fmt.Fprintln(os.Stderr, benchName+": nothing to do (-n 0 and -idle 0)")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := c.run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, benchName+":", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

// progress prints what the benchmark does, with the time since it started.
type progress struct{ start time.Time }

func (p progress) say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
}

func (c *config) run(ctx context.Context) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it builds network namespaces): sudo make bench-failover")
	}
	for _, tool := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed", tool)
		}
	}
	netns.Sweep()
	r := &report{cfg: c, args: os.Args[1:], machine: benchdoc.DescribeMachine(), loadStart: benchdoc.LoadAvg()}
	p := progress{start: time.Now()}

	dir, err := os.MkdirTemp("", benchName+"-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil || c.keepLogs {
			fmt.Fprintf(os.Stderr, "lab directory (agent and lab logs) kept: %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()
	logf, err := os.Create(dir + "/lab.log")
	if err != nil {
		return err
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))

	p.say("building the lab (real agents from bin/, failback_after=%s, default probe settings) ...", c.failbackAfter)
	l, err := lab.Up(ctx, lab.Options{Name: benchName, StateDir: dir, BinDir: c.bin, FailbackAfter: c.failbackAfter, Logger: log})
	if err != nil {
		return fmt.Errorf("lab up: %w", err)
	}
	defer func() {
		p.say("tearing the lab down ...")
		l.Close()
	}()
	st, err := l.AgentStatus(ctx, "a")
	if err != nil {
		return fmt.Errorf("agent a /status: %w", err)
	}
	r.agentCfg = st.Config
	p.say("lab up; agents run with probe interval %s, timeout %s, rise %d, fall %d, failback_after %s",
		st.Config.ProbeInterval, st.Config.ProbeTimeout, st.Config.Rise, st.Config.Fall, st.Config.FailbackAfter)

	for i := range c.n {
		site := l.Sites[i%len(l.Sites)]
		f, err := c.failure(ctx, l, p, i+1, site)
		if f != nil {
			r.failures = append(r.failures, *f)
		}
		if err != nil {
			return fmt.Errorf("failure %d (nat-%s): %w", i+1, site.Name, err)
		}
	}
	if c.idle > 0 {
		idle, err := c.idleRun(ctx, l, p)
		if err != nil {
			return fmt.Errorf("idle run: %w", err)
		}
		r.idle = idle
	}
	r.loadEnd = benchdoc.LoadAvg()
	r.finished = time.Now()

	text := r.markdown()
	fmt.Print(r.summary())
	if c.out == "" {
		fmt.Print(text)
		return nil
	}
	if err := benchdoc.Update(c.out, benchName, text); err != nil {
		return err
	}
	p.say("wrote the %s section of %s", benchName, c.out)
	return nil
}

// Command failover benchmarks unplanned failover in the lab of test/lab (run as root, with the
// agents built into bin/): N times a NAT instance dies (link down, agent SIGKILLed), alternating
// between the AZs, while each private host sends a request every 50 ms to the echo server; the
// outage each host sees is measured, then the instance is revived and the fail-back awaited.
// Then the lab idles, healthy and with the same traffic, and every route move is a false
// failover; optionally a second idle run follows with CPU burner processes loading the host
// (never during the failures, whose figures stay comparable). It writes its figures into its own section of docs/BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
)

type config struct {
	n             int
	idle          time.Duration
	loadedIdle    time.Duration
	idleLoad      int
	interval      time.Duration
	failbackAfter time.Duration
	bin           string
	out           string
	keepLogs      bool
}

// benchName names this benchmark and its section of docs/BENCHMARKS.md.
const benchName = "bench-failover"

func main() {
	if len(os.Args) > 1 && os.Args[1] == burnArg {
		os.Exit(burnMain(os.Args[2:]))
	}
	var c config
	fs := flag.NewFlagSet(benchName, flag.ContinueOnError)
	fs.IntVar(&c.n, "n", 20, "unplanned failures, alternating between AZ a and AZ b (0: none)")
	fs.DurationVar(&c.idle, "idle", 10*time.Minute, "idle run with both NATs healthy (0: none)")
	fs.DurationVar(&c.loadedIdle, "loaded-idle", 0, "second idle run, after the first, with -idle-load CPU burners running (0: none)")
	fs.IntVar(&c.idleLoad, "idle-load", 0, "busy-looping burner processes (normal priority, like the agents) during the loaded idle run; they stop when it ends")
	fs.DurationVar(&c.interval, "interval", 50*time.Millisecond, "request interval per private host")
	fs.DurationVar(&c.failbackAfter, "failback-after", 5*time.Second, "agents' failback_after (shortened so that the run is short; detection does not depend on it)")
	fs.StringVar(&c.bin, "bin", "", "directory with headnat and ec2-metadata-mock (default: $HEADNAT_BIN or the repository's bin/)")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "file whose "+benchName+" section is replaced (\"\" prints only)")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the lab's directory (agent logs) after the run (kept anyway after an error or when an idle run saw anything happen)")
	benchlab.Main(fs, c.validate, c.run)
}

func (c *config) validate() error {
	switch {
	case c.n < 0 || c.n > 200 || c.idle < 0 || c.idle > 2*time.Hour || c.loadedIdle < 0 || c.loadedIdle > 2*time.Hour ||
		c.idleLoad < 0 || c.idleLoad > 64 || c.interval < 10*time.Millisecond || c.interval > time.Second ||
		c.failbackAfter < time.Second || c.failbackAfter > 5*time.Minute:
		return errors.New("-n 0..200, -idle 0..2h, -loaded-idle 0..2h, -idle-load 0..64, -interval 10ms..1s, -failback-after 1s..5m")
	case (c.loadedIdle > 0) != (c.idleLoad > 0):
		return errors.New("-loaded-idle and -idle-load go together: both 0, or both set")
	case c.n == 0 && c.idle == 0 && c.loadedIdle == 0:
		return errors.New("nothing to do (-n 0, -idle 0 and -loaded-idle 0)")
	}
	return nil
}

func (c *config) run(ctx context.Context) (err error) {
	if err := benchlab.Prepare(benchName, "ip", "iptables"); err != nil {
		return err
	}
	r := &report{cfg: c, args: os.Args[1:], machine: benchdoc.DescribeMachine(), loadStart: benchdoc.LoadAvg()}
	p := benchlab.Progress{Start: time.Now()}

	p.Say("building the lab (real agents from bin/, failback_after=%s, default probe settings) ...", c.failbackAfter)
	bl, err := benchlab.Up(ctx, benchName, lab.Options{Name: benchName, BinDir: c.bin, FailbackAfter: c.failbackAfter}, p)
	if err != nil {
		return err
	}
	defer func() {
		// An idle run with anything to explain keeps the agents' logs that explain it.
		eventful := false
		for _, id := range r.idles() {
			eventful = eventful || id.eventful()
		}
		bl.Close(err != nil || c.keepLogs || eventful)
	}()
	l := bl.Lab
	st, err := l.AgentStatus(ctx, "a")
	if err != nil {
		return fmt.Errorf("agent a /status: %w", err)
	}
	r.agentCfg = st.Config
	p.Say("lab up; agents run with probe interval %s, timeout %s, rise %d, fall %d, failback_after %s",
		st.Config.ProbeInterval, st.Config.ProbeTimeout, st.Config.Rise, st.Config.Fall, st.Config.FailbackAfter)

	for i := range c.n {
		site := l.Sites()[i%len(l.Sites())]
		f, err := c.failure(ctx, l, p, i+1, site)
		if f != nil {
			r.failures = append(r.failures, *f)
		}
		if err != nil {
			return fmt.Errorf("failure %d (nat-%s): %w", i+1, site.Name, err)
		}
	}
	if c.idle > 0 {
		idle, err := c.idleRun(ctx, l, p, st.Config, c.idle, 0)
		if err != nil {
			return fmt.Errorf("idle run: %w", err)
		}
		r.idle = idle
	}
	if c.loadedIdle > 0 {
		idle, err := c.idleRun(ctx, l, p, st.Config, c.loadedIdle, c.idleLoad)
		if err != nil {
			return fmt.Errorf("loaded idle run: %w", err)
		}
		r.loaded = idle
	}
	r.loadEnd = benchdoc.LoadAvg()
	r.finished = time.Now()

	return benchlab.Publish(benchName, c.out, r.summary(), r.markdown(), p)
}

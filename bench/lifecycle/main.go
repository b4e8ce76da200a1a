// Command lifecycle benchmarks planned replacements of NAT instances in the lab of test/lab (run
// as root, with the agents built into bin/), with each private host sending a request every
// -interval to the echo server throughout:
//
//   - Instance refreshes, N times: every NAT instance is replaced, one at a time, as the lab's
//     Refresh does (launch a replacement in the same AZ, wait until its agent completes the
//     launch hook, terminate the old one through the terminate hook). Measured: requests and
//     failed requests, the longest outage, and per replaced NAT launch → InService, terminate
//     start → its route table handed to the new NAT, terminate start → instance terminated.
//   - Spot interruptions, N times, alternating between the AZs: a spot interruption notice in
//     a NAT's IMDS, the instance terminated -spot-delay later. Measured: failed requests, notice
//     → route table moved, and the margin between that move and the interruption. Then a NAT is
//     launched in that AZ again and the run waits until its table is back home.
//
// It writes its figures into its own section of docs/BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
	"github.com/headnat/headnat/test/lab"
)

// benchName names this benchmark and its section of docs/BENCHMARKS.md.
const benchName = "bench-lifecycle"

type config struct {
	refreshes     int
	spots         int
	interval      time.Duration
	spotDelay     time.Duration
	failbackAfter time.Duration
	bin           string
	out           string
	keepLogs      bool
}

func main() {
	var c config
	fs := flag.NewFlagSet(benchName, flag.ContinueOnError)
	fs.IntVar(&c.refreshes, "refreshes", 5, "instance refreshes, each replacing every NAT instance one at a time (0: none)")
	fs.IntVar(&c.spots, "spots", 6, "spot interruptions, alternating between AZ a and AZ b (0: none)")
	fs.DurationVar(&c.interval, "interval", 50*time.Millisecond, "request interval per private host")
	fs.DurationVar(&c.spotDelay, "spot-delay", 20*time.Second, "spot notice → interruption (AWS gives 2m; shortened so that the run is short)")
	fs.DurationVar(&c.failbackAfter, "failback-after", 5*time.Second, "agents' failback_after (shortened: it only delays the table's return to a relaunched NAT)")
	fs.StringVar(&c.bin, "bin", "", "directory with headnat and ec2-metadata-mock (default: $HEADNAT_BIN or the repository's bin/)")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "file whose "+benchName+" section is replaced (\"\" prints only)")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the lab's directory (agent and lab logs) after the run (kept anyway after an error or a failed request)")
	benchlab.Main(fs, c.validate, c.run)
}

func (c *config) validate() error {
	switch {
	case c.refreshes < 0 || c.refreshes > 100 || c.spots < 0 || c.spots > 100:
		return errors.New("-refreshes, -spots: 0..100")
	case c.refreshes+c.spots == 0:
		return errors.New("nothing to do (-refreshes 0 and -spots 0)")
	case c.interval < 10*time.Millisecond || c.interval > time.Second:
		return errors.New("-interval 10ms..1s")
	case c.spotDelay < 10*time.Second || c.spotDelay > lab.DefaultSpotDelay:
		return fmt.Errorf("-spot-delay 10s..%s", lab.DefaultSpotDelay)
	case c.failbackAfter < time.Second || c.failbackAfter > 5*time.Minute:
		return errors.New("-failback-after 1s..5m")
	}
	return nil
}

func (c *config) run(ctx context.Context) (err error) {
	if err := benchlab.Prepare(benchName, "ip", "iptables"); err != nil {
		return err
	}
	r := &report{cfg: c, args: os.Args[1:], machine: benchdoc.DescribeMachine(), loadStart: benchdoc.LoadAvg()}
	p := benchlab.Progress{Start: time.Now()}

	p.Say("building the lab (real agents from bin/, failback_after=%s, default probe and lifecycle settings) ...", c.failbackAfter)
	bl, err := benchlab.Up(ctx, benchName, lab.Options{Name: benchName, BinDir: c.bin, FailbackAfter: c.failbackAfter}, p)
	if err != nil {
		return err
	}
	defer func() {
		// A run that lost a request keeps the agents' logs that explain it.
		bl.Close(err != nil || c.keepLogs || r.total().failed > 0)
	}()
	l := bl.Lab
	st, err := l.AgentStatus(ctx, "a")
	if err != nil {
		return fmt.Errorf("agent a /status: %w", err)
	}
	r.agentCfg = st.Config
	p.Say("lab up with NATs %s; agents run with probe interval %s, timeout %s, rise %d, fall %d, failback_after %s",
		strings.Join(l.NATNames(), ", "), st.Config.ProbeInterval, st.Config.ProbeTimeout, st.Config.Rise, st.Config.Fall, st.Config.FailbackAfter)

	for i := range c.refreshes {
		rr, err := c.refresh(ctx, l, p, i+1)
		if rr != nil {
			r.refreshes = append(r.refreshes, *rr)
		}
		if err != nil {
			return fmt.Errorf("refresh %d: %w", i+1, err)
		}
	}
	for i := range c.spots {
		az := lab.AZs[i%len(lab.AZs)]
		sr, err := c.spot(ctx, l, p, i+1, az)
		if sr != nil {
			r.spots = append(r.spots, *sr)
		}
		if err != nil {
			return fmt.Errorf("spot interruption %d (AZ %s): %w", i+1, az, err)
		}
	}
	r.loadEnd = benchdoc.LoadAvg()
	r.finished = time.Now()

	return benchlab.Publish(benchName, c.out, r.summary(), r.markdown(), p)
}

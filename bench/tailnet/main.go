// Command tailnet benchmarks how long the admin's access to the VPC through the tailnet is
// interrupted when the primary subnet router goes away, in the lab of test/lab with its
// tailnet (real headscale, a real tailscaled per NAT driven by its agent, an admin node that
// accepts the routes; run as root, with the binaries in bin/). The admin GETs a private host's
// service every -interval, each request on a fresh connection with a short timeout.
//
//   - Unplanned, N times: the primary router's NAT instance dies (lab Kill: link down, agent
//     SIGKILLed, tailscaled cut off with it). Measured: kill → start of the first successful
//     admin request through the other NAT. Then the NAT is revived and the run waits until the
//     lab is whole again, the revived NAT a standby router.
//   - Planned, N times: the primary router's agent gets SIGTERM and drains (withdraws its
//     tailnet routes first, then hands over its route tables, then exits). Measured: the
//     admin's longest run of failed requests, and the failed requests. Then the agent is
//     started again and the run waits until it is a healthy standby.
//
// Optionally (-baseline-planned) a second lab repeats the planned drains with headscale's
// default batching, for comparison. It writes its figures into its own section of
// docs/BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/bench/internal/benchlab"
)

// benchName names this benchmark and its section of docs/BENCHMARKS.md.
const benchName = "bench-tailnet"

type config struct {
	unplanned, planned, baselinePlanned int
	interval, timeout                   time.Duration
	failbackAfter                       time.Duration
	batchDelay, storeTimeout            time.Duration // headscale tuning of the main lab; 0: the lab's default
	bin, out                            string
	keepLogs                            bool
}

func main() {
	var c config
	fs := flag.NewFlagSet(benchName, flag.ContinueOnError)
	fs.IntVar(&c.unplanned, "unplanned", 12, "unplanned deaths of the primary router's NAT (lab Kill)")
	fs.IntVar(&c.planned, "planned", 12, "planned drains of the primary router's agent (SIGTERM)")
	fs.IntVar(&c.baselinePlanned, "baseline-planned", 0, "planned drains in a second lab with headscale's default batching, for comparison (0: none)")
	fs.DurationVar(&c.interval, "interval", 100*time.Millisecond, "the admin's request interval")
	fs.DurationVar(&c.timeout, "timeout", 500*time.Millisecond, "the admin's per-request timeout")
	fs.DurationVar(&c.failbackAfter, "failback-after", 5*time.Second, "agents' failback_after (shortened so that the run is short; the tailnet does not depend on it)")
	fs.DurationVar(&c.batchDelay, "batch-change-delay", 0, "headscale tuning.batch_change_delay of the main lab (0: the lab's default)")
	fs.DurationVar(&c.storeTimeout, "node-store-batch-timeout", 0, "headscale tuning.node_store_batch_timeout of the main lab (0: the lab's default)")
	fs.StringVar(&c.bin, "bin", "", "directory with headnat, headscale, tailscaled, tailscale and ec2-metadata-mock (default: $HEADNAT_BIN or the repository's bin/)")
	fs.StringVar(&c.out, "out", "docs/BENCHMARKS.md", "file whose "+benchName+" section is replaced (\"\" prints only)")
	fs.BoolVar(&c.keepLogs, "keep-logs", false, "keep the labs' directories (agent, tailscaled, headscale logs) after the run (kept anyway after an error)")
	benchlab.Main(fs, c.validate, c.run)
}

func (c *config) validate() error {
	switch {
	case c.unplanned < 0 || c.unplanned > 100 || c.planned < 0 || c.planned > 100 || c.baselinePlanned < 0 || c.baselinePlanned > 100:
		return errors.New("-unplanned, -planned, -baseline-planned: 0..100")
	case c.unplanned+c.planned == 0:
		return errors.New("nothing to do (-unplanned 0 and -planned 0)")
	case c.interval < 50*time.Millisecond || c.interval > time.Second || c.timeout < 100*time.Millisecond || c.timeout > 5*time.Second:
		return errors.New("-interval 50ms..1s, -timeout 100ms..5s")
	case c.failbackAfter < time.Second || c.failbackAfter > 5*time.Minute:
		return errors.New("-failback-after 1s..5m")
	case c.batchDelay < 0 || c.batchDelay > 10*time.Second || c.storeTimeout < 0 || c.storeTimeout > 10*time.Second:
		return errors.New("-batch-change-delay, -node-store-batch-timeout: 0..10s")
	}
	return nil
}

func (c *config) run(ctx context.Context) error {
	if err := benchlab.Prepare(benchName, "ip", "iptables", "socat"); err != nil {
		return err
	}
	r := &report{cfg: c, args: os.Args[1:], machine: benchdoc.DescribeMachine(), loadStart: benchdoc.LoadAvg()}
	p := benchlab.Progress{Start: time.Now()}

	main, err := c.runLab(ctx, p, "main", c.batchDelay, c.storeTimeout, c.unplanned, c.planned)
	r.main = main
	if err != nil {
		return err
	}
	if c.baselinePlanned > 0 {
		// headscale's own defaults, set explicitly.
		base, err := c.runLab(ctx, p, "baseline", defaultBatchChangeDelay, defaultNodeStoreBatchTimeout, 0, c.baselinePlanned)
		r.baseline = base
		if err != nil {
			return err
		}
	}
	r.loadEnd = benchdoc.LoadAvg()
	r.finished = time.Now()

	return benchlab.Publish(benchName, c.out, r.summary(), r.markdown(), p)
}

// Package health runs the agent's probes: its own egress and data plane (Self) and its peers'
// /healthz over the VPC, with a second (tailnet) path for corroboration (PeerTracker). Every
// verdict goes through rise/fall hysteresis (RiseFall). Clocks are the caller's: now is passed in.
package health

import (
	"errors"
	"fmt"
	"time"
)

// Config is the probe schedule and hysteresis of one checker.
//
// A tick starts every Interval and runs all of its probes concurrently, each bounded by Timeout.
// Timeout must be shorter than Interval so that a tick's probes have finished before the next
// tick starts: ticks never overlap and results arrive in order.
//
// Worst-case detection of an unplanned peer failure (the peer dies just after answering a probe):
// the next Fall probes all fail, the last one starts at most Fall*Interval after the failure and
// gives up Timeout later, so the peer is marked unhealthy within Fall*Interval + Timeout.
// The defaults live in agent/config (the one home of every setting), which builds this.
type Config struct {
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive passes to become healthy (and from a fresh start)
	Fall     int // consecutive failures to become unhealthy
}

// DetectionBound is the worst-case time from a failure to an unhealthy verdict (see Config).
func (c Config) DetectionBound() time.Duration {
	return time.Duration(c.Fall)*c.Interval + c.Timeout
}

// Validate reports every nonsensical field in one error.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("interval must be positive, got %v", c.Interval))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout must be positive, got %v", c.Timeout))
	}
	if c.Interval > 0 && c.Timeout > 0 && c.Timeout >= c.Interval {
		errs = append(errs, fmt.Errorf("timeout %v must be shorter than interval %v (ticks must not overlap)", c.Timeout, c.Interval))
	}
	if c.Rise < 1 {
		errs = append(errs, fmt.Errorf("rise must be at least 1, got %d", c.Rise))
	}
	if c.Fall < 1 {
		errs = append(errs, fmt.Errorf("fall must be at least 1, got %d", c.Fall))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("health config: %w", err)
	}
	return nil
}

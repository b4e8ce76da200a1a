package health

import "time"

// RiseFall is AWSnycast-style hysteresis: a fresh counter is unhealthy ("can't pass yet") until
// rise consecutive passes; a healthy one turns unhealthy after fall consecutive failures.
// Not safe for concurrent use.
type RiseFall struct {
	rise, fall int
	healthy    bool
	decided    bool // a verdict has been reached at least once
	passes     int  // consecutive passes while unhealthy
	fails      int  // consecutive failures (while healthy, or from a fresh start)
	since      time.Time
}

// NewRiseFall returns a fresh (unhealthy) counter; rise and fall below 1 count as 1.
func NewRiseFall(rise, fall int) *RiseFall {
	return &RiseFall{rise: max(rise, 1), fall: max(fall, 1)}
}

// Observe records one probe result at now and returns the verdict and whether it just changed.
func (r *RiseFall) Observe(ok bool, now time.Time) (healthy, changed bool) {
	if r.since.IsZero() {
		r.since = now
	}
	if ok {
		r.fails = 0
		if !r.healthy {
			r.passes++
			if r.passes >= r.rise {
				r.healthy, r.decided, changed = true, true, true
				r.passes = 0
			}
		}
	} else {
		r.passes = 0
		r.fails++
		if r.fails >= r.fall {
			r.decided = true
			if r.healthy {
				r.healthy, changed = false, true
			}
		}
	}
	if changed {
		r.since = now
	}
	return r.healthy, changed
}

// Healthy is the current verdict.
func (r *RiseFall) Healthy() bool { return r.healthy }

// Since is when the current verdict began: the last change, or the first observation if the
// verdict never changed (zero before any observation).
func (r *RiseFall) Since() time.Time { return r.since }

// Decided reports whether a verdict was ever reached: rise consecutive passes, or fall
// consecutive failures. A fresh counter is unhealthy but undecided.
func (r *RiseFall) Decided() bool { return r.decided }

// Streak returns the consecutive passes counted towards rise (while unhealthy) and the
// consecutive failures counted towards fall.
func (r *RiseFall) Streak() (passes, fails int) { return r.passes, r.fails }

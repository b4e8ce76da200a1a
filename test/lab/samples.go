package lab

import (
	"slices"
	"sync"
	"time"
)

// Samples collects the samples of a traffic loop (Traffic, AdminTraffic); Add fits their fn.
// It is safe for concurrent use.
type Samples struct {
	mu sync.Mutex
	s  []Sample
}

// Add records one sample.
func (c *Samples) Add(s Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s = append(c.s, s)
}

// Count returns how many samples there are and how many of them failed.
func (c *Samples) Count() (n, failed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.s {
		if s.Err != nil {
			failed++
		}
	}
	return len(c.s), failed
}

// Last returns the last n samples (fewer if there are not as many).
func (c *Samples) Last(n int) []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.s[max(0, len(c.s)-n):])
}

// Since returns the samples started at or after t, in start order.
func (c *Samples) Since(t time.Time) []Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Sample
	for _, s := range c.s {
		if !s.Time.Before(t) {
			out = append(out, s)
		}
	}
	slices.SortStableFunc(out, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	return out
}

// FirstVia is how long after t the first successful request through nat started, -1 if none.
func (c *Samples) FirstVia(nat string, t time.Time) time.Duration {
	for _, s := range c.Since(t) {
		if s.Err == nil && s.Via == nat {
			return s.Time.Sub(t)
		}
	}
	return -1
}

// Outage is what a run of requests (in start order) lost.
type Outage struct {
	Requests, Failed int
	// Longest is the longest run of failed requests, from the start of its first to the start
	// of the first successful request after it (to the last request if none came).
	Longest   time.Duration
	Recovered bool // the last request succeeded
}

// OutageOf sums up ss, in start order.
func OutageOf(ss []Sample) Outage {
	o := Outage{Requests: len(ss)}
	var first time.Time
	for _, s := range ss {
		switch {
		case s.Err != nil:
			o.Failed++
			if first.IsZero() {
				first = s.Time
			}
		case !first.IsZero():
			o.Longest = max(o.Longest, s.Time.Sub(first))
			first = time.Time{}
		}
	}
	o.Recovered = first.IsZero()
	if !o.Recovered {
		o.Longest = max(o.Longest, ss[len(ss)-1].Time.Sub(first))
	}
	return o
}

package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/vpcsim"
)

// Bounds shared by both parts.
const (
	baseline       = 1500 * time.Millisecond // healthy traffic before the first step of a cycle
	jitter         = time.Second             // random extra wait before it (see refresh and spot)
	stepTimeout    = 3 * time.Minute         // bounds each lab step: InService, a terminate hook
	handOverBound  = 30 * time.Second        // a terminate or notice → the table's move recorded
	settledBound   = 60 * time.Second        // the lab back to its healthy state
	settle         = 2 * time.Second         // healthy traffic at the end of a cycle
	pollEvery      = 20 * time.Millisecond   // how often the waits check
	requestTimeout = 900 * time.Millisecond  // lab.Traffic's per-request timeout (stated in the report)
)

// startTraffic runs lab.Traffic (one request per interval from each private host), bounded by
// bound in time and in count, until stop is called; stop waits for the requests in flight.
func startTraffic(ctx context.Context, l *lab.Lab, interval, bound time.Duration) (*lab.Samples, func()) {
	samples := &lab.Samples{}
	ctx, cancel := context.WithTimeout(ctx, bound)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Traffic(ctx, interval, int(bound/interval)+1, samples.Add)
	}()
	var once sync.Once
	return samples, func() { once.Do(func() { cancel(); <-done }) }
}

// trafficResult is what the private hosts saw in a window of a traffic loop.
type trafficResult struct {
	Requests, Failed int
	// Longest is the longest outage of any host: lab.OutageOf over each host's own requests
	// (start of the first failed one → start of the first successful one after it).
	Longest   time.Duration
	Recovered bool // every host's last request succeeded
	OtherAZ   int  // successful requests that left through a NAT of another AZ than the host's
}

// summarize sums up samples per host (a sample's Site names its host); azOf maps a NAT's name
// to its AZ.
func summarize(samples []lab.Sample, azOf func(nat string) string) trafficResult {
	byHost := map[string][]lab.Sample{}
	var hosts []string
	for _, s := range samples {
		if _, ok := byHost[s.Site]; !ok {
			hosts = append(hosts, s.Site)
		}
		byHost[s.Site] = append(byHost[s.Site], s)
	}
	r := trafficResult{Recovered: true}
	for _, h := range hosts {
		ss := byHost[h]
		slices.SortStableFunc(ss, func(a, b lab.Sample) int { return a.Time.Compare(b.Time) })
		o := lab.OutageOf(ss)
		r.Requests += o.Requests
		r.Failed += o.Failed
		r.Longest = max(r.Longest, o.Longest)
		r.Recovered = r.Recovered && o.Recovered
		for _, s := range ss {
			if s.Err == nil && s.Via != "" && azOf(s.Via) != azOf(s.Site) {
				r.OtherAZ++
			}
		}
	}
	return r
}

// add sums two windows.
func (t trafficResult) add(o trafficResult) trafficResult {
	return trafficResult{Requests: t.Requests + o.Requests, Failed: t.Failed + o.Failed, Longest: max(t.Longest, o.Longest),
		Recovered: t.Recovered && o.Recovered, OtherAZ: t.OtherAZ + o.OtherAZ}
}

// between are the samples started in [from, to).
func between(ss []lab.Sample, from, to time.Time) []lab.Sample {
	var out []lab.Sample
	for _, s := range ss {
		if !s.Time.Before(from) && s.Time.Before(to) {
			out = append(out, s)
		}
	}
	return out
}

// azOf is the AZ of a NAT of the lab, live or terminated ("" if unknown).
func azOf(l *lab.Lab) func(string) string {
	return func(nat string) string {
		s, err := l.Site(nat)
		if err != nil {
			return ""
		}
		return s.AZ
	}
}

// lastOf is the last sample of host's requests, if any of the last few is one.
func lastOf(samples *lab.Samples, host string) (lab.Sample, bool) {
	ss := samples.Last(8)
	for i := len(ss) - 1; i >= 0; i-- {
		if ss[i].Site == host {
			return ss[i], true
		}
	}
	return lab.Sample{}, false
}

// hookCompleted is when the first successful CompleteLifecycleAction for an instance on a hook
// was recorded at or after since (false if none).
func hookCompleted(calls []vpcsim.Call, instanceID, hook string, since time.Time) (time.Time, bool) {
	for _, c := range calls {
		if c.Action == "CompleteLifecycleAction" && c.Code == "" && !c.Time.Before(since) &&
			c.Params["InstanceId"] == instanceID && c.Params["LifecycleHookName"] == hook {
			return c.Time, true
		}
	}
	return time.Time{}, false
}

// waitSettled waits until the lab is in its healthy state: every AZ's route table active on
// that AZ's live NAT, every live NAT's agent healthy, not draining, and seeing every other live
// NAT healthy.
func waitSettled(ctx context.Context, l *lab.Lab, timeout time.Duration) error {
	var last string
	ok, err := lab.Poll(ctx, timeout, 200*time.Millisecond, func() bool {
		nats := l.NATs()
		for _, s := range l.Sites() {
			if t, st := l.Target(s.RouteTable); t != s.Name || st != api.RouteActive {
				last = fmt.Sprintf("table of AZ %s on %q (%s), not on nat-%s", s.AZ, t, st, s.Name)
				return false
			}
		}
		for _, s := range nats {
			st, err := l.AgentStatus(ctx, s.Name)
			if err != nil {
				last = fmt.Sprintf("agent %s: %v", s.Name, err)
				return false
			}
			if !st.Self.Healthy || st.Self.Draining {
				last = fmt.Sprintf("agent %s: healthy %v, draining %v", s.Name, st.Self.Healthy, st.Self.Draining)
				return false
			}
			for _, o := range nats {
				if o == s {
					continue
				}
				i := slices.IndexFunc(st.Peers, func(p api.PeerStatus) bool { return p.ID == o.InstanceID })
				if i < 0 || !st.Peers[i].Healthy {
					last = fmt.Sprintf("agent %s does not see nat-%s healthy", s.Name, o.Name)
					return false
				}
			}
		}
		return true
	})
	if err == nil && !ok {
		err = fmt.Errorf("the lab is not back to its healthy state within %s: %s", timeout, last)
	}
	return err
}

package main

import (
	"slices"
	"time"

	"github.com/headnat/headnat/test/lab"
)

// hostResult is what one private host saw in a window of a traffic loop.
type hostResult struct {
	Host      string
	Requests  int
	Failed    int
	ViaOther  int           // successful requests that left through another AZ's NAT
	Outage    time.Duration // first failed request → first successful one after it (start times)
	Episodes  int           // separate runs of failed requests
	Recovered bool          // a request succeeded after the last failed one
	FirstFail time.Time     // start of the first failed request (zero if none)
	FirstOK   time.Time     // start of the first successful request after it
}

// analyse looks at host's requests started in [from, to). Samples may come in any order.
// When no request succeeded after the first failure, Outage runs to the last request seen.
func analyse(samples []lab.Sample, host, home string, from, to time.Time) hostResult {
	var mine []lab.Sample
	for _, s := range samples {
		if s.Site == host && !s.Time.Before(from) && s.Time.Before(to) {
			mine = append(mine, s)
		}
	}
	slices.SortStableFunc(mine, func(a, b lab.Sample) int { return a.Time.Compare(b.Time) })
	r := hostResult{Host: host, Requests: len(mine), Recovered: true}
	failing := false
	for _, s := range mine {
		if s.Err != nil {
			r.Failed++
			if !failing {
				r.Episodes++
				failing = true
			}
			if r.FirstFail.IsZero() {
				r.FirstFail = s.Time
			}
			continue
		}
		if s.Via != home {
			r.ViaOther++
		}
		if failing && r.FirstOK.IsZero() {
			r.FirstOK = s.Time
			r.Outage = s.Time.Sub(r.FirstFail)
		}
		failing = false
	}
	if failing {
		r.Recovered = false
		if r.FirstOK.IsZero() {
			r.Outage = mine[len(mine)-1].Time.Sub(r.FirstFail)
		}
	}
	return r
}

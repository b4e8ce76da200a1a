package agent

import (
	"context"
	"slices"
	"sync"
)

// dataplaneChecks holds the findings of the latest data-plane verification. The own-health
// check reads them (a health check never runs iptables); the verify loop writes them.
type dataplaneChecks struct {
	mu       sync.Mutex
	done     bool
	findings []string
	err      error
}

// Verify returns the latest findings; before the first verification it reports that.
func (c *dataplaneChecks) Verify(context.Context) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done {
		return []string{"not verified yet"}, nil
	}
	return slices.Clone(c.findings), c.err
}

func (c *dataplaneChecks) set(findings []string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done, c.findings, c.err = true, findings, err
}

// verifyAndRepair verifies the data plane and re-applies the spec when it deviates, then
// verifies again: what survives the repair is reported, and keeps failing own-health checks
// until rise/fall marks this instance unhealthy.
func (a *Agent) verifyAndRepair(ctx context.Context) {
	findings, err := a.verify(ctx)
	if err == nil && len(findings) > 0 {
		a.log.Warn("data plane deviates; re-applying", "findings", findings)
		if _, aerr := a.dp.Apply(ctx, a.res.Spec); aerr != nil {
			a.log.Error("re-apply data plane", "err", aerr)
		} else {
			findings, err = a.verify(ctx)
		}
	}
	if err != nil {
		a.log.Error("verify data plane", "err", err)
	}
	a.checks.set(findings, err)
	a.metrics.Findings(len(findings))
}

func (a *Agent) verify(ctx context.Context) ([]string, error) {
	fs, err := a.dp.Verify(ctx, a.res.Spec)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range fs {
		out = append(out, f.String())
	}
	return out, nil
}

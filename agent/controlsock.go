package agent

import (
	"context"
	"errors"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/control"
)

// controlAgent is the agent as the control socket drives it.
type controlAgent struct {
	a   *Agent
	ctx context.Context
}

var _ control.Agent = controlAgent{}

func (c controlAgent) Drain(note string) (control.DrainResult, error) {
	already, _ := c.a.OperatorDrain(c.ctx, note)
	hz := c.a.healthz()
	return control.DrainResult{Instance: hz.Instance, Already: already, Reason: hz.DrainReason,
		Lifecycle: hz.Lifecycle, Tables: hz.Tables}, nil
}

func (c controlAgent) Undrain() (control.UndrainResult, error) {
	before := c.a.healthz()
	err := c.a.OperatorUndrain(c.ctx)
	switch {
	case errors.Is(err, ErrNotDraining):
		return control.UndrainResult{}, control.ErrNotDraining
	case errors.Is(err, ErrNotOperatorDrain):
		return control.UndrainResult{}, control.NotOperatorDrain(before.DrainReason)
	case err != nil:
		return control.UndrainResult{}, err
	}
	hz := c.a.healthz()
	return control.UndrainResult{Instance: hz.Instance, Reason: before.DrainReason, Lifecycle: hz.Lifecycle}, nil
}

func (c controlAgent) Status() api.Status { return c.a.status() }

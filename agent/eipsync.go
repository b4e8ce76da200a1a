package agent

import "context"

// eipHeld reports whether the instance holds an address from the cluster's EIP pool.
func (a *Agent) eipHeld() bool { return false }

// releaseEIP gives the pool address back after a drain.
func (a *Agent) releaseEIP(context.Context) {}

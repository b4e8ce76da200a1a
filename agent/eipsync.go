package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/eip"
)

// eipClaimTimeout bounds one claim: a few listings and associations, each bounded by cloud.
const eipClaimTimeout = 30 * time.Second

// eipState is this instance's address from the cluster's EIP pool.
type eipState struct {
	mu     sync.Mutex
	pool   eip.Pool // nil: no pool configured
	addr   eip.Address
	err    string // why none is held
	public string // the instance's public IPv4 from IMDS ("" none or unknown)
}

// claimEIP takes a free pool address for this instance's ENI, unless it holds one. It is
// called before the instance serves, and again only while it holds no route table: a new
// public address breaks the connections going through it.
func (a *Agent) claimEIP(ctx context.Context) {
	e := &a.eip
	if e.pool == nil || a.cfg.DryRun {
		return
	}
	e.mu.Lock()
	held := e.addr.AllocationID != ""
	e.mu.Unlock()
	if held {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, eipClaimTimeout)
	defer cancel()
	addr, err := eip.Claim(ctx, e.pool, a.res.Cluster.Name, a.res.Identity.InstanceID, a.res.Identity.ENI, a.log)
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		if err.Error() != e.err {
			a.log.Warn("no Elastic IP from the pool; egress keeps the instance's own public address", "err", err,
				"retry", "every refresh while this instance holds no route table")
		}
		e.err = err.Error()
		return
	}
	a.log.Info("egress address from the Elastic IP pool", "public_ip", addr.PublicIP, "allocation", addr.AllocationID)
	e.addr, e.err = addr, ""
}

// publicAddress takes the pool address, unless the instance is already draining (restarted
// while it terminates), before the instance serves: changing it later breaks the connections
// going through it. Then it reads the public IPv4 from IMDS.
func (a *Agent) publicAddress(ctx context.Context) {
	if a.cfg.DryRun {
		return
	}
	if !a.self.Draining() {
		a.claimEIP(ctx)
	}
	ip, err := a.cl.PublicIPv4(ctx)
	if err != nil {
		a.log.Warn("public IPv4 from IMDS", "err", err)
		return
	}
	a.eip.mu.Lock()
	a.eip.public = ip
	a.eip.mu.Unlock()
}

// retryEIP claims a pool address for an instance that has none, while it serves nothing.
func (a *Agent) retryEIP(ctx context.Context) {
	a.mu.Lock()
	held := len(a.view.Held())
	a.mu.Unlock()
	if held == 0 && !a.self.Draining() {
		a.claimEIP(ctx)
	}
}

// eipHeld reports whether the instance holds an address from the cluster's EIP pool.
func (a *Agent) eipHeld() bool {
	a.eip.mu.Lock()
	defer a.eip.mu.Unlock()
	return a.eip.addr.AllocationID != ""
}

// releaseEIP gives the pool address back after a drain, so that a replacement can take it.
func (a *Agent) releaseEIP(ctx context.Context) {
	e := &a.eip
	e.mu.Lock()
	addr := e.addr
	e.mu.Unlock()
	if addr.AllocationID == "" {
		return
	}
	err := eip.Release(ctx, e.pool, addr)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.addr = eip.Address{}
	if err != nil && !errors.Is(err, eip.ErrNotAssociated) {
		e.err = "release failed: " + err.Error()
		a.log.Warn("could not release the pool address; it frees when the instance terminates", "allocation", addr.AllocationID, "err", err)
		return
	}
	e.err = "released after the drain"
	a.log.Info("released the pool address", "public_ip", addr.PublicIP, "allocation", addr.AllocationID)
}

// eipStatus is the public address and pool address as /healthz shows them.
func (a *Agent) eipStatus() (public string, st *api.EIP) {
	e := &a.eip
	e.mu.Lock()
	defer e.mu.Unlock()
	public = e.public
	if e.pool == nil {
		return public, nil
	}
	st = &api.EIP{AllocationID: e.addr.AllocationID, AssociationID: e.addr.AssociationID, PublicIP: e.addr.PublicIP, Error: e.err}
	if e.addr.PublicIP != "" {
		public = e.addr.PublicIP
	}
	return public, st
}

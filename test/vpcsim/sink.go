package vpcsim

import "net/netip"

// Sink mirrors the Sim's data-path state somewhere, in the lab into the router namespace's
// kernel. The Sim calls it with its lock held, inside the API call that made the change: a Sink
// must not call back into the Sim. If a method returns an error, the API call fails with
// InternalError and the Sim undoes the change (calling the Sink again to revert what it had
// already applied). Implementations must be idempotent: Sync repeats calls freely.
type Sink interface {
	// DefaultRoute is the 0.0.0.0/0 route of a route table: via Target (the target ENI's
	// private IP), a blackhole (target stopped, terminated or deleted), or Absent.
	DefaultRoute(tableID string, r KernelRoute) error
	// SourceDestCheck is an ENI's check; a deleted ENI is reported as off.
	SourceDestCheck(eniID string, privateIP netip.Addr, on bool) error
	// ElasticIP is a 1:1 mapping between a private and a public address.
	ElasticIP(privateIP, publicIP netip.Addr, associated bool) error
}

// KernelRoute is a route table's default route as the kernel must have it.
type KernelRoute struct {
	Target    netip.Addr // the target ENI's private IP (also set for a blackhole, for the record)
	Blackhole bool
	Absent    bool // no default route at all
}

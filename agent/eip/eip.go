// Package eip gives an instance a stable egress address from the cluster's optional pool of
// Elastic IPs: Decide picks from a pool snapshot, Claim associates a free address with the
// instance's primary ENI (never one that is already associated, so of two racing instances
// exactly one gets a given address), and Release gives it back after a drain.
package eip

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/headnat/headnat/agent/rendezvous"
)

// Address is an Elastic IP of the pool. It is associated when AssociationID is set.
type Address struct {
	AllocationID       string
	PublicIP           string
	AssociationID      string
	NetworkInterfaceID string
	InstanceID         string
}

// Associated reports whether the address is associated with anything.
func (a Address) Associated() bool { return a.AssociationID != "" }

// name is the allocation id and public IP, for reasons and errors.
func (a Address) name() string {
	if a.PublicIP == "" {
		return a.AllocationID
	}
	return a.AllocationID + " (" + a.PublicIP + ")"
}

// holder names what an associated address is associated with.
func (a Address) holder() string {
	if a.InstanceID != "" {
		return a.InstanceID
	}
	if a.NetworkInterfaceID != "" {
		return a.NetworkInterfaceID
	}
	return a.AssociationID
}

var (
	// ErrPoolEmpty: the pool has no free address for this instance.
	ErrPoolEmpty = errors.New("pool empty")
	// ErrTaken: AWS refused an association because the address is associated elsewhere
	// (Resource.AlreadyAssociated). Pool.AssociateAddress returns it wrapped.
	ErrTaken = errors.New("address already associated")
	// ErrNotAssociated: the association is gone (InvalidAssociationID.NotFound).
	// Pool.DisassociateAddress returns it wrapped.
	ErrNotAssociated = errors.New("association not found")
)

// Decision is what Decide makes of a pool snapshot.
type Decision struct {
	// Mine is the address already associated with my ENI; zero when there is none.
	Mine Address
	// Candidates are the free addresses to try, best first; empty when Mine is set.
	Candidates []Address
	// Reason says why, for the log and the status.
	Reason string
}

// Kept reports whether I already hold an address.
func (d Decision) Kept() bool { return d.Mine.AllocationID != "" }

// Empty reports whether there is nothing to keep and nothing to try.
func (d Decision) Empty() bool { return !d.Kept() && len(d.Candidates) == 0 }

// maxNamed bounds how many holders a reason lists.
const maxNamed = 8

// Decide picks for instanceID, whose primary ENI is eni, from a snapshot of the pool: the
// address already associated with eni (a restart keeps it), else every free address, ranked
// by the rendezvous weight of (allocation id, instanceID) so that instances launching
// together mostly try different ones first. Addresses associated with anything else,
// another ENI of mine included, are never candidates. The result does not depend on the
// order of pool.
func Decide(instanceID, eni string, pool []Address) Decision {
	sorted := slices.SortedFunc(slices.Values(pool), func(a, b Address) int {
		return cmp.Compare(a.AllocationID, b.AllocationID)
	})
	var mine, free, taken []Address
	for _, a := range sorted {
		switch {
		case a.Associated() && eni != "" && a.NetworkInterfaceID == eni:
			mine = append(mine, a)
		case a.Associated():
			taken = append(taken, a)
		default:
			free = append(free, a)
		}
	}
	if len(mine) > 0 {
		return Decision{Mine: mine[0], Reason: keepReason(mine, eni)}
	}
	if len(free) == 0 {
		return Decision{Reason: emptyReason(taken)}
	}
	slices.SortStableFunc(free, func(a, b Address) int {
		return cmp.Compare(rendezvous.Weight(b.AllocationID, instanceID), rendezvous.Weight(a.AllocationID, instanceID))
	})
	return Decision{Candidates: free, Reason: tryReason(free, taken)}
}

func keepReason(mine []Address, eni string) string {
	r := fmt.Sprintf("%s is already associated with my ENI %s", mine[0].name(), eni)
	if len(mine) > 1 {
		r += fmt.Sprintf(" (%d more on it: %s)", len(mine)-1, names(mine[1:], Address.name))
	}
	return r
}

func emptyReason(taken []Address) string {
	if len(taken) == 0 {
		return ErrPoolEmpty.Error() + ": no address in the pool"
	}
	return fmt.Sprintf("%s: %s, all associated (with %s)", ErrPoolEmpty, addresses(len(taken)), names(taken, Address.holder))
}

func tryReason(free, taken []Address) string {
	r := fmt.Sprintf("%d of %s free", len(free), addresses(len(free)+len(taken)))
	if len(taken) > 0 {
		r += fmt.Sprintf(" (the others associated with %s)", names(taken, Address.holder))
	}
	return r + "; trying in rendezvous order " + names(free, func(a Address) string { return a.AllocationID })
}

func addresses(n int) string {
	if n == 1 {
		return "1 address"
	}
	return fmt.Sprintf("%d addresses", n)
}

// names lists name(a) for up to maxNamed addresses.
func names(as []Address, name func(Address) string) string {
	var out []string
	for i, a := range as {
		if i == maxNamed {
			out = append(out, fmt.Sprintf("%d more", len(as)-maxNamed))
			break
		}
		out = append(out, name(a))
	}
	return strings.Join(out, ", ")
}

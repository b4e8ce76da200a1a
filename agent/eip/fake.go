package eip

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Fake is an in-memory Pool for tests, with AWS's semantics: an association without
// reassociation fails with ErrTaken when the address is associated with another ENI, and
// succeeds again on the same ENI. It is safe for concurrent use.
type Fake struct {
	// Hook, when set, runs each call: op is "Addresses", "AssociateAddress" or
	// "DisassociateAddress", id the allocation or association id ("" for Addresses), and
	// apply does the call. A hook can change the pool before apply (a race), fail without
	// applying, or apply and fail anyway (a timeout after the fact).
	Hook func(op, id string, apply func() error) error

	mu    sync.Mutex
	addrs map[string]Address // by allocation id
	enis  map[string]string  // ENI -> instance
	seq   int
	calls []string
}

var _ Pool = (*Fake)(nil)

// NewFake holds addrs. ENIs must be attached (Attach) before associations with them.
func NewFake(addrs ...Address) *Fake {
	f := &Fake{addrs: map[string]Address{}, enis: map[string]string{}}
	for _, a := range addrs {
		f.addrs[a.AllocationID] = a
	}
	return f
}

// Attach makes eni the primary ENI of instanceID.
func (f *Fake) Attach(eni, instanceID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.enis[eni] = instanceID
}

// Set adds or replaces an address, as another instance or an operator would.
func (f *Fake) Set(a Address) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs[a.AllocationID] = a
}

// Take associates an address with eni as another instance would, reassociating if needed.
func (f *Fake) Take(allocationID, eni string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.associate(allocationID, eni, true)
	return err
}

// Get returns an address by allocation id.
func (f *Fake) Get(allocationID string) (Address, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.addrs[allocationID]
	return a, ok
}

// Calls lists the calls so far as "op id", oldest first.
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *Fake) run(op, id string, apply func() error) error {
	f.mu.Lock()
	f.calls = append(f.calls, op+" "+id)
	f.mu.Unlock()
	if f.Hook != nil {
		return f.Hook(op, id, apply)
	}
	return apply()
}

// Addresses lists every address, whatever cluster is asked (the fake holds one pool).
func (f *Fake) Addresses(ctx context.Context, _, _ string) ([]Address, error) {
	var out []Address
	err := f.run("Addresses", "", func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		out = slices.SortedFunc(maps.Values(f.addrs), func(a, b Address) int { return cmp.Compare(a.AllocationID, b.AllocationID) })
		return nil
	})
	return out, err
}

// AssociateAddress associates without reassociation.
func (f *Fake) AssociateAddress(ctx context.Context, allocationID, eni, _ string) (string, error) {
	var assoc string
	err := f.run("AssociateAddress", allocationID, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		var err error
		assoc, err = f.associate(allocationID, eni, false)
		return err
	})
	return assoc, err
}

func (f *Fake) associate(allocationID, eni string, reassociate bool) (string, error) {
	a, ok := f.addrs[allocationID]
	if !ok {
		return "", fmt.Errorf("fake pool: no address %s", allocationID)
	}
	inst, ok := f.enis[eni]
	if !ok {
		return "", fmt.Errorf("fake pool: no ENI %s", eni)
	}
	if a.Associated() && a.NetworkInterfaceID != eni && !reassociate {
		return "", fmt.Errorf("fake pool: %s is associated with %s: %w", allocationID, a.holder(), ErrTaken)
	}
	// Like AWS, an ENI's primary address holds one Elastic IP: the new one replaces any other.
	for id, o := range f.addrs {
		if o.NetworkInterfaceID == eni {
			f.addrs[id] = Address{AllocationID: o.AllocationID, PublicIP: o.PublicIP}
		}
	}
	f.seq++
	a.AssociationID, a.NetworkInterfaceID, a.InstanceID = fmt.Sprintf("eipassoc-%d", f.seq), eni, inst
	f.addrs[allocationID] = a
	return a.AssociationID, nil
}

// DisassociateAddress removes an association by id.
func (f *Fake) DisassociateAddress(ctx context.Context, associationID, _ string) error {
	return f.run("DisassociateAddress", associationID, func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for id, a := range f.addrs {
			if a.AssociationID == associationID {
				f.addrs[id] = Address{AllocationID: a.AllocationID, PublicIP: a.PublicIP}
				return nil
			}
		}
		return fmt.Errorf("fake pool: association %s: %w", associationID, ErrNotAssociated)
	})
}

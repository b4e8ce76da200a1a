package eip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Pool is the cluster's pool of Elastic IPs as AWS holds it. *cloud.Client implements it.
type Pool interface {
	// Addresses lists the addresses tagged headnat:cluster=cluster.
	Addresses(ctx context.Context, cluster, reason string) ([]Address, error)
	// AssociateAddress associates an address with eni, but never one associated with anything
	// else (then the error wraps ErrTaken), and returns the association id.
	AssociateAddress(ctx context.Context, allocationID, eni, reason string) (string, error)
	// DisassociateAddress removes an association; one already gone wraps ErrNotAssociated.
	DisassociateAddress(ctx context.Context, associationID, reason string) error
}

// MaxRounds bounds how often Claim goes through the free addresses: each round lists the
// pool and tries its candidates until one is won.
const MaxRounds = 3

// emptyError is ErrPoolEmpty with the reason.
type emptyError string

func (e emptyError) Error() string        { return string(e) }
func (e emptyError) Is(target error) bool { return target == ErrPoolEmpty }

// Claim gives instanceID an address of the cluster's pool on its primary ENI eni: the one
// already associated with eni, else the first free one in Decide's order that AWS associates
// without reassociation. An address taken meanwhile by another instance is skipped, and the
// pool listed again, up to MaxRounds rounds. An association that fails otherwise may still
// have landed (a timeout): Claim lists the pool once more, keeps the address if it is on
// eni now, and else returns that error, for the caller to retry later. With no free address
// left the error wraps ErrPoolEmpty and says why.
func Claim(ctx context.Context, pool Pool, cluster, instanceID, eni string, log *slog.Logger) (Address, error) {
	if cluster == "" || instanceID == "" || eni == "" {
		return Address{}, fmt.Errorf("claim an Elastic IP: empty cluster (%q), instance (%q) or ENI (%q)", cluster, instanceID, eni)
	}
	wrap := func(err error) error {
		return fmt.Errorf("claim an Elastic IP from the pool of cluster %s for %s: %w", cluster, instanceID, err)
	}
	var unknown error // the last association failed for another reason than a race
	for round := 1; ; round++ {
		addrs, err := pool.Addresses(ctx, cluster, fmt.Sprintf("EIP pool: claim for %s (round %d)", instanceID, round))
		if err != nil {
			return Address{}, wrap(fmt.Errorf("list the pool: %w", err))
		}
		d := Decide(instanceID, eni, addrs)
		switch {
		case d.Kept():
			log.Info("EIP pool: keeping the address on my ENI", addrAttrs(d.Mine, "reason", d.Reason)...)
			return d.Mine, nil
		case unknown != nil:
			return Address{}, wrap(unknown)
		case d.Empty():
			return Address{}, wrap(emptyError(d.Reason))
		case round > MaxRounds:
			return Address{}, wrap(emptyError(fmt.Sprintf("%s: another instance took each address first, %d rounds in a row; now %s",
				ErrPoolEmpty, MaxRounds, d.Reason)))
		}
		log.Info("EIP pool: claiming an address", "round", round, "reason", d.Reason)
		a, err := tryCandidates(ctx, pool, d.Candidates, instanceID, eni, log)
		if err == nil {
			return a, nil
		}
		if !errors.Is(err, ErrTaken) {
			unknown = err
		}
	}
}

// tryCandidates associates the first candidate AWS lets it. Every one taken meanwhile gives
// an error wrapping ErrTaken; any other failure stops at once.
func tryCandidates(ctx context.Context, pool Pool, cands []Address, instanceID, eni string, log *slog.Logger) (Address, error) {
	for _, c := range cands {
		assoc, err := pool.AssociateAddress(ctx, c.AllocationID, eni, "EIP pool: claim a free address for "+instanceID)
		switch {
		case err == nil:
			c.AssociationID, c.NetworkInterfaceID, c.InstanceID = assoc, eni, instanceID
			log.Info("EIP pool: claimed an address", addrAttrs(c)...)
			return c, nil
		case errors.Is(err, ErrTaken):
			log.Info("EIP pool: another instance took the address first; trying the next", addrAttrs(c, "error", err)...)
		default:
			return Address{}, fmt.Errorf("associate %s with %s: %w", c.name(), eni, err)
		}
	}
	return Address{}, fmt.Errorf("every candidate: %w", ErrTaken)
}

// Release removes addr's association, as the agent does once a drain has moved its tables.
// An association already gone (the address released or reassociated since) is success: the
// association id makes sure only this instance's association is ever removed.
func Release(ctx context.Context, pool Pool, addr Address) error {
	if addr.AssociationID == "" {
		return nil
	}
	err := pool.DisassociateAddress(ctx, addr.AssociationID, "EIP pool: release my address after the drain")
	if err != nil && !errors.Is(err, ErrNotAssociated) {
		return fmt.Errorf("release Elastic IP %s (association %s): %w", addr.name(), addr.AssociationID, err)
	}
	return nil
}

func addrAttrs(a Address, more ...any) []any {
	return append([]any{"allocation", a.AllocationID, "public_ip", a.PublicIP, "association", a.AssociationID}, more...)
}

package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/headnat/headnat/agent/eip"
)

var _ eip.Pool = (*Client)(nil)

// AWS error codes of the Elastic IP calls that are answers, not failures.
const (
	codeAlreadyAssociated = "Resource.AlreadyAssociated"
	codeAssocNotFound     = "InvalidAssociationID.NotFound"
)

// Addresses lists the cluster's pool of Elastic IPs: the VPC addresses tagged
// headnat:cluster=cluster, sorted by allocation id.
func (c *Client) Addresses(ctx context.Context, cluster, reason string) ([]eip.Address, error) {
	if cluster == "" {
		return nil, errors.New("list Elastic IPs: empty cluster name")
	}
	var out *ec2.DescribeAddressesOutput
	err := c.ec2Call(ctx, call{op: "DescribeAddresses", reason: reason, attrs: []any{"cluster", cluster}},
		func(ctx context.Context) error {
			var err error
			out, err = c.ec2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
				{Name: aws.String("tag:" + TagCluster), Values: []string{cluster}},
				{Name: aws.String("domain"), Values: []string{string(types.DomainTypeVpc)}},
			}}, c.ec2Opt())
			return err
		})
	if err != nil {
		return nil, fmt.Errorf("list the Elastic IPs of cluster %s: %w", cluster, err)
	}
	addrs := make([]eip.Address, 0, len(out.Addresses))
	for _, a := range out.Addresses {
		p, err := parseAddress(a)
		if err != nil {
			return nil, fmt.Errorf("list the Elastic IPs of cluster %s: %w", cluster, err)
		}
		addrs = append(addrs, p)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].AllocationID < addrs[j].AllocationID })
	return addrs, nil
}

func parseAddress(a types.Address) (eip.Address, error) {
	alloc, public := aws.ToString(a.AllocationId), aws.ToString(a.PublicIp)
	if alloc == "" {
		return eip.Address{}, bad("DescribeAddresses", "address %q without allocation id", public)
	}
	ip, err := netip.ParseAddr(public)
	if err != nil || !ip.Is4() {
		return eip.Address{}, bad("DescribeAddresses", "address %s: public IP %q is not IPv4", alloc, public)
	}
	return eip.Address{
		AllocationID:       alloc,
		PublicIP:           ip.String(),
		AssociationID:      aws.ToString(a.AssociationId),
		NetworkInterfaceID: aws.ToString(a.NetworkInterfaceId),
		InstanceID:         aws.ToString(a.InstanceId),
	}, nil
}

// AssociateAddress associates an Elastic IP with eni's primary private IP and returns the
// association id. It never reassociates: an address associated with anything else fails with
// an error wrapping eip.ErrTaken. That also makes the SDK's retries safe when an attempt's
// outcome is unknown: a retry cannot take the address from anyone, and succeeds again if the
// lost attempt had associated it with eni. When the whole call fails, the caller lists the
// pool to learn whether it landed (eip.Claim does).
func (c *Client) AssociateAddress(ctx context.Context, allocationID, eni, reason string) (string, error) {
	if allocationID == "" || eni == "" {
		return "", fmt.Errorf("associate Elastic IP: empty allocation (%q) or ENI (%q)", allocationID, eni)
	}
	var out *ec2.AssociateAddressOutput
	err := c.ec2Call(ctx, call{op: "AssociateAddress", reason: reason, write: true,
		attrs: []any{"allocation", allocationID, "eni", eni}, expected: isCode(codeAlreadyAssociated)},
		func(ctx context.Context) error {
			var err error
			out, err = c.ec2.AssociateAddress(ctx, &ec2.AssociateAddressInput{
				AllocationId:       aws.String(allocationID),
				NetworkInterfaceId: aws.String(eni),
				AllowReassociation: aws.Bool(false),
			}, c.ec2OptExpecting(isCode(codeAlreadyAssociated)))
			return err
		})
	switch {
	case hasCode(err, codeAlreadyAssociated):
		return "", fmt.Errorf("associate %s with %s: %w: %w", allocationID, eni, eip.ErrTaken, err)
	case err != nil:
		return "", fmt.Errorf("associate %s with %s: %w", allocationID, eni, err)
	}
	id := aws.ToString(out.AssociationId)
	if id == "" {
		return "", fmt.Errorf("associate %s with %s: %w", allocationID, eni, bad("AssociateAddress", "no association id"))
	}
	return id, nil
}

// DisassociateAddress removes an Elastic IP association. One that no longer exists fails
// with an error wrapping eip.ErrNotAssociated.
func (c *Client) DisassociateAddress(ctx context.Context, associationID, reason string) error {
	if associationID == "" {
		return errors.New("disassociate Elastic IP: empty association id")
	}
	err := c.ec2Call(ctx, call{op: "DisassociateAddress", reason: reason, write: true,
		attrs: []any{"association", associationID}, expected: isCode(codeAssocNotFound)},
		func(ctx context.Context) error {
			_, err := c.ec2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{
				AssociationId: aws.String(associationID),
			}, c.ec2OptExpecting(isCode(codeAssocNotFound)))
			return err
		})
	switch {
	case hasCode(err, codeAssocNotFound):
		return fmt.Errorf("disassociate %s: %w: %w", associationID, eip.ErrNotAssociated, err)
	case err != nil:
		return fmt.Errorf("disassociate %s: %w", associationID, err)
	}
	return nil
}

func isCode(code string) func(error) bool {
	return func(err error) bool { return hasCode(err, code) }
}

package vpcsim

import (
	"net/netip"
)

func (st *state) addrOfENI(eniID string) *address {
	for _, a := range st.addrs {
		if a.assoc != "" && a.eni == eniID {
			return a
		}
	}
	return nil
}

// ---- DescribeAddresses

var addressFields = fieldSet[*address]{
	tags: func(a *address) tags { return a.tags },
	fields: map[string]func(*state, *address) []string{
		"allocation-id":        func(_ *state, a *address) []string { return one(a.alloc) },
		"public-ip":            func(_ *state, a *address) []string { return one(a.public.String()) },
		"association-id":       func(_ *state, a *address) []string { return one(a.assoc) },
		"network-interface-id": func(_ *state, a *address) []string { return one(a.eni) },
		"domain":               func(*state, *address) []string { return one("vpc") },
		"instance-id": func(st *state, a *address) []string {
			if n := st.enis[a.eni]; n != nil {
				return one(n.instance)
			}
			return nil
		},
		"private-ip-address": func(_ *state, a *address) []string {
			if a.private.IsValid() {
				return one(a.private.String())
			}
			return nil
		},
	},
}

func (s *Sim) describeAddresses(f form) ([]any, *apiError) {
	pubs := f.list("PublicIp")
	return describe(s, f, describeSpec[*address]{
		action: "DescribeAddresses", idParam: "AllocationId", kind: kindAlloc, fields: addressFields,
		check: func(st *state) *apiError {
			for _, p := range pubs {
				if st.addrByPublic(p) == nil {
					return errf(400, "InvalidAddress.NotFound", "Address '%s' not found.", p)
				}
			}
			return nil
		},
		lookup: func(st *state, id string) (*address, bool) { v, ok := st.addrs[id]; return v, ok },
		all: func(st *state) []*address {
			all := bySeq(st.addrs, addressSeq)
			if len(pubs) == 0 {
				return all
			}
			var out []*address
			for _, a := range all {
				for _, p := range pubs {
					if a.public.String() == p {
						out = append(out, a)
					}
				}
			}
			return out
		},
		seq: addressSeq,
		id:  func(v *address) string { return v.alloc },
		render: func(st *state, as []*address) []any {
			set := xAddressSet{Items: []xAddress{}}
			for _, a := range as {
				x := xAddress{PublicIP: a.public.String(), AllocationID: a.alloc, Domain: "vpc",
					PublicIpv4Pool: "amazon", NetworkBorderGroup: s.opts.Region, Tags: xTags(a.tags)}
				if a.assoc != "" {
					x.AssociationID, x.NetworkInterfaceID, x.PrivateIPAddress = a.assoc, a.eni, a.private.String()
					x.NetworkInterfaceOwnerID = s.opts.AccountID
					if n := st.enis[a.eni]; n != nil {
						x.InstanceID = n.instance
					}
				}
				set.Items = append(set.Items, x)
			}
			return []any{set}
		},
	})
}

func addressSeq(v *address) int { return v.seq }

func (st *state) addrByPublic(p string) *address {
	for _, a := range st.addrs {
		if a.public.String() == p {
			return a
		}
	}
	return nil
}

// ---- Elastic IPs

func (s *Sim) associateAddress(f form) ([]any, *apiError) {
	allow, _, aerr := f.boolean("AllowReassociation")
	if aerr != nil {
		return nil, aerr
	}
	var assoc string
	aerr = s.mutate(f, func(st *state) *apiError {
		alloc := f.get("AllocationId")
		switch {
		case alloc != "":
			if aerr := kindAlloc.check(alloc, func(x string) bool { return st.addrs[x] != nil }); aerr != nil {
				return aerr
			}
		case f.get("PublicIp") != "":
			a := st.addrByPublic(f.get("PublicIp"))
			if a == nil {
				return errf(400, "InvalidAddress.NotFound", "Address '%s' not found.", f.get("PublicIp"))
			}
			alloc = a.alloc
		default:
			return missing("allocationId")
		}
		eniID, inst := f.get("NetworkInterfaceId"), f.get("InstanceId")
		switch {
		case eniID != "" && inst != "":
			return errf(400, "InvalidParameterCombination", "specify an instance or a network interface, not both")
		case inst != "":
			if aerr := kindInstance.check(inst, func(x string) bool { return st.instances[x] != nil }); aerr != nil {
				return aerr
			}
			in := st.instances[inst]
			if in.state == StateTerminated || in.state == StateShuttingDown {
				return errf(400, "IncorrectInstanceState", "The instance '%s' is not in a valid state for this operation (%s)", inst, in.state)
			}
			eniID = in.eni
		case eniID != "":
			if aerr := kindENI.check(eniID, func(x string) bool { n := st.enis[x]; return n != nil && !n.deleted }); aerr != nil {
				return aerr
			}
		default:
			return errf(400, "MissingParameter", "Either an instance ID or a network interface ID must be specified")
		}
		var priv netip.Addr
		if p := f.get("PrivateIpAddress"); p != "" {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return errf(400, "InvalidParameterValue", "Invalid private IP address %q", p)
			}
			priv = a
		}
		var aerr *apiError
		assoc, aerr = s.associateAddressIn(st, alloc, eniID, priv, allow)
		return aerr
	})
	if aerr != nil {
		return nil, aerr
	}
	return []any{xAssociationID{Value: assoc}}, nil
}

// associateAddressIn associates an EIP with an ENI's private IP inside a commit. Callers hold
// s.mu.
func (s *Sim) associateAddressIn(st *state, alloc, eniID string, priv netip.Addr, allowReassociation bool) (string, *apiError) {
	a := st.addrs[alloc]
	if a == nil {
		return "", errf(400, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", alloc)
	}
	n := st.enis[eniID]
	if n == nil || n.deleted {
		return "", errf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", eniID)
	}
	if priv.IsValid() && priv != n.ip {
		return "", errf(400, "InvalidParameterValue", "The private IP address %s is not assigned to %s", priv, eniID)
	}
	if a.assoc != "" && a.eni != eniID && !allowReassociation {
		return "", errf(400, "Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", alloc, a.assoc)
	}
	for _, o := range st.addrs {
		if o != a && o.assoc != "" && o.eni == eniID && o.private == n.ip {
			o.assoc, o.eni, o.private = "", "", netip.Addr{}
		}
	}
	a.assoc, a.eni, a.private = s.newID("eipassoc-"), eniID, n.ip
	return a.assoc, nil
}

func (s *Sim) disassociateAddress(f form) ([]any, *apiError) {
	return okReturn, s.mutate(f, func(st *state) *apiError {
		var target *address
		switch id, pub := f.get("AssociationId"), f.get("PublicIp"); {
		case id != "":
			aerr := kindAssoc.check(id, func(x string) bool {
				for _, a := range st.addrs {
					if a.assoc == x {
						target = a
						return true
					}
				}
				return false
			})
			if aerr != nil {
				return aerr
			}
		case pub != "":
			target = st.addrByPublic(pub)
			if target == nil || target.assoc == "" {
				return errf(400, "InvalidAddress.NotFound", "Address '%s' not found or not associated.", pub)
			}
		default:
			return missing("associationId")
		}
		target.assoc, target.eni, target.private = "", "", netip.Addr{}
		return nil
	})
}

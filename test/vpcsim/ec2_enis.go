package vpcsim

import (
	"strconv"
)

// ---- DescribeNetworkInterfaces

var eniFields = fieldSet[*eni]{
	tags: func(n *eni) tags { return n.tags },
	fields: map[string]func(*state, *eni) []string{
		"network-interface-id":         func(_ *state, n *eni) []string { return one(n.id) },
		"attachment.instance-id":       func(_ *state, n *eni) []string { return one(n.instance) },
		"attachment.attachment-id":     func(_ *state, n *eni) []string { return one(n.attachID) },
		"attachment.status":            func(_ *state, n *eni) []string { return one("attached") },
		"attachment.device-index":      func(_ *state, n *eni) []string { return one("0") },
		"vpc-id":                       func(_ *state, n *eni) []string { return one(n.vpcID) },
		"subnet-id":                    func(_ *state, n *eni) []string { return one(n.subnetID) },
		"availability-zone":            func(_ *state, n *eni) []string { return one(n.az) },
		"private-ip-address":           func(_ *state, n *eni) []string { return one(n.ip.String()) },
		"addresses.private-ip-address": func(_ *state, n *eni) []string { return one(n.ip.String()) },
		"status":                       func(_ *state, n *eni) []string { return one("in-use") },
		"source-dest-check":            func(_ *state, n *eni) []string { return one(strconv.FormatBool(n.sdc)) },
		"mac-address":                  func(_ *state, n *eni) []string { return one(n.mac) },
		"association.public-ip": func(st *state, n *eni) []string {
			if a := st.addrOfENI(n.id); a != nil {
				return one(a.public.String())
			}
			return nil
		},
		"association.allocation-id": func(st *state, n *eni) []string {
			if a := st.addrOfENI(n.id); a != nil {
				return one(a.alloc)
			}
			return nil
		},
	},
}

func eniSeq(v *eni) int { return v.seq }

func liveENIs(st *state) []*eni {
	var out []*eni
	for _, n := range bySeq(st.enis, eniSeq) {
		if !n.deleted {
			out = append(out, n)
		}
	}
	return out
}

func (s *Sim) describeNetworkInterfaces(f form) ([]any, *apiError) {
	return describe(s, f, describeSpec[*eni]{
		action: "DescribeNetworkInterfaces", idParam: "NetworkInterfaceId", kind: kindENI, fields: eniFields,
		paging: pageRule{min: 5, max: 1000, idsParam: "networkInterfaceIdSet"},
		lookup: func(st *state, id string) (*eni, bool) { v, ok := st.enis[id]; return v, ok && !v.deleted },
		all:    liveENIs,
		seq:    eniSeq,
		id:     func(v *eni) string { return v.id },
		render: func(st *state, ns []*eni) []any {
			set := xENISet{Items: []xENI{}}
			for _, n := range ns {
				x := xENI{
					NetworkInterfaceID: n.id, SubnetID: n.subnetID, VpcID: n.vpcID, AvailabilityZone: n.az,
					OwnerID: s.opts.AccountID, Status: "in-use", MacAddress: n.mac,
					PrivateIPAddress: n.ip.String(), SourceDestCheck: n.sdc, InterfaceType: "interface",
					Tags: xTags(n.tags),
				}
				if in := st.instances[n.instance]; in != nil {
					x.Attachment = &xAttachment{AttachmentID: n.attachID, InstanceID: in.id, InstanceOwnerID: s.opts.AccountID,
						DeviceIndex: 0, Status: "attached", AttachTime: xTime(in.launch), DeleteOnTermination: true}
				}
				if a := st.addrOfENI(n.id); a != nil {
					x.Association = &xIPAssociation{PublicIP: a.public.String(), IPOwnerID: s.opts.AccountID,
						AllocationID: a.alloc, AssociationID: a.assoc}
				}
				x.PrivateIPs = []xPrivateIP{{PrivateIPAddress: n.ip.String(), Primary: true, Association: x.Association}}
				set.Items = append(set.Items, x)
			}
			return []any{set}
		},
	})
}

func (s *Sim) modifyNetworkInterfaceAttribute(f form) ([]any, *apiError) {
	on, set, aerr := f.boolean("SourceDestCheck.Value")
	if aerr != nil {
		return nil, aerr
	}
	if k := unsupportedAttr(f, "NetworkInterfaceId", "SourceDestCheck.Value"); k != "" {
		return nil, errf(400, "UnsupportedOperation", "vpcsim models only the sourceDestCheck attribute, not %s", k)
	}
	return okReturn, s.mutate(f, func(st *state) *apiError {
		id := f.get("NetworkInterfaceId")
		if id == "" {
			return missing("networkInterfaceId")
		}
		if aerr := kindENI.check(id, func(x string) bool { n := st.enis[x]; return n != nil && !n.deleted }); aerr != nil {
			return aerr
		}
		if !set {
			return errf(400, "InvalidParameterCombination", "No attributes specified.")
		}
		st.enis[id].sdc = on
		return nil
	})
}

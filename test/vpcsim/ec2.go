package vpcsim

import (
	"net/netip"
	"strconv"
	"strings"
)

var ec2Ops = map[string]op{
	"DescribeInstances":               {false, (*Sim).describeInstances},
	"DescribeRouteTables":             {false, (*Sim).describeRouteTables},
	"DescribeNetworkInterfaces":       {false, (*Sim).describeNetworkInterfaces},
	"DescribeSubnets":                 {false, (*Sim).describeSubnets},
	"DescribeVpcs":                    {false, (*Sim).describeVpcs},
	"DescribeAddresses":               {false, (*Sim).describeAddresses},
	"CreateRoute":                     {true, (*Sim).createRoute},
	"ReplaceRoute":                    {true, (*Sim).replaceRoute},
	"DeleteRoute":                     {true, (*Sim).deleteRoute},
	"ModifyNetworkInterfaceAttribute": {true, (*Sim).modifyNetworkInterfaceAttribute},
	"ModifyInstanceAttribute":         {true, (*Sim).modifyInstanceAttribute},
	"AssociateAddress":                {true, (*Sim).associateAddress},
	"DisassociateAddress":             {true, (*Sim).disassociateAddress},
	"CreateTags":                      {true, (*Sim).createTags},
}

// wellFormed reports whether id is prefix followed by 8 or 17 lowercase hex digits.
func wellFormed(prefix, id string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || (len(rest) != 8 && len(rest) != 17) {
		return false
	}
	for _, c := range rest {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

type idKind struct {
	prefix, malformed, notFound, noun string
}

var (
	kindInstance = idKind{"i-", "InvalidInstanceID.Malformed", "InvalidInstanceID.NotFound", "instance"}
	kindENI      = idKind{"eni-", "InvalidNetworkInterfaceID.Malformed", "InvalidNetworkInterfaceID.NotFound", "networkInterface"}
	kindTable    = idKind{"rtb-", "InvalidRouteTableId.Malformed", "InvalidRouteTableID.NotFound", "routeTable"}
	kindSubnet   = idKind{"subnet-", "InvalidSubnetID.Malformed", "InvalidSubnetID.NotFound", "subnet"}
	kindVpc      = idKind{"vpc-", "InvalidVpcID.Malformed", "InvalidVpcID.NotFound", "vpc"}
	kindAlloc    = idKind{"eipalloc-", "InvalidAllocationID.Malformed", "InvalidAllocationID.NotFound", "allocation"}
	kindAssoc    = idKind{"eipassoc-", "InvalidAssociationID.Malformed", "InvalidAssociationID.NotFound", "association"}
)

// check validates an ID and looks it up; exists is called only for well-formed IDs.
func (k idKind) check(id string, exists func(string) bool) *apiError {
	if !wellFormed(k.prefix, id) {
		return errf(400, k.malformed, "Invalid id: \"%s\" (expecting \"%s...\")", id, k.prefix)
	}
	if !exists(id) {
		return errf(400, k.notFound, "The %s ID '%s' does not exist", k.noun, id)
	}
	return nil
}

func missing(param string) *apiError {
	return errf(400, "MissingParameter", "The request must contain the parameter %s", param)
}

// describe runs the common part of a Describe action: ID list, filters, DryRun.
func describe[T any](s *Sim, f form, idParam string, k idKind, fs fieldSet[T],
	lookup func(*state, string) (T, bool), all func(*state) []T, id func(T) string,
	render func(*state, []T) []any,
) ([]any, *apiError) {
	filters, aerr := ec2Filters(f)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := fs.validate(filters); aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	ids := f.list(idParam)
	var items []T
	if len(ids) > 0 {
		seen := map[string]bool{}
		for _, want := range ids {
			if aerr := k.check(want, func(x string) bool { _, ok := lookup(st, x); return ok }); aerr != nil {
				return nil, aerr
			}
			seen[want] = true
		}
		for _, v := range all(st) {
			if seen[id(v)] {
				items = append(items, v)
			}
		}
	} else {
		items = all(st)
	}
	if dry, _, _ := f.boolean("DryRun"); dry {
		return nil, errf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	var out []T
	for _, v := range items {
		if fs.match(st, v, filters) {
			out = append(out, v)
		}
	}
	return render(st, out), nil
}

// ---- DescribeInstances

var instanceFields = fieldSet[*instance]{
	tags: func(in *instance) tags { return in.tags },
	fields: map[string]func(*state, *instance) []string{
		"instance-id":         func(_ *state, in *instance) []string { return one(in.id) },
		"instance-state-name": func(_ *state, in *instance) []string { return one(in.state) },
		"instance-state-code": func(_ *state, in *instance) []string { return one(strconv.Itoa(stateCodes[in.state])) },
		"instance-type":       func(_ *state, in *instance) []string { return one(in.itype) },
		"availability-zone":   func(_ *state, in *instance) []string { return one(in.az) },
		"vpc-id":              func(st *state, in *instance) []string { return one(instLive(st, in, in.vpcID)) },
		"subnet-id":           func(st *state, in *instance) []string { return one(instLive(st, in, in.subnetID)) },
		"private-ip-address": func(st *state, in *instance) []string {
			if n := st.enis[in.eni]; n != nil && !n.deleted {
				return one(n.ip.String())
			}
			return nil
		},
		"network-interface.network-interface-id": func(st *state, in *instance) []string {
			return one(instLive(st, in, in.eni))
		},
	},
}

func instLive(st *state, in *instance, v string) string {
	if n := st.enis[in.eni]; n != nil && !n.deleted {
		return v
	}
	return ""
}

func (s *Sim) describeInstances(f form) ([]any, *apiError) {
	return describe(s, f, "InstanceId", kindInstance, instanceFields,
		func(st *state, id string) (*instance, bool) { v, ok := st.instances[id]; return v, ok },
		func(st *state) []*instance { return bySeq(st.instances, func(v *instance) int { return v.seq }) },
		func(v *instance) string { return v.id },
		func(st *state, ins []*instance) []any {
			set := xReservationSet{Items: []xReservation{}}
			for _, in := range ins {
				set.Items = append(set.Items, xReservation{
					ReservationID: in.reservation, OwnerID: s.opts.AccountID,
					Instances: []xInstance{s.xInstance(st, in)},
				})
			}
			return []any{set}
		})
}

func (s *Sim) xInstance(st *state, in *instance) xInstance {
	x := xInstance{
		InstanceID: in.id, ImageID: "ami-0headnat000000001", InstanceType: in.itype,
		State:      xState{Code: stateCodes[in.state], Name: in.state},
		LaunchTime: xTime(in.launch), Placement: xPlacement{AvailabilityZone: in.az, Tenancy: "default"},
		Architecture: "arm64", RootDeviceType: "ebs", Hypervisor: "xen", Virtualization: "hvm",
		Tags: xTags(in.tags),
	}
	n := st.enis[in.eni]
	if n == nil || n.deleted {
		return x
	}
	x.PrivateIPAddress, x.SubnetID, x.VpcID = n.ip.String(), in.subnetID, in.vpcID
	sdc := n.sdc
	x.SourceDestCheck = &sdc
	ie := xInstanceENI{
		NetworkInterfaceID: n.id, SubnetID: n.subnetID, VpcID: n.vpcID, OwnerID: s.opts.AccountID,
		Status: "in-use", MacAddress: n.mac, PrivateIPAddress: n.ip.String(), SourceDestCheck: n.sdc,
		InterfaceType: "interface",
		Attachment: xAttachment{AttachmentID: n.attachID, DeviceIndex: 0, Status: "attached",
			AttachTime: xTime(in.launch), DeleteOnTermination: true},
	}
	if a := st.addrOfENI(n.id); a != nil {
		assoc := &xIPAssociation{PublicIP: a.public.String(), IPOwnerID: s.opts.AccountID}
		ie.Association = assoc
		x.IPAddress = a.public.String()
	}
	ie.PrivateIPs = []xPrivateIP{{PrivateIPAddress: n.ip.String(), Primary: true, Association: ie.Association}}
	x.ENIs = []xInstanceENI{ie}
	return x
}

func (st *state) addrOfENI(eniID string) *address {
	for _, a := range st.addrs {
		if a.assoc != "" && a.eni == eniID {
			return a
		}
	}
	return nil
}

// ---- DescribeRouteTables

var tableFields = fieldSet[*routeTable]{
	tags: func(t *routeTable) tags { return t.tags },
	fields: map[string]func(*state, *routeTable) []string{
		"route-table-id": func(_ *state, t *routeTable) []string { return one(t.id) },
		"vpc-id":         func(_ *state, t *routeTable) []string { return one(t.vpcID) },
		"association.subnet-id": func(_ *state, t *routeTable) []string {
			var out []string
			for _, a := range t.assocs {
				out = append(out, a.subnetID)
			}
			return out
		},
		"association.route-table-association-id": func(_ *state, t *routeTable) []string {
			var out []string
			for _, a := range t.assocs {
				out = append(out, a.id)
			}
			return out
		},
		"association.route-table-id": func(_ *state, t *routeTable) []string {
			if len(t.assocs) > 0 {
				return one(t.id)
			}
			return nil
		},
		"association.main": func(_ *state, t *routeTable) []string {
			for _, a := range t.assocs {
				if a.main {
					return one("true")
				}
			}
			return one("false")
		},
		"route.destination-cidr-block": routeField(func(v RouteView) string { return v.Destination }),
		"route.gateway-id":             routeField(func(v RouteView) string { return v.GatewayID }),
		"route.instance-id":            routeField(func(v RouteView) string { return v.InstanceID }),
		"route.network-interface-id":   routeField(func(v RouteView) string { return v.NetworkInterfaceID }),
		"route.origin":                 routeField(func(v RouteView) string { return v.Origin }),
		"route.state":                  routeField(func(v RouteView) string { return v.State }),
	},
}

func routeField(get func(RouteView) string) func(*state, *routeTable) []string {
	return func(st *state, t *routeTable) []string {
		var out []string
		for _, r := range t.routes {
			if v := get(st.routeView(r)); v != "" {
				out = append(out, v)
			}
		}
		return out
	}
}

func (s *Sim) describeRouteTables(f form) ([]any, *apiError) {
	return describe(s, f, "RouteTableId", kindTable, tableFields,
		func(st *state, id string) (*routeTable, bool) { v, ok := st.tables[id]; return v, ok },
		func(st *state) []*routeTable { return bySeq(st.tables, func(v *routeTable) int { return v.seq }) },
		func(v *routeTable) string { return v.id },
		func(st *state, ts []*routeTable) []any {
			set := xRouteTableSet{Items: []xRouteTable{}}
			for _, t := range ts {
				xt := xRouteTable{RouteTableID: t.id, VpcID: t.vpcID, OwnerID: s.opts.AccountID, Tags: xTags(t.tags)}
				for _, r := range t.routes {
					v := st.routeView(r)
					xr := xRoute{DestinationCidrBlock: v.Destination, GatewayID: v.GatewayID, InstanceID: v.InstanceID,
						NetworkInterfaceID: v.NetworkInterfaceID, State: v.State, Origin: v.Origin}
					if xr.InstanceID != "" {
						xr.InstanceOwnerID = s.opts.AccountID
					}
					xt.Routes = append(xt.Routes, xr)
				}
				for _, a := range t.assocs {
					xt.Associations = append(xt.Associations, xRTAssociation{
						ID: a.id, RouteTableID: t.id, SubnetID: a.subnetID, Main: a.main,
						State: xAssocState{State: "associated"},
					})
				}
				set.Items = append(set.Items, xt)
			}
			return []any{set}
		})
}

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

func liveENIs(st *state) []*eni {
	var out []*eni
	for _, n := range bySeq(st.enis, func(v *eni) int { return v.seq }) {
		if !n.deleted {
			out = append(out, n)
		}
	}
	return out
}

func (s *Sim) describeNetworkInterfaces(f form) ([]any, *apiError) {
	return describe(s, f, "NetworkInterfaceId", kindENI, eniFields,
		func(st *state, id string) (*eni, bool) { v, ok := st.enis[id]; return v, ok && !v.deleted },
		liveENIs,
		func(v *eni) string { return v.id },
		func(st *state, ns []*eni) []any {
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
		})
}

// ---- DescribeSubnets

var subnetFields = fieldSet[*subnet]{
	tags: func(v *subnet) tags { return v.tags },
	fields: map[string]func(*state, *subnet) []string{
		"subnet-id":         func(_ *state, v *subnet) []string { return one(v.id) },
		"vpc-id":            func(_ *state, v *subnet) []string { return one(v.vpcID) },
		"availability-zone": func(_ *state, v *subnet) []string { return one(v.az) },
		"cidr-block":        func(_ *state, v *subnet) []string { return one(v.cidr.String()) },
		"cidr":              func(_ *state, v *subnet) []string { return one(v.cidr.String()) },
		"cidrBlock":         func(_ *state, v *subnet) []string { return one(v.cidr.String()) },
		"state":             func(*state, *subnet) []string { return one("available") },
		"default-for-az":    func(*state, *subnet) []string { return one("false") },
	},
}

func (s *Sim) describeSubnets(f form) ([]any, *apiError) {
	return describe(s, f, "SubnetId", kindSubnet, subnetFields,
		func(st *state, id string) (*subnet, bool) { v, ok := st.subnets[id]; return v, ok },
		func(st *state) []*subnet { return bySeq(st.subnets, func(v *subnet) int { return v.seq }) },
		func(v *subnet) string { return v.id },
		func(st *state, vs []*subnet) []any {
			set := xSubnetSet{Items: []xSubnet{}}
			for _, v := range vs {
				free := 1<<(32-v.cidr.Bits()) - 5
				for _, n := range st.enis {
					if !n.deleted && n.subnetID == v.id {
						free--
					}
				}
				set.Items = append(set.Items, xSubnet{
					SubnetID: v.id, SubnetArn: "arn:aws:ec2:" + s.opts.Region + ":" + s.opts.AccountID + ":subnet/" + v.id,
					State: "available", VpcID: v.vpcID, OwnerID: s.opts.AccountID, CidrBlock: v.cidr.String(),
					AvailableIPAddressCount: free, AvailabilityZone: v.az, Tags: xTags(v.tags),
				})
			}
			return []any{set}
		})
}

// ---- DescribeVpcs

var vpcFields = fieldSet[*vpc]{
	tags: func(v *vpc) tags { return v.tags },
	fields: map[string]func(*state, *vpc) []string{
		"vpc-id":                            func(_ *state, v *vpc) []string { return one(v.id) },
		"cidr":                              func(_ *state, v *vpc) []string { return one(v.cidr.String()) },
		"cidr-block-association.cidr-block": func(_ *state, v *vpc) []string { return one(v.cidr.String()) },
		"state":                             func(*state, *vpc) []string { return one("available") },
		"is-default":                        func(*state, *vpc) []string { return one("false") },
	},
}

func (s *Sim) describeVpcs(f form) ([]any, *apiError) {
	return describe(s, f, "VpcId", kindVpc, vpcFields,
		func(st *state, id string) (*vpc, bool) { v, ok := st.vpcs[id]; return v, ok },
		func(st *state) []*vpc { return bySeq(st.vpcs, func(v *vpc) int { return v.seq }) },
		func(v *vpc) string { return v.id },
		func(_ *state, vs []*vpc) []any {
			set := xVpcSet{Items: []xVpc{}}
			for _, v := range vs {
				set.Items = append(set.Items, xVpc{VpcID: v.id, OwnerID: s.opts.AccountID, State: "available",
					CidrBlock: v.cidr.String(), InstanceTenancy: "default", Tags: xTags(v.tags)})
			}
			return []any{set}
		})
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
	s.mu.Lock()
	for _, p := range pubs {
		if s.st.addrByPublic(p) == nil {
			s.mu.Unlock()
			return nil, errf(400, "InvalidAddress.NotFound", "Address '%s' not found.", p)
		}
	}
	s.mu.Unlock()
	return describe(s, f, "AllocationId", kindAlloc, addressFields,
		func(st *state, id string) (*address, bool) { v, ok := st.addrs[id]; return v, ok },
		func(st *state) []*address {
			all := bySeq(st.addrs, func(v *address) int { return v.seq })
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
		func(v *address) string { return v.alloc },
		func(st *state, as []*address) []any {
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
		})
}

func (st *state) addrByPublic(p string) *address {
	for _, a := range st.addrs {
		if a.public.String() == p {
			return a
		}
	}
	return nil
}

// ---- routes

var otherTargets = []string{"NatGatewayId", "VpcPeeringConnectionId", "TransitGatewayId", "LocalGatewayId",
	"CarrierGatewayId", "EgressOnlyInternetGatewayId", "VpcEndpointId", "CoreNetworkArn", "OdbNetworkArn"}

func parseDest(cidr string) (netip.Prefix, *apiError) {
	p, err := netip.ParsePrefix(cidr)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, errf(400, "InvalidParameterValue", "Value (%s) for parameter destinationCidrBlock is invalid. This is not a valid CIDR block.", cidr)
	}
	return p.Masked(), nil
}

// routeRequest validates the table and destination of a route call, inside a commit.
func routeRequest(st *state, f form) (*routeTable, netip.Prefix, *apiError) {
	id := f.get("RouteTableId")
	if id == "" {
		return nil, netip.Prefix{}, missing("routeTableId")
	}
	if aerr := kindTable.check(id, func(x string) bool { return st.tables[x] != nil }); aerr != nil {
		return nil, netip.Prefix{}, aerr
	}
	if f.get("DestinationIpv6CidrBlock") != "" || f.get("DestinationPrefixListId") != "" {
		return nil, netip.Prefix{}, errf(400, "UnsupportedOperation", "vpcsim models IPv4 CIDR destinations only")
	}
	cidr := f.get("DestinationCidrBlock")
	if cidr == "" {
		return nil, netip.Prefix{}, missing("destinationCidrBlock")
	}
	dest, aerr := parseDest(cidr)
	return st.tables[id], dest, aerr
}

// routeTarget reads the single target of CreateRoute/ReplaceRoute.
func routeTarget(st *state, f form, t *routeTable) (route, *apiError) {
	var given []string
	for _, k := range append([]string{"GatewayId", "InstanceId", "NetworkInterfaceId"}, otherTargets...) {
		if f.get(k) != "" {
			given = append(given, k)
		}
	}
	switch {
	case len(given) == 0:
		return route{}, errf(400, "MissingParameter", "The request must contain exactly one of gatewayId, natGatewayId, networkInterfaceId, vpcPeeringConnectionId, egressOnlyInternetGatewayId, transitGatewayId, localGatewayId, carrierGatewayId, coreNetworkArn or instanceId")
	case len(given) > 1:
		return route{}, errf(400, "InvalidParameterCombination", "The parameters %s cannot be used together: specify exactly one route target", strings.Join(given, ", "))
	}
	v := f.get(given[0])
	switch given[0] {
	case "InstanceId":
		if aerr := kindInstance.check(v, func(x string) bool { return st.instances[x] != nil }); aerr != nil {
			return route{}, aerr
		}
		if st.instances[v].vpcID != t.vpcID {
			return route{}, errf(400, "InvalidParameterValue", "route table %s and instance %s belong to different networks", t.id, v)
		}
		return st.routeToInstance(v)
	case "NetworkInterfaceId":
		if aerr := kindENI.check(v, func(x string) bool { n := st.enis[x]; return n != nil && !n.deleted }); aerr != nil {
			return route{}, aerr
		}
		return st.routeToENI(v, t.vpcID)
	case "GatewayId":
		return route{}, errf(400, "InvalidGatewayID.NotFound", "The gateway ID '%s' does not exist", v)
	}
	return route{}, errf(400, "UnsupportedOperation", "vpcsim models routes to instances and network interfaces only, not %s", given[0])
}

func (s *Sim) mutate(f form, fn func(*state) *apiError) *apiError {
	dry, _, aerr := f.boolean("DryRun")
	if aerr != nil {
		return aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commit(fn, dry)
}

var okReturn = []any{xReturn{Value: true}}

func (s *Sim) createRoute(f form) ([]any, *apiError) {
	return okReturn, s.mutate(f, func(st *state) *apiError {
		t, dest, aerr := routeRequest(st, f)
		if aerr != nil {
			return aerr
		}
		r, aerr := routeTarget(st, f, t)
		if aerr != nil {
			return aerr
		}
		if t.find(dest) >= 0 {
			return errf(400, "RouteAlreadyExists", "The route identified by %s already exists.", dest)
		}
		r.dest, r.origin = dest, "CreateRoute"
		t.routes = append(t.routes, r)
		return nil
	})
}

func (s *Sim) replaceRoute(f form) ([]any, *apiError) {
	return okReturn, s.mutate(f, func(st *state) *apiError {
		t, dest, aerr := routeRequest(st, f)
		if aerr != nil {
			return aerr
		}
		i := t.find(dest)
		if i < 0 {
			// What EC2 answers, rather than InvalidRoute.NotFound: callers fall back to CreateRoute.
			return errf(400, "InvalidParameterValue", "There is no route defined for '%s' in the route table. Use CreateRoute instead.", dest)
		}
		if t.routes[i].gateway == "local" {
			return errf(400, "InvalidParameterValue", "The local route %s cannot be replaced with this target", dest)
		}
		r, aerr := routeTarget(st, f, t)
		if aerr != nil {
			return aerr
		}
		r.dest, r.origin = dest, t.routes[i].origin
		t.routes[i] = r
		return nil
	})
}

func (s *Sim) deleteRoute(f form) ([]any, *apiError) {
	return okReturn, s.mutate(f, func(st *state) *apiError {
		t, dest, aerr := routeRequest(st, f)
		if aerr != nil {
			return aerr
		}
		i := t.find(dest)
		if i < 0 {
			return errf(400, "InvalidRoute.NotFound", "no route with destination-cidr-block %s in route table %s", dest, t.id)
		}
		if t.routes[i].gateway == "local" {
			return errf(400, "InvalidParameterValue", "cannot remove local route %s in route table %s", dest, t.id)
		}
		t.routes = append(t.routes[:i], t.routes[i+1:]...)
		return nil
	})
}

// ---- source/dest check

// unsupportedAttr reports attribute parameters vpcsim does not model.
func unsupportedAttr(f form, allowed ...string) string {
	for k := range f {
		if k == "Action" || k == "Version" || k == "DryRun" {
			continue
		}
		ok := false
		for _, a := range allowed {
			if k == a {
				ok = true
			}
		}
		if !ok {
			return k
		}
	}
	return ""
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

func (s *Sim) modifyInstanceAttribute(f form) ([]any, *apiError) {
	on, set, aerr := f.boolean("SourceDestCheck.Value")
	if aerr != nil {
		return nil, aerr
	}
	if attr := f.get("Attribute"); attr != "" {
		if attr != "sourceDestCheck" {
			return nil, errf(400, "UnsupportedOperation", "vpcsim models only the sourceDestCheck attribute, not %s", attr)
		}
		v, err := strconv.ParseBool(f.get("Value"))
		if err != nil {
			return nil, errf(400, "InvalidParameterValue", "Value (%s) for parameter value is invalid. Expected a boolean.", f.get("Value"))
		}
		on, set = v, true
	}
	if k := unsupportedAttr(f, "InstanceId", "SourceDestCheck.Value", "Attribute", "Value"); k != "" {
		return nil, errf(400, "UnsupportedOperation", "vpcsim models only the sourceDestCheck attribute, not %s", k)
	}
	return okReturn, s.mutate(f, func(st *state) *apiError {
		id := f.get("InstanceId")
		if id == "" {
			return missing("instanceId")
		}
		if aerr := kindInstance.check(id, func(x string) bool { return st.instances[x] != nil }); aerr != nil {
			return aerr
		}
		if !set {
			return errf(400, "InvalidParameterCombination", "No attributes specified.")
		}
		in := st.instances[id]
		n := st.enis[in.eni]
		if in.state == StateTerminated || n == nil || n.deleted {
			return errf(400, "IncorrectInstanceState", "The instance '%s' is not in a state from which it can be modified (%s)", id, in.state)
		}
		n.sdc = on
		return nil
	})
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

// ---- CreateTags

func (s *Sim) createTags(f form) ([]any, *apiError) {
	ids := f.list("ResourceId")
	if len(ids) == 0 {
		return nil, missing("resourceIdSet")
	}
	add := tags{}
	for _, i := range f.indices("Tag") {
		k := f.get("Tag." + i + ".Key")
		switch {
		case k == "":
			return nil, errf(400, "InvalidParameterValue", "Tag %s has an empty key", i)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return nil, errf(400, "InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
		}
		add[k] = f.get("Tag." + i + ".Value")
	}
	if len(add) == 0 {
		return nil, missing("tagSet")
	}
	return okReturn, s.mutate(f, func(st *state) *apiError {
		for _, id := range ids {
			t := st.tagsOf(id)
			if t == nil {
				return notFoundAny(st, id)
			}
			for k, v := range add {
				t[k] = v
			}
		}
		return nil
	})
}

func notFoundAny(st *state, id string) *apiError {
	for _, k := range []idKind{kindInstance, kindENI, kindTable, kindSubnet, kindVpc, kindAlloc} {
		if strings.HasPrefix(id, k.prefix) {
			return k.check(id, func(string) bool { return false })
		}
	}
	return errf(400, "InvalidID", "The ID '%s' is not valid", id)
}

package vpcsim

import (
	"net/netip"
	"strconv"
	"strings"
)

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
		// One value per association: a table with none matches neither true nor false.
		"association.main": func(_ *state, t *routeTable) []string {
			var out []string
			for _, a := range t.assocs {
				out = append(out, strconv.FormatBool(a.main))
			}
			return out
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
	return describe(s, f, describeSpec[*routeTable]{
		action: "DescribeRouteTables", idParam: "RouteTableId", kind: kindTable, fields: tableFields,
		paging: pageRule{min: 5, max: 100},
		lookup: func(st *state, id string) (*routeTable, bool) { v, ok := st.tables[id]; return v, ok },
		all:    func(st *state) []*routeTable { return bySeq(st.tables, tableSeq) },
		seq:    tableSeq,
		id:     func(v *routeTable) string { return v.id },
		render: func(st *state, ts []*routeTable) []any {
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
		},
	})
}

func tableSeq(v *routeTable) int { return v.seq }

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

package vpcsim

import "fmt"

// AddInternetGateway creates an internet gateway attached to a VPC and returns its ID. It only
// exists as a route target: routes to it are always active and the Sink never sees them.
func (s *Sim) AddInternetGateway(vpcID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.vpcs[vpcID] == nil {
		panic(fmt.Sprintf("vpcsim: AddInternetGateway: unknown VPC %q", vpcID))
	}
	id := s.newID("igw-")
	s.igws[id] = vpcID
	return id
}

// AddGatewayRoute adds a route to an internet gateway of the table's VPC, as a public
// subnet's table has (setup code: it panics on invalid input and does not notify the Sink).
func (s *Sim) AddGatewayRoute(rtbID, cidr, igwID string) {
	dest := mustPrefix("AddGatewayRoute", cidr)
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.st.tables[rtbID]
	switch {
	case t == nil:
		panic(fmt.Sprintf("vpcsim: AddGatewayRoute: unknown route table %q", rtbID))
	case s.igws[igwID] == "":
		panic(fmt.Sprintf("vpcsim: AddGatewayRoute: unknown internet gateway %q", igwID))
	case s.igws[igwID] != t.vpcID:
		panic(fmt.Sprintf("vpcsim: AddGatewayRoute: %s and %s are in different VPCs", igwID, rtbID))
	case t.find(dest) >= 0:
		panic(fmt.Sprintf("vpcsim: AddGatewayRoute: %s already has a route to %s", rtbID, dest))
	}
	t.routes = append(t.routes, route{dest: dest, gateway: igwID, origin: "CreateRoute"})
}

package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/headnat/headnat/agent/api"
)

// Tags the agent reads (the first two are shared with the deployment through agent/api).
const (
	TagCluster  = api.TagCluster
	TagAZ       = api.TagAZ
	TagASGGroup = "aws:autoscaling:groupName"
)

// DefaultRoute is the destination the agent manages.
const DefaultRoute = "0.0.0.0/0"

// maxPages bounds every paginated describe.
const maxPages = 100

// Instance is a cluster member as EC2 describes it.
type Instance struct {
	ID         string
	State      string // pending, running, ...
	AZ         string
	SubnetID   string
	ENI        string // primary (device index 0)
	PrivateIP  netip.Addr
	LaunchTime time.Time
	Tags       map[string]string
}

// RouteState is the state of a table's default route.
type RouteState string

// Route states: as EC2 reports them, plus Missing when the table has no default route.
const (
	RouteActive    RouteState = "active"
	RouteBlackhole RouteState = "blackhole"
	RouteMissing   RouteState = "missing"
)

// RouteTarget is where a default route points. ENI and InstanceID are set for a route to
// an instance; Other holds any other target (internet or NAT gateway, ...).
type RouteTarget struct {
	ENI        string
	InstanceID string
	Other      string
}

// RouteTable is a managed route table.
type RouteTable struct {
	ID      string
	VPCID   string
	HomeAZ  string
	Subnets []string // explicitly associated subnets
	Target  RouteTarget
	State   RouteState
}

// Cluster is every member instance and managed route table tagged headnat:cluster=Name.
type Cluster struct {
	Name      string
	Instances []Instance // sorted by ID
	Tables    []RouteTable
}

// Self is this instance as EC2 describes it, with the tags the agent needs.
type Self struct {
	Instance
	ClusterName string // headnat:cluster tag, "" if untagged
	ASGName     string // aws:autoscaling:groupName tag, "" outside an ASG
}

func (c *Client) ec2Call(ctx context.Context, cl call, fn func(ctx context.Context) error) error {
	if c.ec2 == nil {
		return fmt.Errorf("%s: %w", cl.op, errNoClient)
	}
	if cl.timeout == 0 {
		cl.timeout = c.o.Timeouts.Describe
		if cl.write {
			cl.timeout = c.o.Timeouts.Mutate
		}
	}
	return c.do(ctx, cl, fn)
}

// DescribeSelf describes this instance: launch time, tags (cluster name, ASG name).
func (c *Client) DescribeSelf(ctx context.Context, instanceID string) (Self, error) {
	if instanceID == "" {
		return Self{}, errors.New("describe self: empty instance id")
	}
	// EC2 is eventually consistent: a fresh instance may not be described yet.
	var insts []Instance
	var err error
	deadline := time.Now().Add(c.o.LaunchConsistencyWait)
	for {
		insts, err = c.describeInstances(ctx, "describe self", &ec2.DescribeInstancesInput{
			InstanceIds: []string{instanceID},
		})
		if ErrorCode(err) != "InvalidInstanceID.NotFound" || !time.Now().Before(deadline) {
			break
		}
		c.log.Info("this instance is not described yet (EC2 is eventually consistent); retrying", "instance", instanceID)
		t := time.NewTimer(c.o.ConfirmInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return Self{}, fmt.Errorf("describe self %s: %w", instanceID, err)
		case <-t.C:
		}
	}
	if err != nil {
		return Self{}, fmt.Errorf("describe self %s: %w", instanceID, err)
	}
	if len(insts) != 1 || insts[0].ID != instanceID {
		return Self{}, fmt.Errorf("describe self %s: %w", instanceID,
			bad("DescribeInstances", "want instance %s, got %d instances", instanceID, len(insts)))
	}
	s := Self{Instance: insts[0], ClusterName: insts[0].Tags[TagCluster], ASGName: insts[0].Tags[TagASGGroup]}
	return s, nil
}

// ClusterName reads the headnat:cluster tag of this instance.
func (c *Client) ClusterName(ctx context.Context, instanceID string) (string, error) {
	s, err := c.DescribeSelf(ctx, instanceID)
	if err != nil {
		return "", err
	}
	if s.ClusterName == "" {
		return "", fmt.Errorf("instance %s has no %s tag and no cluster name is configured", instanceID, TagCluster)
	}
	return s.ClusterName, nil
}

// Instances lists the cluster's pending and running instances, sorted by ID.
func (c *Client) Instances(ctx context.Context, cluster, reason string) ([]Instance, error) {
	if cluster == "" {
		return nil, errors.New("list instances: empty cluster name")
	}
	insts, err := c.describeInstances(ctx, reason, &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + TagCluster), Values: []string{cluster}},
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running"}},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("list instances of cluster %s: %w", cluster, err)
	}
	sort.Slice(insts, func(i, j int) bool { return insts[i].ID < insts[j].ID })
	return insts, nil
}

func (c *Client) describeInstances(ctx context.Context, reason string, in *ec2.DescribeInstancesInput) ([]Instance, error) {
	var out []Instance
	pages := ec2.NewDescribeInstancesPaginator(c.ec2, in)
	for page := 0; pages.HasMorePages(); page++ {
		if page == maxPages {
			return nil, bad("DescribeInstances", "more than %d pages", maxPages)
		}
		var resp *ec2.DescribeInstancesOutput
		err := c.ec2Call(ctx, call{op: "DescribeInstances", reason: reason, attrs: []any{"page", page}}, func(ctx context.Context) error {
			var err error
			resp, err = pages.NextPage(ctx, c.ec2Opt())
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Reservations {
			for _, i := range r.Instances {
				inst, err := parseInstance(i)
				if err != nil {
					return nil, err
				}
				out = append(out, inst)
			}
		}
	}
	return out, nil
}

func parseInstance(i types.Instance) (Instance, error) {
	id := aws.ToString(i.InstanceId)
	if id == "" {
		return Instance{}, bad("DescribeInstances", "instance without id")
	}
	inst := Instance{ID: id, SubnetID: aws.ToString(i.SubnetId), Tags: tagMap(i.Tags)}
	if i.State != nil {
		inst.State = string(i.State.Name)
	}
	if inst.State == "" {
		return Instance{}, bad("DescribeInstances", "instance %s without state", id)
	}
	if i.Placement != nil {
		inst.AZ = aws.ToString(i.Placement.AvailabilityZone)
	}
	if inst.AZ == "" {
		return Instance{}, bad("DescribeInstances", "instance %s without availability zone", id)
	}
	if i.LaunchTime == nil {
		return Instance{}, bad("DescribeInstances", "instance %s without launch time", id)
	}
	inst.LaunchTime = *i.LaunchTime
	ip := aws.ToString(i.PrivateIpAddress)
	for _, n := range i.NetworkInterfaces {
		if n.Attachment != nil && aws.ToInt32(n.Attachment.DeviceIndex) == 0 && n.Attachment.DeviceIndex != nil {
			inst.ENI = aws.ToString(n.NetworkInterfaceId)
			if ip == "" {
				ip = aws.ToString(n.PrivateIpAddress)
			}
			break
		}
	}
	if inst.ENI == "" {
		// Without attachment details, the interface holding the instance's address is primary.
		for _, n := range i.NetworkInterfaces {
			if ip != "" && aws.ToString(n.PrivateIpAddress) == ip {
				inst.ENI = aws.ToString(n.NetworkInterfaceId)
				break
			}
		}
	}
	if inst.ENI == "" {
		return Instance{}, bad("DescribeInstances", "instance %s without primary network interface", id)
	}
	if ip == "" {
		return Instance{}, bad("DescribeInstances", "instance %s without private IP", id)
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is4() {
		return Instance{}, bad("DescribeInstances", "instance %s: private IP %q is not IPv4", id, ip)
	}
	inst.PrivateIP = addr
	return inst, nil
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return m
}

// RouteTables lists the cluster's managed route tables with their home AZ and default route.
// A table whose home AZ cannot be told (no headnat:az tag and no subnets, or subnets in
// several AZs) fails the whole listing, naming the table.
func (c *Client) RouteTables(ctx context.Context, cluster, reason string) ([]RouteTable, error) {
	if cluster == "" {
		return nil, errors.New("list route tables: empty cluster name")
	}
	in := &ec2.DescribeRouteTablesInput{Filters: []types.Filter{
		{Name: aws.String("tag:" + TagCluster), Values: []string{cluster}},
	}}
	var raw []types.RouteTable
	pages := ec2.NewDescribeRouteTablesPaginator(c.ec2, in)
	for page := 0; pages.HasMorePages(); page++ {
		if page == maxPages {
			return nil, bad("DescribeRouteTables", "more than %d pages", maxPages)
		}
		var resp *ec2.DescribeRouteTablesOutput
		err := c.ec2Call(ctx, call{op: "DescribeRouteTables", reason: reason, attrs: []any{"page", page}}, func(ctx context.Context) error {
			var err error
			resp, err = pages.NextPage(ctx, c.ec2Opt())
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("list route tables of cluster %s: %w", cluster, err)
		}
		raw = append(raw, resp.RouteTables...)
	}

	tables := make([]RouteTable, 0, len(raw))
	var needAZ []string // subnets of untagged tables
	for _, rt := range raw {
		t, err := parseRouteTable(rt)
		if err != nil {
			return nil, err
		}
		if t.HomeAZ == "" {
			if len(t.Subnets) == 0 {
				return nil, fmt.Errorf("route table %s: no %s tag and no associated subnet: cannot tell its home AZ", t.ID, TagAZ)
			}
			needAZ = append(needAZ, t.Subnets...)
		}
		tables = append(tables, t)
	}
	if len(needAZ) > 0 {
		azOf, err := c.subnetAZs(ctx, needAZ, reason)
		if err != nil {
			return nil, fmt.Errorf("home AZ of route tables: %w", err)
		}
		for i := range tables {
			t := &tables[i]
			if t.HomeAZ != "" {
				continue
			}
			for _, s := range t.Subnets {
				az, ok := azOf[s]
				if !ok {
					return nil, fmt.Errorf("route table %s: subnet %s not found", t.ID, s)
				}
				if t.HomeAZ != "" && t.HomeAZ != az {
					return nil, fmt.Errorf("route table %s: subnets in %s and %s and no %s tag: cannot tell its home AZ", t.ID, t.HomeAZ, az, TagAZ)
				}
				t.HomeAZ = az
			}
		}
	}
	sort.Slice(tables, func(i, j int) bool { return tables[i].ID < tables[j].ID })
	return tables, nil
}

func parseRouteTable(rt types.RouteTable) (RouteTable, error) {
	id := aws.ToString(rt.RouteTableId)
	if id == "" {
		return RouteTable{}, bad("DescribeRouteTables", "route table without id")
	}
	t := RouteTable{ID: id, VPCID: aws.ToString(rt.VpcId), State: RouteMissing}
	tags := tagMap(rt.Tags)
	if az, ok := tags[TagAZ]; ok {
		if az == "" {
			return RouteTable{}, fmt.Errorf("route table %s: empty %s tag", id, TagAZ)
		}
		t.HomeAZ = az
	}
	for _, a := range rt.Associations {
		if s := aws.ToString(a.SubnetId); s != "" {
			t.Subnets = append(t.Subnets, s)
		}
	}
	sort.Strings(t.Subnets)
	for _, r := range rt.Routes {
		if aws.ToString(r.DestinationCidrBlock) != DefaultRoute {
			continue
		}
		switch r.State {
		case types.RouteStateActive:
			t.State = RouteActive
		case types.RouteStateBlackhole:
			t.State = RouteBlackhole
		default:
			return RouteTable{}, bad("DescribeRouteTables", "route table %s: default route in unknown state %q", id, r.State)
		}
		t.Target = RouteTarget{ENI: aws.ToString(r.NetworkInterfaceId), InstanceID: aws.ToString(r.InstanceId)}
		if t.Target.ENI == "" && t.Target.InstanceID == "" {
			for _, o := range []*string{r.GatewayId, r.NatGatewayId, r.TransitGatewayId, r.VpcPeeringConnectionId,
				r.EgressOnlyInternetGatewayId, r.LocalGatewayId, r.CarrierGatewayId} {
				if v := aws.ToString(o); v != "" {
					t.Target.Other = v
					break
				}
			}
		}
		break
	}
	return t, nil
}

// subnetAZs maps subnet ids to their AZ in one describe.
func (c *Client) subnetAZs(ctx context.Context, ids []string, reason string) (map[string]string, error) {
	uniq := map[string]bool{}
	var list []string
	for _, id := range ids {
		if !uniq[id] {
			uniq[id] = true
			list = append(list, id)
		}
	}
	sort.Strings(list)
	out := map[string]string{}
	pages := ec2.NewDescribeSubnetsPaginator(c.ec2, &ec2.DescribeSubnetsInput{SubnetIds: list})
	for page := 0; pages.HasMorePages(); page++ {
		if page == maxPages {
			return nil, bad("DescribeSubnets", "more than %d pages", maxPages)
		}
		var resp *ec2.DescribeSubnetsOutput
		err := c.ec2Call(ctx, call{op: "DescribeSubnets", reason: reason, attrs: []any{"page", page}}, func(ctx context.Context) error {
			var err error
			resp, err = pages.NextPage(ctx, c.ec2Opt())
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, s := range resp.Subnets {
			id, az := aws.ToString(s.SubnetId), aws.ToString(s.AvailabilityZone)
			if id == "" || az == "" {
				return nil, bad("DescribeSubnets", "subnet %q without id or availability zone", id)
			}
			out[id] = az
		}
	}
	return out, nil
}

// Discover lists the cluster: member instances and managed route tables.
func (c *Client) Discover(ctx context.Context, cluster, reason string) (Cluster, error) {
	insts, err := c.Instances(ctx, cluster, reason)
	if err != nil {
		return Cluster{}, err
	}
	tables, err := c.RouteTables(ctx, cluster, reason)
	if err != nil {
		return Cluster{}, err
	}
	return Cluster{Name: cluster, Instances: insts, Tables: tables}, nil
}

// SourceDestCheck reads the source/dest check attribute of an ENI.
func (c *Client) SourceDestCheck(ctx context.Context, eni, reason string) (bool, error) {
	pages := ec2.NewDescribeNetworkInterfacesPaginator(c.ec2, &ec2.DescribeNetworkInterfacesInput{
		NetworkInterfaceIds: []string{eni},
	})
	for page := 0; pages.HasMorePages(); page++ {
		if page == maxPages {
			return false, bad("DescribeNetworkInterfaces", "more than %d pages", maxPages)
		}
		var resp *ec2.DescribeNetworkInterfacesOutput
		err := c.ec2Call(ctx, call{op: "DescribeNetworkInterfaces", reason: reason, attrs: []any{"eni", eni, "page", page}},
			func(ctx context.Context) error {
				var err error
				resp, err = pages.NextPage(ctx, c.ec2Opt())
				return err
			})
		if err != nil {
			return false, fmt.Errorf("describe network interface %s: %w", eni, err)
		}
		for _, n := range resp.NetworkInterfaces {
			if aws.ToString(n.NetworkInterfaceId) != eni {
				continue
			}
			if n.SourceDestCheck == nil {
				return false, bad("DescribeNetworkInterfaces", "%s without SourceDestCheck", eni)
			}
			return *n.SourceDestCheck, nil
		}
	}
	return false, bad("DescribeNetworkInterfaces", "%s not in the answer", eni)
}

// DisableSourceDestCheck turns source/dest check off on an ENI and returns only once a
// describe confirms it is off (bounded re-reads, Options.ConfirmAttempts apart by
// ConfirmInterval).
func (c *Client) DisableSourceDestCheck(ctx context.Context, eni string) error {
	if eni == "" {
		return errors.New("disable source/dest check: empty ENI id")
	}
	on, err := c.SourceDestCheck(ctx, eni, "check source/dest check at start")
	if err != nil {
		return err
	}
	if !on {
		return nil
	}
	err = c.ec2Call(ctx, call{op: "ModifyNetworkInterfaceAttribute", reason: "disable source/dest check to forward traffic",
		write: true, attrs: []any{"eni", eni}},
		func(ctx context.Context) error {
			_, err := c.ec2.ModifyNetworkInterfaceAttribute(ctx, &ec2.ModifyNetworkInterfaceAttributeInput{
				NetworkInterfaceId: aws.String(eni),
				SourceDestCheck:    &types.AttributeBooleanValue{Value: aws.Bool(false)},
			}, c.ec2Opt())
			return err
		})
	if err != nil {
		return fmt.Errorf("disable source/dest check on %s: %w", eni, err)
	}
	var lastErr error
	for i := 0; i < c.o.ConfirmAttempts; i++ {
		on, err := c.SourceDestCheck(ctx, eni, "confirm source/dest check off")
		if err == nil && !on {
			return nil
		}
		lastErr = err
		if lastErr == nil {
			lastErr = errors.New("still on")
		}
		t := time.NewTimer(c.o.ConfirmInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("confirm source/dest check off on %s: %w", eni, ctx.Err())
		case <-t.C:
		}
	}
	return fmt.Errorf("source/dest check on %s not confirmed off after %d reads: %w", eni, c.o.ConfirmAttempts, lastErr)
}

// SourceDestCheckOff disables source/dest check on this instance's primary ENI (from
// ReadIdentity, read now if not yet) and returns only when EC2 confirms it is off. The agent
// claims no route before.
func (c *Client) SourceDestCheckOff(ctx context.Context) error {
	c.mu.Lock()
	self := c.self
	c.mu.Unlock()
	if self == nil {
		id, err := c.ReadIdentity(ctx)
		if err != nil {
			return fmt.Errorf("source/dest check: %w", err)
		}
		self = &id
	}
	return c.DisableSourceDestCheck(ctx, self.ENI)
}

// ErrRouteExists: a CreateRoute found a default route to something else. The caller decided
// on a view older than that route and should re-read before deciding again.
var ErrRouteExists = errors.New("the default route already exists")

// PointRoute points the table's default route at eni. With create it calls CreateRoute
// (the route is absent), else ReplaceRoute, falling back to CreateRoute when EC2 answers that
// the route is absent. A CreateRoute that finds the route there never replaces it: it
// succeeds if the route already targets eni (an earlier attempt of the same call), and else
// fails with ErrRouteExists, since someone else made that route after the caller looked.
func (c *Client) PointRoute(ctx context.Context, tableID, eniID, reason string, create bool) error {
	if tableID == "" || eniID == "" {
		return fmt.Errorf("point route: empty table (%q) or ENI (%q)", tableID, eniID)
	}
	replace := func() error {
		return c.ec2Call(ctx, call{op: "ReplaceRoute", reason: reason, write: true,
			attrs: []any{"table", tableID, "target", eniID}},
			func(ctx context.Context) error {
				_, err := c.ec2.ReplaceRoute(ctx, &ec2.ReplaceRouteInput{
					RouteTableId:         aws.String(tableID),
					DestinationCidrBlock: aws.String(DefaultRoute),
					NetworkInterfaceId:   aws.String(eniID),
				}, c.ec2Opt())
				return err
			})
	}
	createRoute := func() error {
		return c.ec2Call(ctx, call{op: "CreateRoute", reason: reason, write: true,
			attrs: []any{"table", tableID, "target", eniID}},
			func(ctx context.Context) error {
				_, err := c.ec2.CreateRoute(ctx, &ec2.CreateRouteInput{
					RouteTableId:         aws.String(tableID),
					DestinationCidrBlock: aws.String(DefaultRoute),
					NetworkInterfaceId:   aws.String(eniID),
				}, c.ec2Opt())
				return err
			})
	}
	var err error
	if create {
		err = createRoute()
		if hasCode(err, "RouteAlreadyExists") {
			err = c.createdAnyway(ctx, tableID, eniID, reason)
		}
	} else {
		err = replace()
		if routeAbsent(err) {
			err = createRoute()
		}
	}
	if err != nil {
		return fmt.Errorf("point default route of %s at %s: %w", tableID, eniID, err)
	}
	return nil
}

// createdAnyway checks, after RouteAlreadyExists, whose the default route is.
func (c *Client) createdAnyway(ctx context.Context, tableID, eniID, reason string) error {
	var out *ec2.DescribeRouteTablesOutput
	err := c.ec2Call(ctx, call{op: "DescribeRouteTables", reason: "route already exists: " + reason, attrs: []any{"table", tableID}},
		func(ctx context.Context) error {
			var err error
			out, err = c.ec2.DescribeRouteTables(ctx, &ec2.DescribeRouteTablesInput{RouteTableIds: []string{tableID}}, c.ec2Opt())
			return err
		})
	if err != nil {
		return fmt.Errorf("read the existing route: %w", err)
	}
	if len(out.RouteTables) != 1 {
		return bad("DescribeRouteTables", "want route table %s, got %d tables", tableID, len(out.RouteTables))
	}
	t, err := parseRouteTable(out.RouteTables[0])
	if err != nil {
		return err
	}
	if t.State == RouteActive && t.Target.ENI == eniID {
		return nil
	}
	target := t.Target.ENI + t.Target.Other
	if target == "" {
		target = t.Target.InstanceID
	}
	return fmt.Errorf("%w: it targets %q (%s); not replaced", ErrRouteExists, target, t.State)
}

// routeAbsent reports a ReplaceRoute refused because the table has no such route:
// InvalidRoute.NotFound, or the InvalidParameterValue "There is no route defined for ...
// Use CreateRoute instead" that EC2 answers.
func routeAbsent(err error) bool {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode() {
	case "InvalidRoute.NotFound":
		return true
	case "InvalidParameterValue":
		return strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "no route")
	}
	return false
}

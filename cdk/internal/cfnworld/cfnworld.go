// Package cfnworld builds a vpcsim world from a synthesized CloudFormation template: the VPC,
// subnets, route tables, associations and routes as CloudFormation would create them, and the
// instances the Auto Scaling groups would launch, tagged as their launch template and group tag
// them. The agent's discovery can then run against what the CDK app deploys.
//
// It models what discovery reads and nothing more. A resource type it does not know, an
// intrinsic function it cannot evaluate, or a property it does not model is an error, never a
// silent skip; types that cannot change what discovery sees are ignored by name (ignored).
package cfnworld

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/headnat/headnat/test/vpcsim"
)

// Options configure Build. The zero value works.
type Options struct {
	Region string   // AWS::Region and the default of Fn::GetAZs; default "us-east-1"
	AZs    []string // what Fn::GetAZs returns; default Region + "a".."f"
	Seed   uint64   // vpcsim's seed; default 1
	// Now is the Sim's clock; instances are launched an hour before it, a minute apart.
	// Default time.Now.
	Now func() time.Time
}

// Subnet is a template subnet as created in the Sim.
type Subnet struct {
	ID, AZ, CIDR string
}

// Table is a template route table as created in the Sim.
type Table struct {
	ID      string
	Tags    map[string]string
	Subnets []string // logical ids of the associated subnets, sorted
}

// Instance is one instance an Auto Scaling group of the template launched.
type Instance struct {
	ID, ENI, AZ string
	Subnet      string // logical id of its subnet
	Group       string // logical id of its group
	Tags        map[string]string
}

// World is the template's network in a Sim, by logical id.
type World struct {
	Sim       *vpcsim.Sim
	Region    string
	VPCs      map[string]string // VPC id
	VPCCIDRs  map[string]string
	Subnets   map[string]Subnet
	Tables    map[string]Table
	Instances []Instance // in launch order
}

// ignored are resource types that cannot change what discovery sees: IAM, logs, security
// groups, Elastic IPs (a pool the agent associates later), instance profiles, CDK's metadata,
// alarms and their topic, and gateway VPC endpoints (their prefix-list routes are neither modeled nor read).
var ignored = map[string]bool{
	"AWS::IAM::Role": true, "AWS::IAM::Policy": true, "AWS::IAM::ManagedPolicy": true,
	"AWS::IAM::InstanceProfile": true, "AWS::Logs::LogGroup": true, "AWS::CDK::Metadata": true,
	"AWS::EC2::SecurityGroup": true, "AWS::EC2::SecurityGroupIngress": true,
	"AWS::EC2::SecurityGroupEgress": true, "AWS::EC2::EIP": true, "AWS::EC2::VPCEndpoint": true,
	"AWS::CloudWatch::Alarm": true, "AWS::SNS::Topic": true, "AWS::SNS::TopicPolicy": true,
	"AWS::SNS::Subscription": true,
}

// order is the order in which modeled types are created: what a resource refers to first.
var order = []string{
	"AWS::EC2::VPC", "AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment",
	"AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::SubnetRouteTableAssociation",
	"AWS::EC2::Route", "AWS::EC2::LaunchTemplate", "AWS::AutoScaling::AutoScalingGroup",
}

type resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
	Condition  any            `json:"Condition"`
}

type parameter struct {
	Type    string `json:"Type"`
	Default any    `json:"Default"`
}

type builder struct {
	o      Options
	params map[string]parameter
	res    map[string]resource
	phys   map[string]string            // logical id -> physical id, once created
	igwVPC map[string]string            // internet gateway logical id -> VPC logical id
	ltTags map[string]map[string]string // launch template logical id -> instance tags
	w      *World
}

// Build parses a template (JSON, as assertions.Template.ToJSON or cdk.out has it) and creates
// its network and instances in a new Sim.
func Build(template []byte, o Options) (*World, error) {
	var doc struct {
		Parameters map[string]parameter `json:"Parameters"`
		Resources  map[string]resource  `json:"Resources"`
	}
	if err := json.Unmarshal(template, &doc); err != nil {
		return nil, fmt.Errorf("cfnworld: parse template: %w", err)
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if len(o.AZs) == 0 {
		for _, s := range []string{"a", "b", "c", "d", "e", "f"} {
			o.AZs = append(o.AZs, o.Region+s)
		}
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &builder{o: o, params: doc.Parameters, res: doc.Resources, phys: map[string]string{},
		igwVPC: map[string]string{}, ltTags: map[string]map[string]string{},
		w: &World{Sim: vpcsim.New(vpcsim.Options{Region: o.Region, Seed: o.Seed, Now: o.Now}), Region: o.Region,
			VPCs: map[string]string{}, VPCCIDRs: map[string]string{}, Subnets: map[string]Subnet{}, Tables: map[string]Table{}}}
	byType := map[string][]string{}
	for id, r := range doc.Resources {
		switch {
		case ignored[r.Type]:
			continue
		case !slices.Contains(order, r.Type):
			return nil, fmt.Errorf("cfnworld: resource %s: type %s is not modeled (model it, or add it to the ignored types if it cannot change discovery)", id, r.Type)
		case r.Condition != nil:
			return nil, fmt.Errorf("cfnworld: resource %s (%s): conditions are not evaluated", id, r.Type)
		}
		byType[r.Type] = append(byType[r.Type], id)
	}
	if len(byType["AWS::EC2::VPC"]) == 0 {
		return nil, fmt.Errorf("cfnworld: the template has no AWS::EC2::VPC")
	}
	for _, typ := range order {
		ids := byType[typ]
		sort.Strings(ids)
		for _, id := range ids {
			if err := b.create(id, b.res[id]); err != nil {
				return nil, fmt.Errorf("cfnworld: resource %s (%s): %w", id, typ, err)
			}
		}
	}
	for id, t := range b.w.Tables {
		sort.Strings(t.Subnets)
		b.w.Tables[id] = t
	}
	return b.w, nil
}

func (b *builder) create(id string, r resource) (err error) {
	// vpcsim's seeding methods panic on invalid input (a subnet outside its VPC, ...).
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%v", p)
		}
	}()
	p := r.Properties
	switch r.Type {
	case "AWS::EC2::VPC":
		if err := only(p, "CidrBlock", "EnableDnsHostnames", "EnableDnsSupport", "InstanceTenancy", "Tags"); err != nil {
			return err
		}
		cidr, err := b.str(p["CidrBlock"], "CidrBlock")
		if err != nil {
			return err
		}
		tags, err := b.tags(p["Tags"])
		if err != nil {
			return err
		}
		b.phys[id] = b.w.Sim.AddVPC(cidr, tags)
		b.w.VPCs[id], b.w.VPCCIDRs[id] = b.phys[id], cidr
	case "AWS::EC2::InternetGateway":
		// Created when attached: vpcsim's gateways belong to a VPC.
	case "AWS::EC2::VPCGatewayAttachment":
		if p["VpnGatewayId"] != nil {
			return fmt.Errorf("VPN gateways are not modeled")
		}
		igw, err := b.refTo(p["InternetGatewayId"], "InternetGatewayId", "AWS::EC2::InternetGateway")
		if err != nil {
			return err
		}
		vpc, err := b.refTo(p["VpcId"], "VpcId", "AWS::EC2::VPC")
		if err != nil {
			return err
		}
		if _, dup := b.igwVPC[igw]; dup {
			return fmt.Errorf("internet gateway %s attached twice", igw)
		}
		b.igwVPC[igw] = vpc
		b.phys[igw] = b.w.Sim.AddInternetGateway(b.phys[vpc])
	case "AWS::EC2::Subnet":
		if err := only(p, "AvailabilityZone", "CidrBlock", "MapPublicIpOnLaunch", "Tags", "VpcId"); err != nil {
			return err
		}
		vpc, err := b.refTo(p["VpcId"], "VpcId", "AWS::EC2::VPC")
		if err != nil {
			return err
		}
		az, err := b.str(p["AvailabilityZone"], "AvailabilityZone")
		if err != nil {
			return err
		}
		cidr, err := b.str(p["CidrBlock"], "CidrBlock")
		if err != nil {
			return err
		}
		tags, err := b.tags(p["Tags"])
		if err != nil {
			return err
		}
		b.phys[id] = b.w.Sim.AddSubnet(b.phys[vpc], az, cidr, tags)
		b.w.Subnets[id] = Subnet{ID: b.phys[id], AZ: az, CIDR: cidr}
	case "AWS::EC2::RouteTable":
		if err := only(p, "Tags", "VpcId"); err != nil {
			return err
		}
		vpc, err := b.refTo(p["VpcId"], "VpcId", "AWS::EC2::VPC")
		if err != nil {
			return err
		}
		tags, err := b.tags(p["Tags"])
		if err != nil {
			return err
		}
		b.phys[id] = b.w.Sim.AddRouteTable(b.phys[vpc], tags)
		b.w.Tables[id] = Table{ID: b.phys[id], Tags: tags}
	case "AWS::EC2::SubnetRouteTableAssociation":
		if err := only(p, "RouteTableId", "SubnetId"); err != nil {
			return err
		}
		rtb, err := b.refTo(p["RouteTableId"], "RouteTableId", "AWS::EC2::RouteTable")
		if err != nil {
			return err
		}
		sn, err := b.refTo(p["SubnetId"], "SubnetId", "AWS::EC2::Subnet")
		if err != nil {
			return err
		}
		b.w.Sim.Associate(b.phys[rtb], b.phys[sn])
		t := b.w.Tables[rtb]
		t.Subnets = append(t.Subnets, sn)
		b.w.Tables[rtb] = t
	case "AWS::EC2::Route":
		if err := only(p, "DestinationCidrBlock", "GatewayId", "RouteTableId"); err != nil {
			return fmt.Errorf("%w (only IPv4 routes to an internet gateway are modeled)", err)
		}
		rtb, err := b.refTo(p["RouteTableId"], "RouteTableId", "AWS::EC2::RouteTable")
		if err != nil {
			return err
		}
		dest, err := b.str(p["DestinationCidrBlock"], "DestinationCidrBlock")
		if err != nil {
			return err
		}
		igw, err := b.refTo(p["GatewayId"], "GatewayId", "AWS::EC2::InternetGateway")
		if err != nil {
			return err
		}
		if b.phys[igw] == "" {
			return fmt.Errorf("internet gateway %s is not attached to a VPC", igw)
		}
		b.w.Sim.AddGatewayRoute(b.phys[rtb], dest, b.phys[igw])
	case "AWS::EC2::LaunchTemplate":
		data, _ := p["LaunchTemplateData"].(map[string]any)
		tags := map[string]string{}
		for i, s := range list(data["TagSpecifications"]) {
			spec, _ := s.(map[string]any)
			typ, err := b.str(spec["ResourceType"], fmt.Sprintf("TagSpecifications[%d].ResourceType", i))
			if err != nil {
				return err
			}
			if typ != "instance" {
				continue
			}
			t, err := b.tags(spec["Tags"])
			if err != nil {
				return err
			}
			maps.Copy(tags, t)
		}
		b.ltTags[id] = tags
		b.phys[id] = "lt-" + strings.ToLower(id)
	case "AWS::AutoScaling::AutoScalingGroup":
		return b.launch(id, p)
	}
	return nil
}

// launch starts the group's desired (else minimum) number of instances, spread over its
// subnets in order, tagged by the launch template (every override's must agree), the group's
// propagated tags and EC2.
func (b *builder) launch(id string, p map[string]any) error {
	if p["LaunchConfigurationName"] != nil || p["InstanceId"] != nil {
		return fmt.Errorf("only launch templates are modeled")
	}
	spec, _ := p["LaunchTemplate"].(map[string]any)
	var overrides []any
	if mip, ok := p["MixedInstancesPolicy"].(map[string]any); ok {
		lt, _ := mip["LaunchTemplate"].(map[string]any)
		spec, _ = lt["LaunchTemplateSpecification"].(map[string]any)
		overrides = list(lt["Overrides"])
	}
	if spec == nil {
		return fmt.Errorf("no launch template")
	}
	lt, err := b.refTo(spec["LaunchTemplateId"], "LaunchTemplateId", "AWS::EC2::LaunchTemplate")
	if err != nil {
		return err
	}
	for i, o := range overrides {
		ov, _ := o.(map[string]any)
		if s, ok := ov["LaunchTemplateSpecification"].(map[string]any); ok {
			other, err := b.refTo(s["LaunchTemplateId"], fmt.Sprintf("Overrides[%d].LaunchTemplateId", i), "AWS::EC2::LaunchTemplate")
			if err != nil {
				return err
			}
			// Any override may launch: they must tag instances alike.
			if !maps.Equal(b.ltTags[other], b.ltTags[lt]) {
				return fmt.Errorf("override %d: launch template %s tags instances %v, %s tags them %v: which one launches is not modeled",
					i, other, b.ltTags[other], lt, b.ltTags[lt])
			}
		}
	}
	var subnets []string
	for i, s := range list(p["VPCZoneIdentifier"]) {
		sn, err := b.refTo(s, fmt.Sprintf("VPCZoneIdentifier[%d]", i), "AWS::EC2::Subnet")
		if err != nil {
			return err
		}
		subnets = append(subnets, sn)
	}
	if len(subnets) == 0 {
		return fmt.Errorf("no VPCZoneIdentifier: only groups in VPC subnets are modeled")
	}
	count, err := b.size(p, "DesiredCapacity")
	if err != nil {
		return err
	}
	if count < 0 {
		if count, err = b.size(p, "MinSize"); err != nil {
			return err
		}
	}
	name := id
	if p["AutoScalingGroupName"] != nil {
		if name, err = b.str(p["AutoScalingGroupName"], "AutoScalingGroupName"); err != nil {
			return err
		}
	}
	tags := maps.Clone(b.ltTags[lt])
	for i, t := range list(p["Tags"]) {
		m, _ := t.(map[string]any)
		what := fmt.Sprintf("Tags[%d]", i)
		k, err := b.str(m["Key"], what+".Key")
		if err != nil {
			return err
		}
		v, err := b.str(m["Value"], what+".Value")
		if err != nil {
			return err
		}
		prop, err := b.str(m["PropagateAtLaunch"], what+".PropagateAtLaunch")
		if err != nil {
			return err
		}
		if prop == "true" {
			tags[k] = v
		}
	}
	tags["aws:autoscaling:groupName"] = name
	for i := range count {
		sn := subnets[i%len(subnets)]
		launched := b.o.Now().Add(-time.Hour + time.Duration(len(b.w.Instances))*time.Minute)
		inst, eni := b.w.Sim.AddInstance(vpcsim.InstanceSpec{SubnetID: b.phys[sn], Tags: tags, LaunchTime: launched})
		b.w.Instances = append(b.w.Instances, Instance{ID: inst, ENI: eni, AZ: b.w.Subnets[sn].AZ, Subnet: sn,
			Group: id, Tags: maps.Clone(tags)})
	}
	return nil
}

// size reads a group size property: -1 when absent.
func (b *builder) size(p map[string]any, key string) (int, error) {
	if p[key] == nil {
		return -1, nil
	}
	s, err := b.str(p[key], key)
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s %q is not a size", key, s)
	}
	return n, nil
}

// only fails on a property outside keys: one the world would silently get wrong.
func only(p map[string]any, keys ...string) error {
	for _, k := range slices.Sorted(maps.Keys(p)) {
		if !slices.Contains(keys, k) {
			return fmt.Errorf("property %s is not modeled", k)
		}
	}
	return nil
}

// refTo reads a {"Ref": id} to an already created resource of type typ.
func (b *builder) refTo(v any, what, typ string) (string, error) {
	m, ok := v.(map[string]any)
	id, isStr := m["Ref"].(string)
	if !ok || len(m) != 1 || !isStr {
		return "", fmt.Errorf("%s: %s is not a Ref to a %s", what, show(v), typ)
	}
	if r, ok := b.res[id]; !ok || r.Type != typ {
		return "", fmt.Errorf("%s: Ref %s is not a %s of the template", what, id, typ)
	}
	if _, made := b.phys[id]; !made && typ != "AWS::EC2::InternetGateway" {
		return "", fmt.Errorf("%s: Ref %s: not created", what, id)
	}
	return id, nil
}

// tags reads a Tags list into a map, evaluating the values.
func (b *builder) tags(v any) (map[string]string, error) {
	out := map[string]string{}
	for i, t := range list(v) {
		m, ok := t.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("Tags[%d]: %s is not a tag", i, show(t))
		}
		k, err := b.str(m["Key"], fmt.Sprintf("Tags[%d].Key", i))
		if err != nil {
			return nil, err
		}
		if out[k], err = b.str(m["Value"], fmt.Sprintf("Tags[%d].Value", i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// str evaluates v to a string (numbers and booleans as CloudFormation passes them).
func (b *builder) str(v any, what string) (string, error) {
	if v == nil {
		return "", fmt.Errorf("%s: missing", what)
	}
	x, err := b.eval(v)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	switch x := x.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("%s: %s is not a string", what, show(x))
}

// eval evaluates the intrinsic functions in v: Ref, Fn::GetAtt, Fn::Select, Fn::GetAZs and
// Fn::Join, as far as the modeled resources allow. Anything else is an error.
func (b *builder) eval(v any) (any, error) {
	switch x := v.(type) {
	case string, float64, bool:
		return x, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			var err error
			if out[i], err = b.eval(e); err != nil {
				return nil, err
			}
		}
		return out, nil
	case map[string]any:
		keys := slices.Collect(maps.Keys(x))
		if len(keys) != 1 {
			return nil, fmt.Errorf("%s: objects are not evaluated", show(x))
		}
		return b.intrinsic(keys[0], x[keys[0]])
	}
	return nil, fmt.Errorf("%s: cannot evaluate", show(v))
}

var pseudo = map[string]func(*builder) string{
	"AWS::Region":    func(b *builder) string { return b.o.Region },
	"AWS::Partition": func(*builder) string { return "aws" },
	"AWS::URLSuffix": func(*builder) string { return "amazonaws.com" },
	"AWS::AccountId": func(*builder) string { return "123456789012" }, // vpcsim's default account
}

func (b *builder) intrinsic(fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		id, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("Ref %s: not a name", show(arg))
		}
		if p, ok := pseudo[id]; ok {
			return p(b), nil
		}
		if p, ok := b.params[id]; ok {
			if p.Default == nil || strings.HasPrefix(p.Type, "AWS::") {
				return nil, fmt.Errorf("Ref %s: a parameter of type %s without a literal value", id, p.Type)
			}
			return b.eval(p.Default)
		}
		if phys, ok := b.phys[id]; ok {
			return phys, nil
		}
		if r, ok := b.res[id]; ok {
			return nil, fmt.Errorf("Ref %s: a %s is not modeled or not created yet", id, r.Type)
		}
		return nil, fmt.Errorf("Ref %s: no such resource or parameter", id)
	case "Fn::GetAtt":
		var parts []string
		switch a := arg.(type) {
		case string:
			parts = strings.SplitN(a, ".", 2)
		case []any:
			for _, p := range a {
				s, _ := p.(string)
				parts = append(parts, s)
			}
		}
		if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("Fn::GetAtt %s: want [resource, attribute]", show(arg))
		}
		id, attr := parts[0], parts[1]
		switch typ := b.res[id].Type; {
		case typ == "AWS::EC2::VPC" && attr == "CidrBlock" && b.w.VPCCIDRs[id] != "":
			return b.w.VPCCIDRs[id], nil
		case typ == "AWS::EC2::VPC" && attr == "VpcId" && b.w.VPCs[id] != "":
			return b.w.VPCs[id], nil
		case typ == "AWS::EC2::Subnet" && attr == "SubnetId" && b.w.Subnets[id].ID != "":
			return b.w.Subnets[id].ID, nil
		case typ == "AWS::EC2::Subnet" && attr == "AvailabilityZone" && b.w.Subnets[id].ID != "":
			return b.w.Subnets[id].AZ, nil
		case typ == "AWS::EC2::RouteTable" && attr == "RouteTableId" && b.w.Tables[id].ID != "":
			return b.w.Tables[id].ID, nil
		}
		return nil, fmt.Errorf("Fn::GetAtt %s.%s: not modeled", id, attr)
	case "Fn::Select":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Select %s: want [index, list]", show(arg))
		}
		i, err := b.str(a[0], "Fn::Select index")
		if err != nil {
			return nil, err
		}
		n, err := strconv.Atoi(i)
		if err != nil {
			return nil, fmt.Errorf("Fn::Select index %q: %w", i, err)
		}
		l, err := b.eval(a[1])
		if err != nil {
			return nil, err
		}
		items, ok := l.([]any)
		if !ok || n < 0 || n >= len(items) {
			return nil, fmt.Errorf("Fn::Select %d of %s: out of range", n, show(l))
		}
		return items[n], nil
	case "Fn::GetAZs":
		region, err := b.str(arg, "Fn::GetAZs region")
		if err != nil {
			return nil, err
		}
		if region != "" && region != b.o.Region {
			return nil, fmt.Errorf("Fn::GetAZs %q: only the stack's region %s is modeled", region, b.o.Region)
		}
		out := make([]any, len(b.o.AZs))
		for i, az := range b.o.AZs {
			out[i] = az
		}
		return out, nil
	case "Fn::Join":
		a, ok := arg.([]any)
		if !ok || len(a) != 2 {
			return nil, fmt.Errorf("Fn::Join %s: want [delimiter, list]", show(arg))
		}
		delim, ok := a[0].(string)
		if !ok {
			return nil, fmt.Errorf("Fn::Join delimiter %s: not a string", show(a[0]))
		}
		l, err := b.eval(a[1])
		if err != nil {
			return nil, err
		}
		items, ok := l.([]any)
		if !ok {
			return nil, fmt.Errorf("Fn::Join %s: not a list", show(l))
		}
		parts := make([]string, len(items))
		for i, it := range items {
			if parts[i], err = b.str(it, "Fn::Join item"); err != nil {
				return nil, err
			}
		}
		return strings.Join(parts, delim), nil
	}
	return nil, fmt.Errorf("intrinsic function %s is not supported", fn)
}

func list(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

func show(v any) string {
	out, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(out)
}

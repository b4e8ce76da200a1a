package cfnworld

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"
)

type obj = map[string]any
type arr = []any

func ref(id string) obj { return obj{"Ref": id} }

func az(i int) obj { return obj{"Fn::Select": arr{i, obj{"Fn::GetAZs": ""}}} }

func tags(kv ...string) arr {
	var out arr
	for i := 0; i < len(kv); i += 2 {
		out = append(out, obj{"Key": kv[i], "Value": kv[i+1]})
	}
	return out
}

// template is a small VPC as CDK writes one: two public subnets with an internet route, one
// private subnet whose table carries the cluster tag (built with Fn::Join), a launch template
// and a group of two instances over the public subnets, and an IAM role that is ignored.
func template() obj {
	return obj{
		"Parameters": obj{"Env": obj{"Type": "String", "Default": "prod"}},
		"Resources": obj{
			"Vpc":    obj{"Type": "AWS::EC2::VPC", "Properties": obj{"CidrBlock": "10.1.0.0/16", "Tags": tags("Name", "v")}},
			"Igw":    obj{"Type": "AWS::EC2::InternetGateway"},
			"Attach": obj{"Type": "AWS::EC2::VPCGatewayAttachment", "Properties": obj{"VpcId": ref("Vpc"), "InternetGatewayId": ref("Igw")}},
			"Pub1": obj{"Type": "AWS::EC2::Subnet", "Properties": obj{"VpcId": ref("Vpc"), "AvailabilityZone": az(0),
				"CidrBlock": "10.1.0.0/24", "MapPublicIpOnLaunch": true}},
			"Pub2": obj{"Type": "AWS::EC2::Subnet", "Properties": obj{"VpcId": ref("Vpc"), "AvailabilityZone": az(1),
				"CidrBlock": "10.1.1.0/24"}},
			"Prv2": obj{"Type": "AWS::EC2::Subnet", "Properties": obj{"VpcId": ref("Vpc"), "AvailabilityZone": az(1),
				"CidrBlock": "10.1.16.0/20"}},
			"PubRt": obj{"Type": "AWS::EC2::RouteTable", "Properties": obj{"VpcId": ref("Vpc"), "Tags": tags("Name", "public")}},
			"PrvRt": obj{"Type": "AWS::EC2::RouteTable", "Properties": obj{"VpcId": ref("Vpc"),
				"Tags": arr{obj{"Key": "headnat:cluster", "Value": obj{"Fn::Join": arr{"-", arr{ref("Env"), "x"}}}}}}},
			"PubAssoc1": obj{"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": obj{"RouteTableId": ref("PubRt"), "SubnetId": ref("Pub1")}},
			"PubAssoc2": obj{"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": obj{"RouteTableId": ref("PubRt"), "SubnetId": ref("Pub2")}},
			"PrvAssoc":  obj{"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": obj{"RouteTableId": ref("PrvRt"), "SubnetId": ref("Prv2")}},
			"PubRoute": obj{"Type": "AWS::EC2::Route", "Properties": obj{"RouteTableId": ref("PubRt"),
				"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": ref("Igw")}},
			"Lt": obj{"Type": "AWS::EC2::LaunchTemplate", "Properties": obj{"LaunchTemplateData": obj{
				"ImageId": ref("SsmAmi"),
				"TagSpecifications": arr{
					obj{"ResourceType": "instance", "Tags": tags("headnat:cluster", "prod-x", "Name", "nat")},
					obj{"ResourceType": "volume", "Tags": tags("volume-only", "yes")},
				}}}},
			"Group": obj{"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": obj{
				"MinSize": "1", "MaxSize": "3", "DesiredCapacity": 2,
				"LaunchTemplate":    obj{"LaunchTemplateId": ref("Lt"), "Version": obj{"Fn::GetAtt": arr{"Lt", "LatestVersionNumber"}}},
				"VPCZoneIdentifier": arr{ref("Pub1"), ref("Pub2")},
				"Tags": arr{obj{"Key": "team", "Value": "net", "PropagateAtLaunch": true},
					obj{"Key": "group-only", "Value": "1", "PropagateAtLaunch": "false"}},
			}},
			"Role": obj{"Type": "AWS::IAM::Role", "Properties": obj{"Anything": obj{"Fn::Sub": "ignored"}}},
		},
	}
}

func build(t *testing.T, tmpl obj, o Options) (*World, error) {
	t.Helper()
	b, err := json.Marshal(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	return Build(b, o)
}

// GIVEN a hand-written template WHEN built THEN the Sim holds its network with the AZs mapped
// from Fn::GetAZs, evaluated tags, associations, the internet route, and the group's instances
// tagged as the launch template and the group's propagated tags say.
func TestBuild(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	w, err := build(t, template(), Options{Region: "eu-west-1", AZs: []string{"eu-west-1x", "eu-west-1y"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if w.VPCCIDRs["Vpc"] != "10.1.0.0/16" || !strings.HasPrefix(w.VPCs["Vpc"], "vpc-") {
		t.Errorf("VPC %q %q", w.VPCs["Vpc"], w.VPCCIDRs["Vpc"])
	}
	for id, want := range map[string]string{"Pub1": "eu-west-1x", "Pub2": "eu-west-1y", "Prv2": "eu-west-1y"} {
		if got := w.Subnets[id]; got.AZ != want || !strings.HasPrefix(got.ID, "subnet-") {
			t.Errorf("subnet %s: %+v, want AZ %s", id, got, want)
		}
	}
	prv, pub := w.Tables["PrvRt"], w.Tables["PubRt"]
	if prv.Tags["headnat:cluster"] != "prod-x" || len(prv.Subnets) != 1 || prv.Subnets[0] != "Prv2" {
		t.Errorf("private table %+v: want tag headnat:cluster=prod-x and subnet Prv2", prv)
	}
	if pub.Tags["headnat:cluster"] != "" || strings.Join(pub.Subnets, ",") != "Pub1,Pub2" {
		t.Errorf("public table %+v: want no cluster tag, subnets Pub1 and Pub2", pub)
	}
	var igwRoute, prvDefault bool
	for _, r := range w.Sim.Routes(pub.ID) {
		igwRoute = igwRoute || (r.Destination == "0.0.0.0/0" && strings.HasPrefix(r.GatewayID, "igw-") && r.State == "active")
	}
	for _, r := range w.Sim.Routes(prv.ID) {
		prvDefault = prvDefault || r.Destination == "0.0.0.0/0"
	}
	if !igwRoute || prvDefault {
		t.Errorf("public routes %+v, private routes %+v: want an internet route in the public table only",
			w.Sim.Routes(pub.ID), w.Sim.Routes(prv.ID))
	}
	if len(w.Instances) != 2 {
		t.Fatalf("instances %+v: want the desired 2", w.Instances)
	}
	want := map[string]string{"headnat:cluster": "prod-x", "Name": "nat", "team": "net", "aws:autoscaling:groupName": "Group"}
	for i, in := range w.Instances {
		sn := []string{"Pub1", "Pub2"}[i]
		v, ok := w.Sim.Instance(in.ID)
		if !ok || in.Subnet != sn || v.SubnetID != w.Subnets[sn].ID || v.AZ != w.Subnets[sn].AZ || in.AZ != v.AZ || v.ENI != in.ENI {
			t.Errorf("instance %d: %+v, sim %+v: want it in %s", i, in, v, sn)
		}
		if !maps.Equal(v.Tags, want) {
			t.Errorf("instance %d tags %v, want %v", i, v.Tags, want)
		}
		if wantLaunch := now.Add(-time.Hour + time.Duration(i)*time.Minute); !v.LaunchTime.Equal(wantLaunch) {
			t.Errorf("instance %d launched %v, want %v", i, v.LaunchTime, wantLaunch)
		}
	}
}

// GIVEN a template with something the world cannot model WHEN built THEN it fails naming it.
func TestBuildRejects(t *testing.T) {
	props := func(m obj, id string) obj { return m["Resources"].(obj)[id].(obj)["Properties"].(obj) }
	for _, tc := range []struct {
		name string
		mod  func(obj)
		want string
	}{
		{"unknown intrinsic", func(m obj) { props(m, "Pub1")["CidrBlock"] = obj{"Fn::Sub": "10.1.0.0/24"} },
			"resource Pub1 (AWS::EC2::Subnet): CidrBlock: intrinsic function Fn::Sub is not supported"},
		{"unknown resource type", func(m obj) { m["Resources"].(obj)["Nat"] = obj{"Type": "AWS::EC2::NatGateway"} },
			"resource Nat: type AWS::EC2::NatGateway is not modeled"},
		{"AZ index past the list", func(m obj) { props(m, "Pub2")["AvailabilityZone"] = az(6) }, "Fn::Select 6 of"},
		{"route to a NAT gateway", func(m obj) {
			p := props(m, "PubRoute")
			delete(p, "GatewayId")
			p["NatGatewayId"] = "nat-1"
		}, "property NatGatewayId is not modeled"},
		{"Ref to nothing", func(m obj) { props(m, "PrvAssoc")["SubnetId"] = ref("Nope") }, "Ref Nope is not a AWS::EC2::Subnet of the template"},
		{"condition", func(m obj) { m["Resources"].(obj)["Prv2"].(obj)["Condition"] = "IsProd" }, "conditions are not evaluated"},
		{"unmodeled property", func(m obj) { props(m, "Prv2")["Ipv6CidrBlock"] = "2001:db8::/64" }, "property Ipv6CidrBlock is not modeled"},
		{"SSM parameter", func(m obj) {
			m["Parameters"].(obj)["Ami"] = obj{"Type": "AWS::SSM::Parameter::Value<String>", "Default": "/x"}
			props(m, "Vpc")["Tags"] = arr{obj{"Key": "ami", "Value": ref("Ami")}}
		}, "Ref Ami: a parameter of type AWS::SSM::Parameter::Value<String> without a literal value"},
		{"subnet outside the VPC", func(m obj) { props(m, "Pub1")["CidrBlock"] = "10.2.0.0/24" }, "not inside the VPC"},
		{"no VPC", func(m obj) { m["Resources"] = obj{} }, "no AWS::EC2::VPC"},
		{"overrides tag instances differently", func(m obj) {
			m["Resources"].(obj)["Lt2"] = obj{"Type": "AWS::EC2::LaunchTemplate", "Properties": obj{"LaunchTemplateData": obj{
				"TagSpecifications": arr{obj{"ResourceType": "instance", "Tags": tags("headnat:cluster", "other")}}}}}
			p := props(m, "Group")
			p["MixedInstancesPolicy"] = obj{"LaunchTemplate": obj{
				"LaunchTemplateSpecification": p["LaunchTemplate"],
				"Overrides":                   arr{obj{"InstanceType": "t4g.nano", "LaunchTemplateSpecification": obj{"LaunchTemplateId": ref("Lt2")}}},
			}}
			delete(p, "LaunchTemplate")
		}, "override 0: launch template Lt2 tags instances map[headnat:cluster:other]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := template()
			tc.mod(m)
			_, err := build(t, m, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

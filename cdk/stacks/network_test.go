package stacks

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud/iam"
	"github.com/headnat/headnat/cdk/internal/cdktest"
	"github.com/headnat/headnat/cdk/natfleet"
)

func TestMain(m *testing.M) { cdktest.Main(m) }

const cluster = "prod"

// fullProps turns every optional part on.
func fullProps() *NetworkStackProps {
	return &NetworkStackProps{Fleet: natfleet.NatFleetProps{
		Cluster:             cluster,
		AmiSSMParameter:     "/headnat/ami/arm64",
		EipPool:             true,
		TailnetLoginServer:  "https://headscale.example.com",
		AuthKeySSMParameter: "/headnat/prod/tailnet-auth-key",
	}, AlarmEmail: "ops@example.org"}
}

// minimalProps: no EIP pool, no tailnet, an AMI id.
func minimalProps() *NetworkStackProps {
	return &NetworkStackProps{Fleet: natfleet.NatFleetProps{Cluster: cluster, AmiID: "ami-0123456789abcdef0"}}
}

func synth(t *testing.T, props *NetworkStackProps) assertions.Template {
	t.Helper()
	app := awscdk.NewApp(nil)
	stack := NewNetworkStack(app, "Test", props)
	return assertions.Template_FromStack(stack, nil)
}

// GIVEN the network stack with every option WHEN synthesized THEN its security and cost
// invariants hold.
func TestNetworkStack(t *testing.T) {
	tmpl := synth(t, fullProps())

	t.Run("no NAT Gateway", func(t *testing.T) {
		cdktest.Assert(t, "NatGateway count", func() { tmpl.ResourceCountIs(jsii.String("AWS::EC2::NatGateway"), jsii.Number(0)) })
	})

	t.Run("IMDSv2 required with hop limit 1, no SSH key, encrypted gp3 root", func(t *testing.T) {
		lts := cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate")
		if len(lts) == 0 {
			t.Fatal("no launch template")
		}
		for _, lt := range lts {
			data, _ := lt.Properties["LaunchTemplateData"].(map[string]any)
			md, _ := data["MetadataOptions"].(map[string]any)
			if md["HttpTokens"] != "required" || fmt.Sprint(md["HttpPutResponseHopLimit"]) != "1" {
				t.Errorf("%s: metadata options %v: want HttpTokens required, hop limit 1", lt.ID, md)
			}
			if _, ok := data["KeyName"]; ok {
				t.Errorf("%s has an SSH key", lt.ID)
			}
			bdms := cdktest.List(data["BlockDeviceMappings"])
			if len(bdms) == 0 {
				t.Errorf("%s: no root volume mapping", lt.ID)
			}
			for _, b := range bdms {
				ebs, _ := b.(map[string]any)["Ebs"].(map[string]any)
				if ebs["Encrypted"] != true || ebs["VolumeType"] != "gp3" {
					t.Errorf("%s: volume %v: want encrypted gp3", lt.ID, ebs)
				}
			}
		}
	})

	t.Run("no ingress from anywhere but the tailnet UDP port, no SSH from outside the VPC", func(t *testing.T) {
		var rules []map[string]any
		for _, sg := range cdktest.Resources(t, tmpl, "AWS::EC2::SecurityGroup") {
			for _, r := range cdktest.List(sg.Properties["SecurityGroupIngress"]) {
				rules = append(rules, r.(map[string]any))
			}
		}
		for _, r := range cdktest.Resources(t, tmpl, "AWS::EC2::SecurityGroupIngress") {
			rules = append(rules, r.Properties)
		}
		sawTailnet := false
		for _, r := range rules {
			cidr, isString := r["CidrIp"].(string)
			if r["CidrIpv6"] != nil || r["SourcePrefixListId"] != nil {
				t.Errorf("unexpected ingress source: %v", r)
			}
			if !isString {
				// The only token source allowed is the VPC's own CIDR.
				if !strings.Contains(cdktest.JSON(r["CidrIp"]), "CidrBlock") && r["SourceSecurityGroupId"] == nil {
					t.Errorf("ingress from %s: want the VPC's CIDR", cdktest.JSON(r))
				}
				continue
			}
			tailnet := r["IpProtocol"] == "udp" && fmt.Sprint(r["FromPort"]) == fmt.Sprint(api.DefaultTailnetUDPPort) &&
				fmt.Sprint(r["ToPort"]) == fmt.Sprint(api.DefaultTailnetUDPPort)
			if cidr == "0.0.0.0/0" && tailnet {
				sawTailnet = true
				continue
			}
			t.Errorf("ingress from %s (%v): only the tailnet UDP port may be open to the internet, and nothing else but the VPC", cidr, r)
		}
		if !sawTailnet {
			t.Errorf("no ingress for the tailnet's UDP port %d", api.DefaultTailnetUDPPort)
		}
	})

	t.Run("every IAM statement is scoped by ARN or tag except the Describe calls and the metric namespace", func(t *testing.T) {
		for _, st := range statements(t, tmpl) {
			actions := strs(st["Action"])
			resources := cdktest.List(st["Resource"])
			if st["Effect"] != "Allow" || st["NotAction"] != nil || st["NotResource"] != nil {
				t.Errorf("statement %v: want plain Allow with Action and Resource", st)
			}
			anyResource := slices.ContainsFunc(resources, func(r any) bool { return r == "*" })
			describeOnly := !slices.ContainsFunc(actions, func(a string) bool { return !strings.Contains(a, ":Describe") })
			if describeOnly {
				continue
			}
			if anyResource && slices.Equal(actions, []string{"cloudwatch:PutMetricData"}) {
				if c := cdktest.JSON(st["Condition"]); c != `{"StringEquals":{"cloudwatch:namespace":"`+api.DefaultMetricNamespace+`"}}` {
					t.Errorf("PutMetricData on Resource \"*\" with condition %s: want its namespace only", c)
				}
				continue
			}
			if anyResource {
				t.Errorf("%v on Resource \"*\": only Describe calls may be unscoped", actions)
				continue
			}
			tagged := strings.Contains(cdktest.JSON(st["Condition"]), `"aws:ResourceTag/`+api.TagCluster+`":"`+cluster+`"`)
			for _, r := range resources {
				arn := cdktest.JSON(r)
				if !strings.Contains(arn, "arn:") {
					t.Errorf("%v: resource %s is not an ARN", actions, arn)
				}
				if strings.HasSuffix(strings.TrimRight(arn, `"]}`), "/*") && !tagged {
					t.Errorf("%v: wildcard resource %s without the %s tag condition", actions, arn, api.TagCluster)
				}
			}
		}
	})

	t.Run("the role allows exactly the agent's actions", func(t *testing.T) {
		want := names(iam.Actions())
		if got := granted(t, tmpl); !slices.Equal(got, want) {
			t.Errorf("granted %v\nwant (agent/cloud/iam) %v", got, want)
		}
	})

	t.Run("spot first, capacity-optimized, Graviton, CPU credits standard, capacity rebalance", func(t *testing.T) {
		asgs := cdktest.Resources(t, tmpl, "AWS::AutoScaling::AutoScalingGroup")
		if len(asgs) != DefaultMaxAZs {
			t.Fatalf("%d Auto Scaling groups, want one per AZ (%d)", len(asgs), DefaultMaxAZs)
		}
		for _, asg := range asgs {
			p := asg.Properties
			if p["CapacityRebalance"] != true {
				t.Errorf("%s: capacity rebalance off", asg.ID)
			}
			if p["MinSize"] != "1" || p["MaxSize"] != "2" || p["DesiredCapacity"] != nil {
				t.Errorf("%s: size %v..%v (desired %v), want 1..2: one instance, room for its replacement", asg.ID, p["MinSize"], p["MaxSize"], p["DesiredCapacity"])
			}
			if m := cdktest.JSON(p["InstanceMaintenancePolicy"]); m != `{"MaxHealthyPercentage":200,"MinHealthyPercentage":100}` {
				t.Errorf("%s: instance maintenance policy %s: want launch before terminate (100..200%%)", asg.ID, m)
			}
			if n := len(cdktest.List(p["VPCZoneIdentifier"])); n != 1 {
				t.Errorf("%s spans %d subnets, want its AZ's public subnet only", asg.ID, n)
			}
			mip, _ := p["MixedInstancesPolicy"].(map[string]any)
			dist, _ := mip["InstancesDistribution"].(map[string]any)
			if s, _ := dist["SpotAllocationStrategy"].(string); !strings.HasPrefix(s, "capacity-optimized") {
				t.Errorf("%s: spot allocation %q, want capacity-optimized", asg.ID, s)
			}
			if fmt.Sprint(dist["OnDemandBaseCapacity"]) != "0" || fmt.Sprint(dist["OnDemandPercentageAboveBaseCapacity"]) != "0" {
				t.Errorf("%s: on-demand %v: want spot only by default", asg.ID, dist)
			}
			lt, _ := mip["LaunchTemplate"].(map[string]any)
			overrides := cdktest.List(lt["Overrides"])
			if len(overrides) < 3 {
				t.Errorf("%s: %d instance types, want several", asg.ID, len(overrides))
			}
			for i, o := range overrides {
				it := fmt.Sprint(o.(map[string]any)["InstanceType"])
				if !strings.Contains(strings.SplitN(it, ".", 2)[0], "g") {
					t.Errorf("%s: %s is not Graviton", asg.ID, it)
				}
				if i == 0 && it != "t4g.nano" {
					t.Errorf("%s: first choice %s, want t4g.nano", asg.ID, it)
				}
			}
		}
		for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
			data := lt.Properties["LaunchTemplateData"].(map[string]any)
			if _, ok := data["InstanceMarketOptions"]; ok {
				t.Errorf("%s: market options in the launch template conflict with the mixed-instances policy", lt.ID)
			}
			if lt.ID == findID(t, tmpl, "NatFleetLaunchTemplate") {
				cs, _ := data["CreditSpecification"].(map[string]any)
				if cs["CpuCredits"] != "standard" {
					t.Errorf("%s: CPU credits %v, want standard", lt.ID, cs)
				}
			}
		}
	})

	t.Run("a deploy that changes the launch template refreshes the instances, launch first", func(t *testing.T) {
		resources := (*tmpl.ToJSON())["Resources"].(map[string]any)
		for _, asg := range cdktest.Resources(t, tmpl, "AWS::AutoScaling::AutoScalingGroup") {
			up, _ := resources[asg.ID].(map[string]any)["UpdatePolicy"].(map[string]any)
			ir, _ := up["AutoScalingInstanceRefresh"].(map[string]any)
			prefs, _ := ir["Preferences"].(map[string]any)
			if ir["Strategy"] != "Rolling" || fmt.Sprint(prefs["MinHealthyPercentage"]) != "100" || fmt.Sprint(prefs["MaxHealthyPercentage"]) != "200" {
				t.Errorf("%s: update policy %s: want a rolling instance refresh, launch before terminate", asg.ID, cdktest.JSON(up))
			}
		}
	})

	t.Run("both lifecycle hooks, declared in each group", func(t *testing.T) {
		for _, asg := range cdktest.Resources(t, tmpl, "AWS::AutoScaling::AutoScalingGroup") {
			hooks := map[string]map[string]any{}
			for _, h := range cdktest.List(asg.Properties["LifecycleHookSpecificationList"]) {
				m := h.(map[string]any)
				hooks[fmt.Sprint(m["LifecycleTransition"])] = m
			}
			for transition, result := range map[string]string{
				"autoscaling:EC2_INSTANCE_LAUNCHING":   "ABANDON",
				"autoscaling:EC2_INSTANCE_TERMINATING": "CONTINUE",
			} {
				h := hooks[transition]
				if h == nil {
					t.Errorf("%s: no %s hook", asg.ID, transition)
					continue
				}
				if h["DefaultResult"] != result || fmt.Sprint(h["HeartbeatTimeout"]) != "300" {
					t.Errorf("%s: %s hook %v: want %s after 300 s", asg.ID, transition, h, result)
				}
			}
			if len(hooks) != 2 {
				t.Errorf("%s: %d hooks, want exactly one per transition (the agent takes the only one)", asg.ID, len(hooks))
			}
			if !slices.ContainsFunc(asg.DependsOn, func(d string) bool { return strings.Contains(d, "AgentPolicy") }) {
				t.Errorf("%s does not wait for the agent's policy: %v", asg.ID, asg.DependsOn)
			}
		}
		cdktest.Assert(t, "no separate hook resources", func() {
			tmpl.ResourceCountIs(jsii.String("AWS::AutoScaling::LifecycleHook"), jsii.Number(0))
		})
	})

	t.Run("log retention set", func(t *testing.T) {
		groups := cdktest.Resources(t, tmpl, "AWS::Logs::LogGroup")
		if len(groups) == 0 {
			t.Fatal("no log group")
		}
		for _, g := range groups {
			if fmt.Sprint(g.Properties["RetentionInDays"]) != "14" {
				t.Errorf("%s: retention %v, want 14 days", g.ID, g.Properties["RetentionInDays"])
			}
		}
	})

	t.Run("private route tables tagged, without a default route", func(t *testing.T) {
		private := map[string]bool{}
		for _, rt := range cdktest.Resources(t, tmpl, "AWS::EC2::RouteTable") {
			tags := cdktest.Tags(rt.Properties["Tags"])
			isPrivate := strings.Contains(tags["Name"], "/private")
			if isPrivate != (tags[api.TagCluster] == cluster) {
				t.Errorf("%s (%s): %s tag %q", rt.ID, tags["Name"], api.TagCluster, tags[api.TagCluster])
			}
			private[rt.ID] = isPrivate
		}
		if n := len(slices.DeleteFunc(mapsKeys(private), func(k string) bool { return !private[k] })); n != DefaultMaxAZs {
			t.Errorf("%d private route tables, want %d", n, DefaultMaxAZs)
		}
		for _, r := range cdktest.Resources(t, tmpl, "AWS::EC2::Route") {
			ref, _ := r.Properties["RouteTableId"].(map[string]any)
			if private[fmt.Sprint(ref["Ref"])] {
				t.Errorf("%s: a route in private table %v: the agent owns the default route", r.ID, ref["Ref"])
			}
		}
	})

	t.Run("instances, ENIs and the pool's EIPs carry the cluster tag", func(t *testing.T) {
		for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
			data := lt.Properties["LaunchTemplateData"].(map[string]any)
			tagged := map[string]bool{}
			for _, s := range cdktest.List(data["TagSpecifications"]) {
				m := s.(map[string]any)
				tagged[fmt.Sprint(m["ResourceType"])] = cdktest.Tags(m["Tags"])[api.TagCluster] == cluster
			}
			if !tagged["instance"] || !tagged["network-interface"] {
				t.Errorf("%s: tag specifications %v: want the instance and its ENI tagged", lt.ID, tagged)
			}
		}
		eips := cdktest.Resources(t, tmpl, "AWS::EC2::EIP")
		if want := DefaultMaxAZs + 1; len(eips) != want {
			t.Errorf("%d pool EIPs, want instances + 1 = %d", len(eips), want)
		}
		for _, e := range eips {
			if cdktest.Tags(e.Properties["Tags"])[api.TagCluster] != cluster {
				t.Errorf("%s: not tagged with the cluster", e.ID)
			}
		}
	})

	t.Run("S3 gateway endpoint", func(t *testing.T) {
		eps := cdktest.Resources(t, tmpl, "AWS::EC2::VPCEndpoint")
		if len(eps) != 1 || eps[0].Properties["VpcEndpointType"] != "Gateway" || !strings.Contains(cdktest.JSON(eps[0].Properties["ServiceName"]), ".s3") {
			t.Errorf("endpoints %s: want one S3 gateway endpoint", cdktest.JSON(eps))
		}
	})

	t.Run("alarms on the agent's metrics, to the email topic", func(t *testing.T) {
		alarms := map[string]map[string]any{}
		for _, a := range cdktest.Resources(t, tmpl, "AWS::CloudWatch::Alarm") {
			alarms[fmt.Sprint(a.Properties["MetricName"])] = a.Properties
		}
		topic := findResource(t, tmpl, "AWS::SNS::Topic")
		for name, want := range map[string]struct{ stat, missing string }{
			api.MetricUnservedRouteTables: {"Maximum", "breaching"},
			api.MetricFailovers:           {"Sum", "notBreaching"},
		} {
			a := alarms[name]
			if a == nil {
				t.Errorf("no alarm on %s", name)
				continue
			}
			dims := cdktest.JSON(a["Dimensions"])
			if a["Namespace"] != api.DefaultMetricNamespace || a["Statistic"] != want.stat || a["TreatMissingData"] != want.missing ||
				fmt.Sprint(a["Period"]) != fmt.Sprint(api.MetricPeriodSeconds) || fmt.Sprint(a["Threshold"]) != "1" ||
				!strings.Contains(dims, `"Name":"`+api.MetricDimensionCluster+`"`) || !strings.Contains(dims, `"Value":"`+cluster+`"`) {
				t.Errorf("alarm on %s: %s", name, cdktest.JSON(a))
			}
			if !strings.Contains(cdktest.JSON(a["AlarmActions"]), topic) {
				t.Errorf("alarm on %s: actions %s, want the topic %s", name, cdktest.JSON(a["AlarmActions"]), topic)
			}
		}
		cdktest.Assert(t, "email subscription", func() {
			tmpl.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{"Protocol": "email", "Endpoint": "ops@example.org"})
		})
		for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
			if ud := cdktest.JSON(lt.Properties["LaunchTemplateData"].(map[string]any)["UserData"]); !strings.Contains(ud, "namespace: \\\"headnat\\\"") {
				t.Errorf("%s: user data %s: want cloudwatch.namespace for the agent", lt.ID, ud)
			}
		}
	})

	t.Run("user data carries no secret", func(t *testing.T) {
		for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
			ud := cdktest.JSON(lt.Properties["LaunchTemplateData"].(map[string]any)["UserData"])
			if !strings.Contains(ud, "auth_key_ssm_parameter") || strings.Contains(ud, "auth_key_file") || strings.Contains(ud, "tskey") {
				t.Errorf("%s: user data %s: want the SSM parameter's name only", lt.ID, ud)
			}
		}
	})
}

// GIVEN the stack without EIP pool or tailnet WHEN synthesized THEN the role lacks their
// actions and no EIP is created.
func TestNetworkStackMinimal(t *testing.T) {
	tmpl := synth(t, minimalProps())
	want := names(iam.For(iam.FeatureCloudWatch))
	if got := granted(t, tmpl); !slices.Equal(got, want) {
		t.Errorf("granted %v\nwant %v", got, want)
	}
	cdktest.Assert(t, "no EIP", func() { tmpl.ResourceCountIs(jsii.String("AWS::EC2::EIP"), jsii.Number(0)) })
	cdktest.Assert(t, "the AMI id", func() {
		tmpl.HasResourceProperties(jsii.String("AWS::EC2::LaunchTemplate"), map[string]any{
			"LaunchTemplateData": assertions.Match_ObjectLike(&map[string]any{"ImageId": "ami-0123456789abcdef0"}),
		})
	})
}

// GIVEN bad props WHEN validated or used THEN one clear error names the property.
func TestNetworkStackPropsValidation(t *testing.T) {
	for name, tc := range map[string]struct {
		edit func(*NetworkStackProps)
		want string
	}{
		"bad cluster name": {func(p *NetworkStackProps) { p.Fleet.Cluster = "Prod_1" }, `Cluster "Prod_1"`},
		"empty cluster":    {func(p *NetworkStackProps) { p.Fleet.Cluster = "" }, `Cluster ""`},
		"zero instances":   {func(p *NetworkStackProps) { p.Fleet.InstancesPerAZ = new(int) }, "InstancesPerAZ 0"},
		"no AMI":           {func(p *NetworkStackProps) { p.Fleet.AmiSSMParameter = "" }, "exactly one of AmiID and AmiSSMParameter"},
		"x86 type":         {func(p *NetworkStackProps) { p.Fleet.InstanceTypes = []string{"t3.nano"} }, `"t3.nano" is not a Graviton`},
		"one AZ":           {func(p *NetworkStackProps) { p.MaxAZs = 1 }, "MaxAZs 1"},
		"key without URL":  {func(p *NetworkStackProps) { p.Fleet.TailnetLoginServer = "" }, "AuthKeySSMParameter needs TailnetLoginServer"},
		"URL without key":  {func(p *NetworkStackProps) { p.Fleet.AuthKeySSMParameter = "" }, "TailnetLoginServer needs AuthKeySSMParameter"},
		"small EIP pool":   {func(p *NetworkStackProps) { p.Fleet.EipPoolSize = 1 }, "EipPoolSize 1 is smaller than the fleet (2 AZs x 1 instances = 2)"},
		"pool size alone":  {func(p *NetworkStackProps) { p.Fleet.EipPool = false; p.Fleet.EipPoolSize = 3 }, "EipPoolSize 3: want a positive size, with EipPool"},
		"3 AZs, agnostic":  {func(p *NetworkStackProps) { p.MaxAZs = 3 }, "environment-agnostic stack spans 2 AZs"},
		"VPC /19":          {func(p *NetworkStackProps) { p.VpcCIDR = "10.0.0.0/19" }, "want a /18 or larger"},
		"VPC in tailnet":   {func(p *NetworkStackProps) { p.VpcCIDR = "100.64.0.0/16" }, "overlaps the tailnet's 100.64.0.0/10"},
		"VPC not IPv4":     {func(p *NetworkStackProps) { p.VpcCIDR = "fd00::/56" }, `VpcCIDR "fd00::/56"`},
		"email, no alarms": {func(p *NetworkStackProps) { p.Fleet.NoAlarms = true }, "AlarmEmail is set but Fleet.NoAlarms"},
	} {
		t.Run(name, func(t *testing.T) {
			p := fullProps()
			tc.edit(p)
			err := p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "\n") > 0 {
				t.Fatalf("Validate: %v, want one line with %q", err, tc.want)
			}
			r := cdktest.Panics(func() { NewNetworkStack(awscdk.NewApp(nil), "Bad", p) })
			if e, ok := r.(error); !ok || e.Error() != err.Error() {
				t.Errorf("NewNetworkStack panicked with %v, want the Validate error %v", r, err)
			}
		})
	}
	if err := fullProps().Validate(); err != nil {
		t.Errorf("valid props: %v", err)
	}
}

// GIVEN NoAlarms WHEN synthesized THEN no alarm, no topic, no metric in the agent's config.
func TestNetworkStackNoAlarms(t *testing.T) {
	p := minimalProps()
	p.Fleet.NoAlarms = true
	tmpl := synth(t, p)
	cdktest.Assert(t, "no alarm", func() { tmpl.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(0)) })
	cdktest.Assert(t, "no topic", func() { tmpl.ResourceCountIs(jsii.String("AWS::SNS::Topic"), jsii.Number(0)) })
	if got, want := granted(t, tmpl), names(iam.For()); !slices.Equal(got, want) {
		t.Errorf("granted %v\nwant %v (no PutMetricData)", got, want)
	}
	for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
		if ud := cdktest.JSON(lt.Properties["LaunchTemplateData"].(map[string]any)["UserData"]); strings.Contains(ud, "cloudwatch") {
			t.Errorf("%s: user data %s turns metrics on", lt.ID, ud)
		}
	}
}

// GIVEN an EIP pool size WHEN synthesized THEN exactly that many addresses.
func TestNetworkStackEipPoolSize(t *testing.T) {
	p := minimalProps()
	p.Fleet.EipPool, p.Fleet.EipPoolSize = true, 5
	tmpl := synth(t, p)
	cdktest.Assert(t, "5 EIPs", func() { tmpl.ResourceCountIs(jsii.String("AWS::EC2::EIP"), jsii.Number(5)) })
}

// findResource is the logical id of the template's only resource of a type.
func findResource(t *testing.T, tmpl assertions.Template, typ string) string {
	t.Helper()
	rs := cdktest.Resources(t, tmpl, typ)
	if len(rs) != 1 {
		t.Fatalf("%d %s, want 1", len(rs), typ)
	}
	return rs[0].ID
}

// statements returns the Statement list of every IAM policy in the template.
func statements(t *testing.T, tmpl assertions.Template) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"} {
		for _, p := range cdktest.Resources(t, tmpl, typ) {
			doc, _ := p.Properties["PolicyDocument"].(map[string]any)
			for _, s := range cdktest.List(doc["Statement"]) {
				out = append(out, s.(map[string]any))
			}
		}
	}
	for _, r := range cdktest.Resources(t, tmpl, "AWS::IAM::Role") {
		if r.Properties["Policies"] != nil || r.Properties["ManagedPolicyArns"] != nil {
			t.Errorf("role %s has inline or managed policies besides the agent's", r.ID)
		}
	}
	if len(out) == 0 {
		t.Fatal("no IAM statement")
	}
	return out
}

// granted is every action the template's policies allow, sorted.
func granted(t *testing.T, tmpl assertions.Template) []string {
	var got []string
	for _, st := range statements(t, tmpl) {
		got = append(got, strs(st["Action"])...)
	}
	slices.Sort(got)
	return got
}

func names(as []iam.Action) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	slices.Sort(out)
	return out
}

func strs(v any) []string {
	var out []string
	for _, x := range cdktest.List(v) {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func mapsKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// findID returns the logical id that starts with prefix and has only the hash after it.
func findID(t *testing.T, tmpl assertions.Template, prefix string) string {
	t.Helper()
	for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
		if strings.HasPrefix(lt.ID, prefix) && len(lt.ID) == len(prefix)+8 {
			return lt.ID
		}
	}
	t.Fatalf("no launch template %s*", prefix)
	return ""
}

// GIVEN no account or region in the props WHEN the stack is built THEN it is
// environment-agnostic (synth looks nothing up) and the AMI comes from a deploy-time parameter.
func TestNetworkStackEnvironmentAgnostic(t *testing.T) {
	stack := NewNetworkStack(awscdk.NewApp(nil), "Agnostic", fullProps())
	if !*awscdk.Token_IsUnresolved(stack.Region()) || !*awscdk.Token_IsUnresolved(stack.Account()) {
		t.Errorf("region %s, account %s: want unresolved", *stack.Region(), *stack.Account())
	}
	tmpl := assertions.Template_FromStack(stack, nil)
	cdktest.Assert(t, "AMI parameter", func() {
		tmpl.HasParameter(jsii.String("*"), map[string]any{
			"Type":    "AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
			"Default": "/headnat/ami/arm64",
		})
	})
}

// GIVEN the smallest VPC Validate accepts for 2 AZs WHEN synthesized THEN CDK fits the
// subnets in it (Validate's arithmetic matches CDK's allocation).
func TestNetworkStackSmallestVpc(t *testing.T) {
	p := minimalProps()
	p.VpcCIDR = "10.20.0.0/18"
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if r := cdktest.Panics(func() { synth(t, p) }); r != nil {
		t.Fatalf("synth of a %s VPC: %v", p.VpcCIDR, r)
	}
}

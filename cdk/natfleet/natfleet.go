package natfleet

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsautoscaling"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/cloud/iam"
	"github.com/headnat/headnat/agent/config"
)

// NatFleet is a headnat NAT fleet: one Auto Scaling group per AZ and what they share.
type NatFleet interface {
	constructs.Construct
	// AutoScalingGroups in the order of the VPC's public subnets (one per AZ).
	AutoScalingGroups() []awsautoscaling.AutoScalingGroup
	SecurityGroup() awsec2.SecurityGroup
	Role() awsiam.Role
	// LaunchTemplates: the burstable (T4g, CPU credits standard) types' and, when InstanceTypes
	// has others, theirs (a credit specification is for burstable types only).
	LaunchTemplates() []awsec2.LaunchTemplate
	// Eips is the Elastic IP pool (nil without EipPool).
	Eips() []awsec2.CfnEIP
	// LogGroup is nil with NoLogGroup.
	LogGroup() awslogs.LogGroup
	// NoHealthyNatAlarm and FailoverAlarm are nil with NoAlarms.
	NoHealthyNatAlarm() awscloudwatch.Alarm
	FailoverAlarm() awscloudwatch.Alarm
	Cluster() string
}

type natFleet struct {
	constructs.Construct
	asgs    []awsautoscaling.AutoScalingGroup
	sg      awsec2.SecurityGroup
	role    awsiam.Role
	lts     []awsec2.LaunchTemplate
	eips    []awsec2.CfnEIP
	logs    awslogs.LogGroup
	alarms  [2]awscloudwatch.Alarm
	cluster string
}

func (f *natFleet) AutoScalingGroups() []awsautoscaling.AutoScalingGroup { return f.asgs }
func (f *natFleet) SecurityGroup() awsec2.SecurityGroup                  { return f.sg }
func (f *natFleet) Role() awsiam.Role                                    { return f.role }
func (f *natFleet) LaunchTemplates() []awsec2.LaunchTemplate             { return f.lts }
func (f *natFleet) Eips() []awsec2.CfnEIP                                { return f.eips }
func (f *natFleet) LogGroup() awslogs.LogGroup                           { return f.logs }
func (f *natFleet) NoHealthyNatAlarm() awscloudwatch.Alarm               { return f.alarms[0] }
func (f *natFleet) FailoverAlarm() awscloudwatch.Alarm                   { return f.alarms[1] }
func (f *natFleet) Cluster() string                                      { return f.cluster }

// refreshWarmupSeconds: the launch hook already holds an instance until it is a working NAT.
const refreshWarmupSeconds = 10

// GroupName is the name of the fleet's Auto Scaling group for the i-th AZ (0-based). Names
// are fixed so that the role can name its groups by ARN before they exist.
func GroupName(cluster string, i int) string {
	return fmt.Sprintf("headnat-%s-az%d", cluster, i+1)
}

// NewNatFleet creates the fleet. Invalid props panic with the error of Validate, as CDK
// constructs throw; call props.Validate first for an error value.
func NewNatFleet(scope constructs.Construct, id string, props *NatFleetProps) NatFleet {
	if err := props.Validate(); err != nil {
		panic(err)
	}
	p := props.withDefaults()
	f := &natFleet{cluster: p.Cluster}
	constructs.NewConstruct_Override(f, scope, &id) // f is the construct itself

	public := p.Vpc.SelectSubnets(&awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PUBLIC}).Subnets
	if public == nil || len(*public) == 0 {
		panic(fmt.Errorf("natfleet: the VPC has no public subnets to put the NAT instances in"))
	}

	if err := p.ValidateFleetSize(len(*public)); err != nil {
		panic(err)
	}
	f.sg = newSecurityGroup(f, p)
	f.role = awsiam.NewRole(f, jsii.String("Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("ec2.amazonaws.com"), nil),
		Description: jsii.String("headnat agent on the NAT instances of cluster " + p.Cluster),
	})
	policy := awsiam.NewPolicy(f, jsii.String("AgentPolicy"), &awsiam.PolicyProps{
		Roles:      &[]awsiam.IRole{f.role},
		Statements: statements(awscdk.Stack_Of(f), p, len(*public)),
	})
	var overrides []*awsautoscaling.LaunchTemplateOverrides
	var burstable, other awsec2.LaunchTemplate
	for _, t := range p.InstanceTypes {
		o := &awsautoscaling.LaunchTemplateOverrides{InstanceType: awsec2.NewInstanceType(jsii.String(t))}
		switch {
		case IsBurstable(t):
			if burstable == nil {
				burstable = newLaunchTemplate(f, "LaunchTemplate", p, f.sg, f.role, true)
			}
			o.LaunchTemplate = burstable
		default:
			if other == nil {
				other = newLaunchTemplate(f, "LaunchTemplateNonBurstable", p, f.sg, f.role, false)
			}
			o.LaunchTemplate = other
		}
		overrides = append(overrides, o)
	}
	for _, lt := range []awsec2.LaunchTemplate{burstable, other} {
		if lt != nil {
			f.lts = append(f.lts, lt)
		}
	}

	for i, subnet := range *public {
		asg := newGroup(f, p, f.lts[0], overrides, subnet, i)
		// The first instance must find its permissions and hooks in place.
		asg.Node().AddDependency(policy)
		f.asgs = append(f.asgs, asg)
	}

	tagRouteTables(f, p)

	if p.EipPool {
		for i := range p.eipPoolSize(len(*public)) {
			eip := awsec2.NewCfnEIP(f, jsii.String(fmt.Sprintf("Eip%d", i+1)), &awsec2.CfnEIPProps{
				Domain: jsii.String("vpc"),
				Tags: &[]*awscdk.CfnTag{
					{Key: jsii.String(api.TagCluster), Value: jsii.String(p.Cluster)},
					{Key: jsii.String("Name"), Value: jsii.String(fmt.Sprintf("headnat-%s-pool-%d", p.Cluster, i+1))},
				},
			})
			f.eips = append(f.eips, eip)
		}
	}

	if !p.NoAlarms {
		f.alarms[0], f.alarms[1] = newAlarms(f, p)
	}
	if !p.NoLogGroup {
		f.logs = awslogs.NewLogGroup(f, jsii.String("Logs"), &awslogs.LogGroupProps{
			LogGroupName:  jsii.String("/headnat/" + p.Cluster),
			Retention:     p.LogRetention,
			RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
		})
	}
	return f
}

func newSecurityGroup(scope constructs.Construct, p NatFleetProps) awsec2.SecurityGroup {
	sg := awsec2.NewSecurityGroup(scope, jsii.String("SecurityGroup"), &awsec2.SecurityGroupProps{
		Vpc:              p.Vpc,
		Description:      jsii.String("headnat NAT instances of cluster " + p.Cluster),
		AllowAllOutbound: jsii.Bool(true),
	})
	sg.AddIngressRule(awsec2.Peer_Ipv4(p.Vpc.VpcCidrBlock()), awsec2.Port_AllTraffic(),
		jsii.String(fmt.Sprintf("the VPC: traffic to forward, peers probing the agent (TCP %d)", api.DefaultAgentPort)), nil)
	sg.AddIngressRule(awsec2.Peer_AnyIpv4(), awsec2.Port_Udp(jsii.Number(api.DefaultTailnetUDPPort)),
		jsii.String("tailscaled (WireGuard)"), nil)
	return sg
}

// statements turns the agent's action table into IAM statements, one per scope.
func statements(stack awscdk.Stack, p NatFleetProps, groups int) *[]awsiam.PolicyStatement {
	features := []string{}
	if p.EipPool {
		features = append(features, iam.FeatureEIPPool)
	}
	if p.AuthKeySSMParameter != "" {
		features = append(features, iam.FeatureAuthKey)
	}
	if !p.NoAlarms {
		features = append(features, iam.FeatureCloudWatch)
	}
	byScope := map[iam.Scope][]*string{}
	var order []iam.Scope
	for _, a := range iam.For(features...) {
		if _, seen := byScope[a.Scope]; !seen {
			order = append(order, a.Scope)
		}
		byScope[a.Scope] = append(byScope[a.Scope], jsii.String(a.Name))
	}
	arn := func(service, resource string) *string {
		return awscdk.Fn_Join(jsii.String(""), &[]*string{
			jsii.String("arn:"), stack.Partition(), jsii.String(":" + service + ":"), stack.Region(),
			jsii.String(":"), stack.Account(), jsii.String(":" + resource),
		})
	}
	tagged := &map[string]any{"StringEquals": map[string]any{"aws:ResourceTag/" + api.TagCluster: p.Cluster}}

	var out []awsiam.PolicyStatement
	for _, scope := range order {
		actions := byScope[scope]
		st := &awsiam.PolicyStatementProps{Sid: jsii.String(sid(scope)), Actions: &actions}
		switch scope {
		case iam.ScopeAny:
			st.Resources = jsii.Strings("*")
		case iam.ScopeRouteTables:
			st.Resources = &[]*string{arn("ec2", "route-table/*")}
			st.Conditions = tagged
		case iam.ScopeOwnENIs:
			st.Resources = &[]*string{arn("ec2", "network-interface/*"), arn("ec2", "instance/*")}
			st.Conditions = tagged
		case iam.ScopePoolEIPs:
			// AssociateAddress also authorizes the ENI, which the launch template tags too.
			st.Resources = &[]*string{arn("ec2", "elastic-ip/*"), arn("ec2", "network-interface/*")}
			st.Conditions = tagged
		case iam.ScopeOwnGroups:
			var rs []*string
			for i := range groups {
				rs = append(rs, arn("autoscaling", "autoScalingGroup:*:autoScalingGroupName/"+GroupName(p.Cluster, i)))
			}
			st.Resources = &rs
		case iam.ScopeAuthKey:
			st.Resources = &[]*string{arn("ssm", "parameter/"+strings.TrimPrefix(p.AuthKeySSMParameter, "/"))}
		case iam.ScopeMetricNamespace:
			// Metrics have no ARN: the namespace condition is the scope.
			st.Resources = jsii.Strings("*")
			st.Conditions = &map[string]any{"StringEquals": map[string]any{"cloudwatch:namespace": api.DefaultMetricNamespace}}
		default:
			panic(fmt.Errorf("natfleet: agent/cloud/iam scope %q has no IAM translation", scope))
		}
		out = append(out, awsiam.NewPolicyStatement(st))
	}
	return &out
}

// sid is a statement id from a scope ("route-tables" -> "RouteTables").
func sid(s iam.Scope) string {
	var b strings.Builder
	for _, w := range strings.Split(string(s), "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

// amiImage is one AMI id in every region: the same id everywhere, for a region-agnostic stack
// deployed to the AMI's region (CDK's GenericLinuxImage wants a region map).
type amiImage struct{ id string }

func (a *amiImage) GetImage(constructs.Construct) *awsec2.MachineImageConfig {
	return &awsec2.MachineImageConfig{
		ImageId:  jsii.String(a.id),
		OsType:   awsec2.OperatingSystemType_LINUX,
		UserData: awsec2.UserData_ForLinux(nil),
	}
}

// MachineImage is the headnat AMI: read from the SSM parameter at deploy time when one is
// named, else the AMI id (never looked up at synth).
func MachineImage(amiID, ssmParameter string) awsec2.IMachineImage {
	if ssmParameter != "" {
		return awsec2.MachineImage_FromSsmParameter(jsii.String(ssmParameter),
			&awsec2.SsmParameterImageOptions{Os: awsec2.OperatingSystemType_LINUX})
	}
	return &amiImage{id: amiID}
}

// RootVolume is an instance's root volume: encrypted gp3, deleted with the instance.
func RootVolume(device string, gib int) *[]*awsec2.BlockDevice {
	return &[]*awsec2.BlockDevice{{
		DeviceName: jsii.String(device),
		Volume: awsec2.BlockDeviceVolume_Ebs(jsii.Number(gib), &awsec2.EbsDeviceOptions{
			Encrypted:           jsii.Bool(true),
			VolumeType:          awsec2.EbsDeviceVolumeType_GP3,
			DeleteOnTermination: jsii.Bool(true),
		}),
	}}
}

// IsBurstable: a T-family type ("t4g.nano"), which takes a CPU credit specification.
func IsBurstable(instanceType string) bool { return strings.HasPrefix(instanceType, "t") }

func newLaunchTemplate(scope constructs.Construct, id string, p NatFleetProps, sg awsec2.SecurityGroup, role awsiam.Role, burstable bool) awsec2.LaunchTemplate {
	ud := awsec2.UserData_ForLinux(nil)
	ud.AddCommands(UserDataCommands(p)...)
	props := &awsec2.LaunchTemplateProps{
		RequireImdsv2:            jsii.Bool(true),
		HttpTokens:               awsec2.LaunchTemplateHttpTokens_REQUIRED,
		HttpPutResponseHopLimit:  jsii.Number(1),
		HttpEndpoint:             jsii.Bool(true),
		SecurityGroup:            sg,
		Role:                     role,
		UserData:                 ud,
		AssociatePublicIpAddress: jsii.Bool(true),
		BlockDevices:             RootVolume(p.RootDevice, p.RootVolumeGiB),
	}
	if burstable {
		props.CpuCredits = awsec2.CpuCredits_STANDARD // no surplus credits, no surprise charges
	}
	props.MachineImage = MachineImage(p.AmiID, p.AmiSSMParameter)
	lt := awsec2.NewLaunchTemplate(scope, jsii.String(id), props)
	cfn := lt.Node().DefaultChild().(awsec2.CfnLaunchTemplate)
	// The instance, its root volume and its ENI carry the cluster tag: the agent finds its
	// peers by it, and the role's ENI and EIP permissions are conditioned on it.
	var specs []map[string]any
	for _, rt := range []string{"instance", "volume", "network-interface"} {
		specs = append(specs, map[string]any{
			"ResourceType": rt,
			"Tags": []map[string]string{
				{"Key": api.TagCluster, "Value": p.Cluster},
				{"Key": "Name", "Value": "headnat-" + p.Cluster},
			},
		})
	}
	cfn.AddPropertyOverride(jsii.String("LaunchTemplateData.TagSpecifications"), specs)
	return lt
}

func newGroup(scope constructs.Construct, p NatFleetProps, lt awsec2.LaunchTemplate, overrides []*awsautoscaling.LaunchTemplateOverrides, subnet awsec2.ISubnet, i int) awsautoscaling.AutoScalingGroup {
	n := jsii.Number(*p.InstancesPerAZ)
	asg := awsautoscaling.NewAutoScalingGroup(scope, jsii.String(fmt.Sprintf("Group%d", i+1)), &awsautoscaling.AutoScalingGroupProps{
		AutoScalingGroupName: jsii.String(GroupName(p.Cluster, i)),
		Vpc:                  p.Vpc,
		VpcSubnets:           &awsec2.SubnetSelection{Subnets: &[]awsec2.ISubnet{subnet}},
		MinCapacity:          n,
		MaxCapacity:          jsii.Number(*p.InstancesPerAZ + 1),
		CapacityRebalance:    jsii.Bool(true),
		// Replacements (unhealthy, rebalance, refresh) launch before the old instance goes,
		// so the AZ keeps its own NAT while the terminate hook hands the tables over.
		MinHealthyPercentage: jsii.Number(100),
		MaxHealthyPercentage: jsii.Number(200),
		// A deploy that changes the launch template (a new AMI, new user data) refreshes the
		// instances one at a time, through the same hooks.
		UpdatePolicy: awsautoscaling.UpdatePolicy_InstanceRefresh(&awsautoscaling.InstanceRefreshOptions{
			Strategy:             awsautoscaling.InstanceRefreshStrategy_ROLLING,
			MinHealthyPercentage: jsii.Number(100),
			MaxHealthyPercentage: jsii.Number(200),
			InstanceWarmup:       awscdk.Duration_Seconds(jsii.Number(refreshWarmupSeconds)),
		}),
		MixedInstancesPolicy: &awsautoscaling.MixedInstancesPolicy{
			LaunchTemplate:          lt,
			LaunchTemplateOverrides: &overrides,
			InstancesDistribution: &awsautoscaling.InstancesDistribution{
				OnDemandBaseCapacity:                jsii.Number(p.OnDemandBase),
				OnDemandPercentageAboveBaseCapacity: jsii.Number(0),
				SpotAllocationStrategy:              awsautoscaling.SpotAllocationStrategy_CAPACITY_OPTIMIZED_PRIORITIZED,
				OnDemandAllocationStrategy:          awsautoscaling.OnDemandAllocationStrategy_PRIORITIZED,
			},
		},
	})
	// The hooks are part of the group, so the very first instances wait for them.
	cfn := asg.Node().DefaultChild().(awsautoscaling.CfnAutoScalingGroup)
	cfn.SetLifecycleHookSpecificationList([]any{
		&awsautoscaling.CfnAutoScalingGroup_LifecycleHookSpecificationProperty{
			LifecycleHookName:   jsii.String(LaunchHookName),
			LifecycleTransition: jsii.String("autoscaling:EC2_INSTANCE_LAUNCHING"),
			DefaultResult:       jsii.String("ABANDON"),
			HeartbeatTimeout:    jsii.Number(HookHeartbeatSeconds),
		},
		&awsautoscaling.CfnAutoScalingGroup_LifecycleHookSpecificationProperty{
			LifecycleHookName:   jsii.String(TerminateHookName),
			LifecycleTransition: jsii.String("autoscaling:EC2_INSTANCE_TERMINATING"),
			DefaultResult:       jsii.String("CONTINUE"),
			HeartbeatTimeout:    jsii.Number(HookHeartbeatSeconds),
		},
	})
	awscdk.Tags_Of(asg).Add(jsii.String(api.TagCluster), jsii.String(p.Cluster), &awscdk.TagProps{ApplyToLaunchedInstances: jsii.Bool(true)})
	return asg
}

// tagRouteTables tags the route tables of the private subnets with the cluster. Route tables
// of an imported VPC are not constructs here: tag them yourself (a warning says so).
func tagRouteTables(scope constructs.Construct, p NatFleetProps) {
	private := p.Vpc.SelectSubnets(&awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED}).Subnets
	if private == nil || len(*private) == 0 {
		private = p.Vpc.SelectSubnets(&awsec2.SubnetSelection{SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS}).Subnets
	}
	tagged := 0
	if private != nil {
		for _, s := range *private {
			rt := s.Node().TryFindChild(jsii.String("RouteTable"))
			if rt == nil {
				continue
			}
			awscdk.Tags_Of(rt).Add(jsii.String(api.TagCluster), jsii.String(p.Cluster), nil)
			tagged++
		}
	}
	if tagged == 0 {
		awscdk.Annotations_Of(scope).AddWarningV2(jsii.String("headnat:untagged-route-tables"),
			jsii.String("no private route table of the VPC could be tagged "+api.TagCluster+"="+p.Cluster+": tag the tables the NAT fleet serves yourself"), nil)
	}
}

// AgentConfig is the agent's YAML configuration the user data writes: only what differs
// from the AMI's defaults, and never a secret (the auth key stays in SSM).
func AgentConfig(p NatFleetProps) string {
	var b strings.Builder
	b.WriteString("# Written by the headnat CDK construct at launch.\n")
	fmt.Fprintf(&b, "cluster: %s\n", strconv.Quote(p.Cluster))
	if p.TailnetLoginServer != "" {
		b.WriteString("tailnet:\n")
		fmt.Fprintf(&b, "  login_server: %s\n", strconv.Quote(p.TailnetLoginServer))
		if p.AuthKeySSMParameter != "" {
			fmt.Fprintf(&b, "  auth_key_ssm_parameter: %s\n", strconv.Quote(p.AuthKeySSMParameter))
		}
	}
	if p.EipPool {
		b.WriteString("eip:\n  pool: true\n")
	}
	if !p.NoAlarms {
		fmt.Fprintf(&b, "cloudwatch:\n  namespace: %s\n", strconv.Quote(api.DefaultMetricNamespace))
	}
	return b.String()
}

// UserDataCommands write AgentConfig and restart the agent so that it reads it: the commands
// of config.UserDataCommands, which test/ami runs in a booted image of the AMI.
func UserDataCommands(p NatFleetProps) []*string {
	cmds, err := config.UserDataCommands(AgentConfig(p))
	if err != nil {
		panic(err) // AgentConfig quotes every value
	}
	return *jsii.Strings(cmds...)
}

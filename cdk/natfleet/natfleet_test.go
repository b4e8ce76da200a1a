package natfleet

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/cdk/internal/cdktest"
)

func TestMain(m *testing.M) { cdktest.Main(m) }

// GIVEN a fleet with a tailnet and a pool WHEN its agent configuration is rendered THEN the
// agent's own strict parser accepts it with the same values, and it names no secret.
func TestAgentConfigParsesStrictly(t *testing.T) {
	p := NatFleetProps{Cluster: "prod", TailnetLoginServer: "https://hs.example.com:8443",
		AuthKeySSMParameter: "/headnat/prod/key", EipPool: true}
	cfg := config.Default()
	if err := config.Parse(strings.NewReader(AgentConfig(p)), &cfg); err != nil {
		t.Fatalf("the agent refuses the CDK's configuration: %v\n%s", err, AgentConfig(p))
	}
	if cfg.Cluster != "prod" || cfg.Tailnet.LoginServer != p.TailnetLoginServer ||
		cfg.Tailnet.AuthKeySSMParameter != p.AuthKeySSMParameter || !cfg.EIP.Pool || cfg.Tailnet.AuthKeyFile != "" {
		t.Errorf("parsed %+v from\n%s", cfg, AgentConfig(p))
	}

	bare := config.Default()
	if err := config.Parse(strings.NewReader(AgentConfig(NatFleetProps{Cluster: "x"})), &bare); err != nil {
		t.Fatal(err)
	}
	if bare.Tailnet.LoginServer != "" || bare.EIP.Pool {
		t.Errorf("without a tailnet or pool: %+v", bare)
	}
}

func testStack(t *testing.T, edit func(*NatFleetProps)) (awscdk.Stack, NatFleet) {
	t.Helper()
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Test"), nil)
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2), // an environment-agnostic stack sees 2 AZs
		NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC},
			{Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		},
	})
	p := &NatFleetProps{Vpc: vpc, Cluster: "c1", AmiSSMParameter: "/ami"}
	if edit != nil {
		edit(p)
	}
	return stack, NewNatFleet(stack, "Fleet", p)
}

// GIVEN 2 AZs and 2 instances per AZ with a pool WHEN synthesized THEN 2 groups of 2 and a
// pool of 5 addresses.
func TestSizing(t *testing.T) {
	stack, fleet := testStack(t, func(p *NatFleetProps) { n := 2; p.InstancesPerAZ = &n; p.EipPool = true })
	tmpl := assertions.Template_FromStack(stack, nil)
	if len(fleet.AutoScalingGroups()) != 2 {
		t.Errorf("%d groups, want 2", len(fleet.AutoScalingGroups()))
	}
	for _, asg := range cdktest.Resources(t, tmpl, "AWS::AutoScaling::AutoScalingGroup") {
		if asg.Properties["MinSize"] != "2" || asg.Properties["MaxSize"] != "3" {
			t.Errorf("%s: %v..%v, want 2..3", asg.ID, asg.Properties["MinSize"], asg.Properties["MaxSize"])
		}
	}
	cdktest.Assert(t, "pool of 5", func() { tmpl.ResourceCountIs(jsii.String("AWS::EC2::EIP"), jsii.Number(5)) })
	if len(fleet.Eips()) != 5 || fleet.Role() == nil || fleet.SecurityGroup() == nil || fleet.LogGroup() == nil {
		t.Errorf("getters: %d EIPs, role %v, security group %v, log group %v", len(fleet.Eips()), fleet.Role(), fleet.SecurityGroup(), fleet.LogGroup())
	}
}

// GIVEN burstable and other types WHEN synthesized THEN only the burstable types' launch
// template has a CPU credit specification, and each override names its template.
func TestCreditsOnlyForBurstable(t *testing.T) {
	stack, fleet := testStack(t, nil)
	tmpl := assertions.Template_FromStack(stack, nil)
	if n := len(fleet.LaunchTemplates()); n != 2 {
		t.Fatalf("%d launch templates, want 2", n)
	}
	for _, lt := range cdktest.Resources(t, tmpl, "AWS::EC2::LaunchTemplate") {
		data := lt.Properties["LaunchTemplateData"].(map[string]any)
		_, credits := data["CreditSpecification"]
		if credits == strings.Contains(lt.ID, "NonBurstable") {
			t.Errorf("%s: credit specification %v", lt.ID, data["CreditSpecification"])
		}
	}
	for _, asg := range cdktest.Resources(t, tmpl, "AWS::AutoScaling::AutoScalingGroup") {
		mip := asg.Properties["MixedInstancesPolicy"].(map[string]any)
		for _, o := range cdktest.List(mip["LaunchTemplate"].(map[string]any)["Overrides"]) {
			m := o.(map[string]any)
			spec := cdktest.JSON(m["LaunchTemplateSpecification"])
			burstable := strings.HasPrefix(fmt.Sprint(m["InstanceType"]), "t")
			if burstable == strings.Contains(spec, "NonBurstable") || spec == "null" {
				t.Errorf("%s: %v uses %s", asg.ID, m["InstanceType"], spec)
			}
		}
	}

	stack, fleet = testStack(t, func(p *NatFleetProps) { p.InstanceTypes = []string{"t4g.nano", "t4g.micro"} })
	if n := len(fleet.LaunchTemplates()); n != 1 {
		t.Errorf("T4g only: %d launch templates, want 1", n)
	}
	_ = stack
}

// GIVEN an imported VPC WHEN the fleet is created THEN a warning says to tag the route tables.
func TestImportedVpcWarns(t *testing.T) {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Test"), nil)
	vpc := awsec2.Vpc_FromVpcAttributes(stack, jsii.String("Vpc"), &awsec2.VpcAttributes{
		VpcId:                       jsii.String("vpc-0123456789abcdef0"),
		VpcCidrBlock:                jsii.String("10.0.0.0/16"),
		AvailabilityZones:           jsii.Strings("eu-west-1a", "eu-west-1b"),
		PublicSubnetIds:             jsii.Strings("subnet-a", "subnet-b"),
		IsolatedSubnetIds:           jsii.Strings("subnet-c", "subnet-d"),
		IsolatedSubnetRouteTableIds: jsii.Strings("rtb-c", "rtb-d"),
	})
	NewNatFleet(stack, "Fleet", &NatFleetProps{Vpc: vpc, Cluster: "c1", AmiID: "ami-0123456789abcdef0"})
	ann := assertions.Annotations_FromStack(stack)
	cdktest.Assert(t, "warning", func() {
		ann.HasWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("tag the tables the NAT fleet serves yourself")))
	})
}

// GIVEN a user's own 3-AZ VPC in a stack with an environment WHEN the fleet is added THEN one
// group per AZ, each private table tagged, and a pool of instances + 1 addresses.
func TestThreeAZVpc(t *testing.T) {
	app := awscdk.NewApp(nil)
	stack := awscdk.NewStack(app, jsii.String("Mine"), &awscdk.StackProps{
		Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")},
	})
	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		AvailabilityZones: jsii.Strings("eu-west-1a", "eu-west-1b", "eu-west-1c"),
		NatGateways:       jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("ingress"), SubnetType: awsec2.SubnetType_PUBLIC},
			{Name: jsii.String("app"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
			{Name: jsii.String("db"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED},
		},
	})
	fleet := NewNatFleet(stack, "Fleet", &NatFleetProps{Vpc: vpc, Cluster: "c3", AmiID: "ami-0123456789abcdef0", EipPool: true})
	tmpl := assertions.Template_FromStack(stack, nil)
	if n := len(fleet.AutoScalingGroups()); n != 3 {
		t.Errorf("%d groups, want 3", n)
	}
	tagged := 0
	for _, rt := range cdktest.Resources(t, tmpl, "AWS::EC2::RouteTable") {
		if cdktest.Tags(rt.Properties["Tags"])[api.TagCluster] == "c3" {
			tagged++
		}
	}
	if tagged != 6 {
		t.Errorf("%d tables tagged, want the 6 private ones (app and db in 3 AZs)", tagged)
	}
	cdktest.Assert(t, "pool of 4", func() { tmpl.ResourceCountIs(jsii.String("AWS::EC2::EIP"), jsii.Number(4)) })
}

// Package stacks holds headnat's CloudFormation stacks.
package stacks

import (
	"fmt"
	"net/netip"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/cdk/natfleet"
)

// Defaults of NetworkStackProps.
const (
	DefaultVpcCIDR = "10.0.0.0/16"
	DefaultMaxAZs  = 2
)

// NetworkStackProps configure NewNetworkStack.
type NetworkStackProps struct {
	awscdk.StackProps // leave Env empty for an environment-agnostic stack
	VpcCIDR           string
	MaxAZs            int
	// Fleet configures the NAT fleet; its Vpc is set by the stack.
	Fleet natfleet.NatFleetProps
	// AlarmEmail, if set, gets the fleet's alarms through a new SNS topic (confirm the
	// subscription from the first email).
	AlarmEmail string
}

// Subnet sizes: a /24 public subnet (the NAT instances) and a /20 private one per AZ.
const (
	publicSubnetBits  = 24
	privateSubnetBits = 20
)

// Validate returns the first problem with the props.
func (p *NetworkStackProps) Validate() error {
	if p == nil {
		return fmt.Errorf("network stack: no props")
	}
	azs := p.MaxAZs
	if azs == 0 {
		azs = DefaultMaxAZs
	}
	switch {
	case p.MaxAZs < 0 || p.MaxAZs == 1:
		return fmt.Errorf("network stack: MaxAZs %d: want at least 2 (a NAT fails over to another AZ)", p.MaxAZs)
	case azs > 2 && !hasEnv(p.StackProps):
		return fmt.Errorf("network stack: MaxAZs %d: an environment-agnostic stack spans 2 AZs; set account and region for more", azs)
	}
	if err := checkVpcCIDR(p.VpcCIDR, azs, p.Fleet.TailnetLoginServer != ""); err != nil {
		return err
	}
	if p.AlarmEmail != "" && p.Fleet.NoAlarms {
		return fmt.Errorf("network stack: AlarmEmail is set but Fleet.NoAlarms leaves the alarms out")
	}
	if err := p.Fleet.ValidateSettings(); err != nil {
		return err
	}
	return p.Fleet.ValidateFleetSize(azs)
}

func hasEnv(sp awscdk.StackProps) bool {
	return sp.Env != nil && sp.Env.Account != nil && sp.Env.Region != nil
}

// checkVpcCIDR: a valid IPv4 block AWS accepts (/16 to /28), big enough for the subnets,
// not overlapping the tailnet's range when there is a tailnet.
func checkVpcCIDR(cidr string, azs int, tailnet bool) error {
	if cidr == "" {
		cidr = DefaultVpcCIDR
	}
	pfx, err := netip.ParsePrefix(cidr)
	if err != nil || !pfx.Addr().Is4() || pfx.Masked() != pfx {
		return fmt.Errorf("network stack: VpcCIDR %q: want an IPv4 network like %s", cidr, DefaultVpcCIDR)
	}
	if pfx.Bits() < 16 || pfx.Bits() > 28 {
		return fmt.Errorf("network stack: VpcCIDR %s: AWS wants a /16 to /28", cidr)
	}
	// CDK allocates the public subnets first, then the private ones on their own boundary.
	pub, priv := uint64(1)<<(32-publicSubnetBits), uint64(1)<<(32-privateSubnetBits)
	need := (uint64(azs)*pub+priv-1)/priv*priv + uint64(azs)*priv
	if have := uint64(1) << (32 - pfx.Bits()); have < need {
		bits := 32
		for uint64(1)<<(32-bits) < need {
			bits--
		}
		return fmt.Errorf("network stack: VpcCIDR %s is too small for %d AZs (a /%d public and a /%d private subnet each): want a /%d or larger", cidr, azs, publicSubnetBits, privateSubnetBits, bits)
	}
	if t := netip.MustParsePrefix(api.DefaultTailnetCIDR); tailnet && pfx.Overlaps(t) {
		return fmt.Errorf("network stack: VpcCIDR %s overlaps the tailnet's %s: admins could not route to the VPC", cidr, t)
	}
	return nil
}

// NetworkStack is a VPC whose private subnets reach the internet through a headnat fleet.
type NetworkStack interface {
	awscdk.Stack
	Vpc() awsec2.Vpc
	Fleet() natfleet.NatFleet
}

type networkStack struct {
	awscdk.Stack
	vpc   awsec2.Vpc
	fleet natfleet.NatFleet
}

func (s *networkStack) Vpc() awsec2.Vpc          { return s.vpc }
func (s *networkStack) Fleet() natfleet.NatFleet { return s.fleet }

// NewNetworkStack creates the VPC (public and private subnets in each AZ, no NAT Gateway, an
// S3 gateway endpoint) and the NAT fleet. The private subnets are "isolated" in CDK's terms:
// CDK gives them no default route, the headnat agent creates and moves it.
func NewNetworkStack(scope constructs.Construct, id string, props *NetworkStackProps) NetworkStack {
	if err := props.Validate(); err != nil {
		panic(err)
	}
	p := *props
	if p.VpcCIDR == "" {
		p.VpcCIDR = DefaultVpcCIDR
	}
	if p.MaxAZs == 0 {
		p.MaxAZs = DefaultMaxAZs
	}
	s := &networkStack{}
	awscdk.NewStack_Override(s, scope, &id, &p.StackProps) // s is the stack itself
	stack := s

	vpc := awsec2.NewVpc(stack, jsii.String("Vpc"), &awsec2.VpcProps{
		IpAddresses: awsec2.IpAddresses_Cidr(jsii.String(p.VpcCIDR)),
		MaxAzs:      jsii.Number(p.MaxAZs),
		NatGateways: jsii.Number(0),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("private"), SubnetType: awsec2.SubnetType_PRIVATE_ISOLATED, CidrMask: jsii.Number(20)},
		},
		GatewayEndpoints: &map[string]*awsec2.GatewayVpcEndpointOptions{
			"S3": {Service: awsec2.GatewayVpcEndpointAwsService_S3()},
		},
	})

	fp := p.Fleet
	fp.Vpc = vpc
	if p.AlarmEmail != "" {
		topic := awssns.NewTopic(stack, jsii.String("AlarmTopic"), &awssns.TopicProps{
			DisplayName: jsii.String("headnat " + fp.Cluster + " alarms"),
			EnforceSSL:  jsii.Bool(true),
		})
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(p.AlarmEmail), nil))
		fp.AlarmTopic = topic
	}
	fleet := natfleet.NewNatFleet(stack, "NatFleet", &fp)
	s.vpc, s.fleet = vpc, fleet
	return s
}

// Package stacks holds headnat's CloudFormation stacks.
package stacks

import (
	"fmt"
	"net/netip"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

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
}

// Validate returns the first problem with the props.
func (p *NetworkStackProps) Validate() error {
	if p == nil {
		return fmt.Errorf("network stack: no props")
	}
	if _, err := netip.ParsePrefix(p.VpcCIDR); p.VpcCIDR != "" && err != nil {
		return fmt.Errorf("network stack: VpcCIDR: %w", err)
	}
	if p.MaxAZs < 0 || p.MaxAZs == 1 {
		return fmt.Errorf("network stack: MaxAZs %d: want at least 2 (a NAT fails over to another AZ)", p.MaxAZs)
	}
	return p.Fleet.ValidateSettings()
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
	fleet := natfleet.NewNatFleet(stack, "NatFleet", &fp)
	s.vpc, s.fleet = vpc, fleet
	return s
}

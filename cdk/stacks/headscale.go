package stacks

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/headscale"
)

// HeadscaleStackProps configure NewHeadscaleStack.
type HeadscaleStackProps struct {
	awscdk.StackProps // leave Env empty for an environment-agnostic stack
	// Vpc is the network stack's VPC (a cross-stack reference is fine).
	Vpc awsec2.IVpc
	// Server configures the headscale server; its Vpc is set by the stack. Its VpcCIDRs are
	// required when Vpc comes from another stack (its CIDR is a token there): pass the
	// network stack's VpcCIDR.
	Server headscale.HeadscaleServerProps
}

// Validate returns the first problem with the props.
func (p *HeadscaleStackProps) Validate() error {
	if p == nil {
		return fmt.Errorf("headscale stack: no props")
	}
	if p.Vpc == nil {
		return fmt.Errorf("headscale stack: Vpc is required")
	}
	sp := p.Server
	sp.Vpc = p.Vpc
	return sp.Validate()
}

// HeadscaleStack holds the optional headscale server.
type HeadscaleStack interface {
	awscdk.Stack
	Server() headscale.HeadscaleServer
}

type headscaleStack struct {
	awscdk.Stack
	server headscale.HeadscaleServer
}

func (s *headscaleStack) Server() headscale.HeadscaleServer { return s.server }

// Output names of NewHeadscaleStack.
const (
	OutputHeadscaleURL = "HeadscaleUrl"
	OutputHeadscaleIP  = "HeadscalePublicIp"
)

// NewHeadscaleStack creates the headscale server in Vpc, and outputs its URL and Elastic IP
// (for the DNS A record). Invalid props panic with the error of Validate.
func NewHeadscaleStack(scope constructs.Construct, id string, props *HeadscaleStackProps) HeadscaleStack {
	if err := props.Validate(); err != nil {
		panic(err)
	}
	p := *props
	s := &headscaleStack{}
	awscdk.NewStack_Override(s, scope, &id, &p.StackProps) // s is the stack itself

	sp := p.Server
	sp.Vpc = p.Vpc
	s.server = headscale.NewHeadscaleServer(s, "Headscale", &sp)
	awscdk.NewCfnOutput(s, jsii.String(OutputHeadscaleURL), &awscdk.CfnOutputProps{
		Value:       jsii.String(s.server.URL()),
		Description: jsii.String("headscale's URL: the NAT fleet's tailnet login server"),
	})
	awscdk.NewCfnOutput(s, jsii.String(OutputHeadscaleIP), &awscdk.CfnOutputProps{
		Value:       s.server.PublicIP(),
		Description: jsii.String("headscale's Elastic IP: point the domain's A record at it"),
	})
	return s
}

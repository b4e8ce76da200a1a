// The headnat CDK app: `cdk synth` / `cdk deploy` run it (see cdk.json).
//
// Context keys (-c key=value): cluster (default "headnat"), ami-ssm-parameter or ami-id (one
// of them is required), tailnet-login-server and auth-key-ssm-parameter (optional), eip-pool
// ("true" for an Elastic IP pool), instances-per-az (default 1).
package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/natfleet"
	"github.com/headnat/headnat/cdk/stacks"
)

// Context keys the app reads.
const (
	CtxCluster      = "cluster"
	CtxAmiSSM       = "ami-ssm-parameter"
	CtxAmiID        = "ami-id"
	CtxLoginServer  = "tailnet-login-server"
	CtxAuthKeySSM   = "auth-key-ssm-parameter"
	CtxEipPool      = "eip-pool"
	CtxInstancesPer = "instances-per-az"
)

func main() {
	app := awscdk.NewApp(nil)
	err := run(app)
	if err == nil {
		app.Synth(nil)
	}
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "headnat cdk:", err)
		os.Exit(1)
	}
}

func run(app awscdk.App) error {
	ctx := func(key string) string {
		v := app.Node().TryGetContext(jsii.String(key))
		if v == nil {
			return ""
		}
		return fmt.Sprint(v)
	}
	fleet := natfleet.NatFleetProps{
		Cluster:             ctx(CtxCluster),
		AmiID:               ctx(CtxAmiID),
		AmiSSMParameter:     ctx(CtxAmiSSM),
		TailnetLoginServer:  ctx(CtxLoginServer),
		AuthKeySSMParameter: ctx(CtxAuthKeySSM),
	}
	if fleet.Cluster == "" {
		fleet.Cluster = "headnat"
	}
	if v := ctx(CtxEipPool); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("context %s=%q: %w", CtxEipPool, v, err)
		}
		fleet.EipPool = b
	}
	if v := ctx(CtxInstancesPer); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("context %s=%q: %w", CtxInstancesPer, v, err)
		}
		fleet.InstancesPerAZ = &n
	}
	props := &stacks.NetworkStackProps{
		StackProps: awscdk.StackProps{
			Description: jsii.String("headnat: a VPC whose private subnets reach the internet through NAT instances"),
		},
		Fleet: fleet,
	}
	if err := props.Validate(); err != nil {
		return err
	}
	stacks.NewNetworkStack(app, "HeadnatNetwork-"+fleet.Cluster, props)
	return nil
}

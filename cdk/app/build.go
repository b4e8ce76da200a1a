package app

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"

	"github.com/headnat/headnat/cdk/stacks"
)

// Build validates cfg and adds its stacks to the app; on an error it adds nothing.
func Build(a awscdk.App, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	network := stacks.NewNetworkStack(a, NetworkStackName(cfg.Cluster), cfg.NetworkProps())
	if hp := cfg.HeadscaleProps(); hp != nil {
		hp.Vpc = network.Vpc()
		stacks.NewHeadscaleStack(a, HeadscaleStackName(cfg.Cluster), hp)
	}
	if pp := cfg.PlatformProps(); pp != nil {
		pp.Vpc = network.Vpc()
		stacks.NewPlatformStack(a, PlatformStackName(cfg.Cluster), pp)
	}
	return nil
}

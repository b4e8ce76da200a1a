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
	stacks.NewNetworkStack(a, NetworkStackName(cfg.Cluster), cfg.NetworkProps())
	return nil
}

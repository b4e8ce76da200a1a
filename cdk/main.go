// The headnat CDK app: `cdk synth`, `cdk diff` and `cdk deploy` run it (see cdk.json and the
// Makefile's synth, diff and deploy targets). Its context keys are in package app and the
// README. Bad context is one error on stderr, before any stack exists: no template is written.
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/app"
)

// SettingsEnv names the settings file (make synth|diff|deploy set it to deploy.json).
const SettingsEnv = "HEADNAT_DEPLOY_SETTINGS"

func main() {
	err := run()
	jsii.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, "headnat cdk:", err)
		os.Exit(1)
	}
}

func run() error {
	a := awscdk.NewApp(nil)
	get := func(key string) any { return a.Node().TryGetContext(jsii.String(key)) }
	if path := os.Getenv(SettingsEnv); path != "" {
		var err error
		if get, err = app.WithFile(get, path); err != nil {
			return err
		}
	}
	cfg, err := app.FromContext(get)
	if err != nil {
		return err
	}
	if err := app.Build(a, cfg); err != nil {
		return err
	}
	a.Synth(nil)
	return nil
}

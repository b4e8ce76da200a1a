package main

import (
	"context"
	"flag"
	"os"
	"time"

	"github.com/headnat/headnat/agent"
	"github.com/headnat/headnat/agent/config"
)

func init() {
	commands["agent"] = command{"run the agent (NAT data plane, health checks, route failover)", agentMain}
	commands["status"] = command{"print the cluster view from the local agent", statusMain}
}

// agentFlags are the agent's own flags; every configuration key is a flag too (see config).
type agentFlags struct {
	configPath string
	once       bool
	dryRun     bool
	refresh    time.Duration
}

func agentMain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("headnat agent", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var f agentFlags
	fs.StringVar(&f.configPath, "config", "", "YAML configuration file (default: none; IMDS and tags supply the rest)")
	fs.BoolVar(&f.once, "once", false, "run one tick and exit")
	fs.BoolVar(&f.dryRun, "dry-run", false, "log route writes instead of doing them; change nothing on the host")
	fs.DurationVar(&f.refresh, "refresh", 2*time.Second, "how often to re-read the cluster from EC2")
	applyFlags := config.Flags(fs)
	if err := fs.Parse(args); err != nil {
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	cfg := config.Default()
	if f.configPath != "" {
		if err := config.LoadFile(f.configPath, &cfg); err != nil {
			return err
		}
	}
	if err := config.ApplyEnv(&cfg, os.Environ()); err != nil {
		return err
	}
	if err := applyFlags(&cfg); err != nil {
		return usagef("%v", err)
	}
	if f.dryRun {
		cfg.DryRun = true
	}
	return agent.Run(ctx, agent.Options{Config: cfg, Version: version, Logger: e.log, Once: f.once, RefreshEvery: f.refresh})
}

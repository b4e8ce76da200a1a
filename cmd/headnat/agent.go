package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/headnat/headnat/agent"
	"github.com/headnat/headnat/agent/cloud"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/server"
	"github.com/headnat/headnat/agent/tailnet"
)

func init() {
	commands["agent"] = command{"run the agent (NAT data plane, health checks, route failover)", agentMain}
	commands["status"] = command{"print the cluster view from the local agent", statusMain}
}

// agentFlags are the agent's own flags; every configuration key is a flag too (see config).
type agentFlags struct {
	configPath string
	once       bool
}

func agentMain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("headnat agent", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var f agentFlags
	fs.StringVar(&f.configPath, "config", "", "YAML configuration file (default: none; IMDS and tags supply the rest)")
	fs.BoolVar(&f.once, "once", false, "run one tick and exit")
	applyFlags := config.Flags(fs)
	fs.Usage = func() { agentUsage(fs.Output(), fs) }
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
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
	return runAgent(ctx, cfg, e.log, agent.Options{Version: version, Once: f.once})
}

// runAgent builds the agent's real dependencies (the AWS clients, this host's data plane) and
// runs it until ctx ends.
func runAgent(ctx context.Context, cfg config.Config, log *slog.Logger, o agent.Options) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	metrics := server.NewMetrics(server.MetricsOptions{Build: server.BuildInfo{Version: o.Version}})
	cl, err := cloud.New(ctx, cloud.Options{
		Region:       cfg.AWS.Region,
		EC2Endpoint:  cfg.AWS.EC2Endpoint,
		ASGEndpoint:  cfg.AWS.AutoScalingEndpoint,
		SSMEndpoint:  cfg.AWS.SSMEndpoint,
		IMDSEndpoint: cfg.AWS.IMDSEndpoint,
		Logger:       log,
		Observer:     cloud.ObserverFunc(metrics.APIError),

		CloudWatchEndpoint: cfg.AWS.CloudWatchEndpoint,
	})
	if err != nil {
		return fmt.Errorf("aws client: %w", err)
	}
	dp, err := newHostDataplane(log)
	if err != nil {
		return err
	}
	deps := agent.Deps{Cloud: cl, Dataplane: dp, Metrics: metrics, Log: log, Lifecycle: cl, EIPPool: cl, CloudWatch: cl}
	if cfg.Tailnet.Enabled() {
		deps.Tailnet = tailnet.New(tailnet.NewLocalClient(cfg.Tailnet.Socket), log)
		deps.TailnetAuthKey = authKeySource(cfg.Tailnet, cl)
	}
	a, err := agent.New(ctx, cfg, deps, o)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}

// agentUsage lists every flag as --name TYPE with its default; each setting is also a YAML
// key and a HEADNAT_* variable.
func agentUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: headnat agent [--config FILE] [--once] [--SETTING VALUE ...]")
	fmt.Fprintln(w, "\nRuns the agent. Settings come from the YAML file, then HEADNAT_* environment variables,")
	fmt.Fprintln(w, "then flags, each overriding the one before; unknown ones are an error.")
	fmt.Fprintln(w, "\nflags:")
	fmt.Fprintln(w, "  --config FILE\n        YAML configuration file (default: none; IMDS and tags supply the rest)")
	fmt.Fprintln(w, "  --once\n        run one tick and exit")
	def := config.Default()
	fmt.Fprintln(w, "\nsettings (flag, then YAML key and environment variable):")
	for _, k := range config.Keys() {
		arg := " " + k.Type
		if k.Type == "bool" {
			arg = ""
		}
		fmt.Fprintf(w, "  --%s%s\n        %s", k.Flag(), arg, k.Help)
		if v := k.Value(def); v != "" && v != "0" && v != "false" && v != "0s" {
			fmt.Fprintf(w, " (default %s)", v)
		}
		fmt.Fprintf(w, "\n        key %s, env %s\n", k.Name, k.Env())
	}
}

// authKeySource reads the tailnet's pre-auth key from SSM or from a file, each time tailscaled
// needs a login (a rotated key is picked up). The key is never logged.
func authKeySource(t config.Tailnet, cl *cloud.Client) func(context.Context) (string, error) {
	if t.AuthKeySSMParameter != "" {
		return func(ctx context.Context) (string, error) {
			return cl.SecureParameter(ctx, t.AuthKeySSMParameter, "tailnet login")
		}
	}
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(t.AuthKeyFile)
		if err != nil {
			return "", fmt.Errorf("read the tailnet auth key file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
}

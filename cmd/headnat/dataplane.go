package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/headnat/headnat/agent/dataplane"
)

const dataplaneUsage = `usage: headnat dataplane apply|verify|remove [flags]

  apply   make this host a NAT router for the VPC CIDRs (idempotent)
  verify  list every deviation from the spec; exit 1 when there is one
  remove  undo apply: headnat's chains and jumps, and the sysctls it recorded in
          --state-path (the other flags are accepted and ignored)

flags:
`

// defaultAgentPort is the agent's default listen port: a bare `dataplane apply` or `verify`
// on an agent host expects what the agent applies with its defaults.
const defaultAgentPort = 7070

// dataplaneCmd is `headnat dataplane`, parsed.
type dataplaneCmd struct {
	action string
	spec   dataplane.Spec
	dryRun bool

	stdout io.Writer
	log    *slog.Logger
}

// prefixList is a repeatable flag of CIDRs, each value a comma-separated list.
type prefixList struct{ p *[]netip.Prefix }

func (l prefixList) String() string {
	if l.p == nil {
		return ""
	}
	var s []string
	for _, p := range *l.p {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

func (l prefixList) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return errors.New("empty CIDR")
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			msg := err.Error()
			if _, after, ok := strings.Cut(msg, "): "); ok {
				msg = after
			}
			return fmt.Errorf("not a CIDR: %s", msg)
		}
		*l.p = append(*l.p, p)
	}
	return nil
}

func parseDataplane(args []string, stdout io.Writer) (*dataplaneCmd, error) {
	c := &dataplaneCmd{}
	fs := flag.NewFlagSet("headnat dataplane", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.spec.EgressInterface, "egress-interface", "", "interface NATed traffic leaves by (default: the default route's)")
	fs.Var(prefixList{&c.spec.VPCCIDRs}, "vpc-cidr", "VPC CIDR, repeatable or comma-separated (required)")
	fs.Var(prefixList{&c.spec.ExtraSourceCIDRs}, "extra-source-cidr", "further source CIDR allowed out and masqueraded, e.g. the tailnet's; repeatable or comma-separated")
	fs.IntVar(&c.spec.AgentPort, "agent-port", defaultAgentPort, "the agent's TCP port: open only to loopback, the VPC and the allowed sources (0: no INPUT rules, and headnat's removed)")
	fs.Var(prefixList{&c.spec.AgentSourceCIDRs}, "agent-source-cidr", "further source allowed to the agent port only, e.g. the tailnet's; repeatable or comma-separated")
	fs.BoolVar(&c.spec.KeepJumpPosition, "keep-jump-position", false, "leave headnat's filter jumps below foreign rules that accept traffic (reported as notes) instead of moving them back to the top")
	fs.IntVar(&c.spec.ConntrackMax, "conntrack-max", 0, "net.netfilter.nf_conntrack_max (0: sized to memory)")
	fs.DurationVar(&c.spec.TCPEstablishedTimeout, "tcp-established-timeout", dataplane.DefaultTCPEstablishedTimeout, "conntrack idle timeout of established TCP flows")
	fs.DurationVar(&c.spec.UDPTimeout, "udp-timeout", dataplane.DefaultUDPTimeout, "conntrack idle timeout of one-way UDP flows")
	fs.DurationVar(&c.spec.UDPStreamTimeout, "udp-stream-timeout", dataplane.DefaultUDPStreamTimeout, "conntrack idle timeout of two-way UDP flows")
	fs.StringVar(&c.spec.StatePath, "state-path", dataplane.DefaultStatePath, "where apply records the sysctl values it replaced")
	fs.BoolVar(&c.dryRun, "dry-run", false, "apply: print the rules and sysctls it would write, change nothing")
	help := func() {
		fmt.Fprint(stdout, dataplaneUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
	}

	if len(args) == 0 {
		return nil, usagef("missing action: apply, verify or remove")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		help()
		return nil, flag.ErrHelp
	case "apply", "verify", "remove":
		c.action = args[0]
	default:
		return nil, usagef("unknown action %q: apply, verify or remove", args[0])
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help()
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	if c.dryRun && c.action != "apply" {
		return nil, usagef("--dry-run is only for apply")
	}
	return c, nil
}

// newHostDataplane builds the host's data plane (tests replace it).
var newHostDataplane = dataplane.New

func dataplaneMain(ctx context.Context, e *env, args []string) error {
	c, err := parseDataplane(args, e.stdout)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	c.stdout, c.log = e.stdout, e.log
	return c.run(ctx)
}

func (c *dataplaneCmd) run(ctx context.Context) error {
	// Nothing on the host is touched before the spec is known to be good.
	if c.action != "remove" {
		if err := c.spec.Validate(); err != nil {
			return fmt.Errorf("%s: %w", c.action, err)
		}
	}
	dp, err := newHostDataplane(c.log)
	if err != nil {
		return err
	}
	switch {
	case c.action == "apply" && c.dryRun:
		p, err := dp.Plan(ctx, c.spec)
		if err != nil {
			return fmt.Errorf("apply --dry-run: %w", err)
		}
		fmt.Fprint(c.stdout, "dry run: nothing is changed\n"+p.String())
		return nil
	case c.action == "apply":
		res, err := dp.Apply(ctx, c.spec)
		printResult(c.stdout, res)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		return nil
	case c.action == "verify":
		fs, err := dp.Verify(ctx, c.spec)
		if err != nil {
			return fmt.Errorf("verify: %w", err)
		}
		for _, f := range fs {
			fmt.Fprintln(c.stdout, f)
		}
		if len(fs) > 0 {
			return fmt.Errorf("verify: %d deviations from the spec", len(fs))
		}
		fmt.Fprintln(c.stdout, "ok: the data plane matches the spec")
		return nil
	default:
		res, err := dp.Remove(ctx, dataplane.RemoveOptions{StatePath: c.spec.StatePath})
		printResult(c.stdout, res)
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		return nil
	}
}

// printResult lists the changes and notes, one per line, or says there were none.
func printResult(w io.Writer, res dataplane.Result) {
	for _, ch := range res.Changes {
		fmt.Fprintln(w, ch)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if len(res.Changes) == 0 {
		fmt.Fprintln(w, "no changes")
	}
}

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	"github.com/headnat/headnat/agent/dataplane"
)

// defaultAgentPort is the agent's default listen port: a bare `dataplane apply` or `verify`
// on an agent host expects what the agent applies with its defaults.
const defaultAgentPort = 7070

// Exit codes of `headnat dataplane` besides 0, 1 (failed, or verify found deviations) and 2
// (usage).
const exitCannotInspect = 3

const dataplaneUsage = `usage: headnat dataplane apply|verify|remove [flags]

  apply   make this host a NAT router for the VPC CIDRs (idempotent)
  verify  list every deviation from the spec; change nothing
  remove  undo apply: headnat's chains and jumps, and the sysctls it recorded in
          --state-path, the only flag remove takes

`

const dataplaneExitCodes = `
exit status:
  0  done; verify: the host matches the spec
  1  apply or remove failed; verify: deviations found (listed on stdout)
  2  bad command line or spec; nothing was changed
  3  verify: the host could not be inspected
`

// dataplaneCmd is `headnat dataplane`, parsed.
type dataplaneCmd struct {
	action  string
	spec    dataplane.Spec
	tailnet dataplane.TailnetSpec // the tailnet flags; in spec once --tailnet-interface is given
	dryRun  bool

	stdout io.Writer
	log    *slog.Logger
}

// exitError is a failure with an exit code of its own (dispatch uses ExitCode).
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }
func (e exitError) ExitCode() int { return e.code }

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

// prefixValue is a flag holding one CIDR.
type prefixValue struct{ p *netip.Prefix }

func (v prefixValue) String() string {
	if v.p == nil || !v.p.IsValid() {
		return ""
	}
	return v.p.String()
}

func (v prefixValue) Set(s string) error {
	var p []netip.Prefix
	if err := (prefixList{&p}).Set(s); err != nil {
		return err
	}
	if len(p) != 1 {
		return errors.New("one CIDR expected")
	}
	*v.p = p[0]
	return nil
}

// placeholders name each flag's value in the help.
var placeholders = map[string]string{
	"egress-interface":        "NAME",
	"vpc-cidr":                "CIDR[,CIDR...]",
	"extra-source-cidr":       "CIDR[,CIDR...]",
	"agent-port":              "PORT",
	"agent-source-cidr":       "CIDR[,CIDR...]",
	"conntrack-max":           "N",
	"tcp-established-timeout": "DURATION",
	"udp-timeout":             "DURATION",
	"udp-stream-timeout":      "DURATION",
	"state-path":              "PATH",
	"tailnet-interface":       "NAME",
	"tailnet-cidr":            "CIDR",
	"tailnet-route":           "CIDR[,CIDR...]",
	"tailnet-udp-port":        "PORT",
}

// tailnetDefaultCIDR is the tailnet's range unless --tailnet-cidr says otherwise (headscale's
// default IPv4 prefix).
var tailnetDefaultCIDR = netip.MustParsePrefix("100.64.0.0/10")

// dataplaneFlags defines the flags of action on c.
func dataplaneFlags(c *dataplaneCmd, action string) *flag.FlagSet {
	fs := flag.NewFlagSet("headnat dataplane "+action, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if action != "remove" {
		fs.StringVar(&c.spec.EgressInterface, "egress-interface", "", "interface NATed traffic leaves by (default: the default route's)")
		fs.Var(prefixList{&c.spec.VPCCIDRs}, "vpc-cidr", "VPC CIDR, repeatable (required)")
		fs.Var(prefixList{&c.spec.ExtraSourceCIDRs}, "extra-source-cidr", "further source allowed out to the internet and masqueraded (not the tailnet: see --tailnet-interface); repeatable")
		fs.IntVar(&c.spec.AgentPort, "agent-port", defaultAgentPort, "the agent's TCP port: open only to loopback, the VPC and the allowed sources (0: no INPUT rules, and headnat's removed)")
		fs.Var(prefixList{&c.spec.AgentSourceCIDRs}, "agent-source-cidr", "further source allowed to the agent port only (the tailnet is with --tailnet-interface); repeatable")
		fs.BoolVar(&c.spec.KeepJumpPosition, "keep-jump-position", false, "leave headnat's filter jumps below foreign rules that accept traffic (reported as notes) instead of moving them back to the top")
		fs.IntVar(&c.spec.ConntrackMax, "conntrack-max", 0, "net.netfilter.nf_conntrack_max (0: sized to memory)")
		fs.DurationVar(&c.spec.TCPEstablishedTimeout, "tcp-established-timeout", dataplane.DefaultTCPEstablishedTimeout, "conntrack idle timeout of established TCP flows")
		fs.DurationVar(&c.spec.UDPTimeout, "udp-timeout", dataplane.DefaultUDPTimeout, "conntrack idle timeout of one-way UDP flows")
		fs.DurationVar(&c.spec.UDPStreamTimeout, "udp-stream-timeout", dataplane.DefaultUDPStreamTimeout, "conntrack idle timeout of two-way UDP flows")
		c.tailnet.CIDR = tailnetDefaultCIDR
		c.tailnet.UDPPort = dataplane.DefaultTailnetUDPPort
		fs.StringVar(&c.tailnet.Interface, "tailnet-interface", "", "tailscaled's TUN device (e.g. tailscale0): the tailnet reaches the VPC through this host (default: no tailnet rules, and headnat's removed)")
		fs.Var(prefixValue{&c.tailnet.CIDR}, "tailnet-cidr", "the tailnet's address range")
		fs.Var(prefixList{&c.tailnet.Routes}, "tailnet-route", "further destination the tailnet may reach besides the VPC (an advertised extra route); repeatable")
		fs.IntVar(&c.tailnet.UDPPort, "tailnet-udp-port", dataplane.DefaultTailnetUDPPort, "tailscaled's WireGuard port (its --port)")
		fs.BoolVar(&c.tailnet.AllowVPCDirect, "tailnet-allow-vpc-direct", false, "keep tailscaled's UDP to and from VPC addresses (by default dropped, so the tailnet path between NAT instances does not share the VPC's fate)")
	}
	fs.StringVar(&c.spec.StatePath, "state-path", dataplane.DefaultStatePath, "where apply records the sysctl values it replaced")
	if action == "apply" {
		fs.BoolVar(&c.dryRun, "dry-run", false, "print the rules and sysctls apply would write; change nothing")
	}
	return fs
}

// printFlags lists the flags as --name PLACEHOLDER, their text and default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		head := "--" + f.Name
		if p := placeholders[f.Name]; p != "" {
			head += " " + p
		}
		usage := f.Usage
		if d := f.DefValue; d != "" && d != "0" && d != "false" && d != "[]" {
			usage += " (default " + d + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", head, usage)
	})
	tw.Flush()
}

func dataplaneHelp(w io.Writer) {
	fmt.Fprint(w, dataplaneUsage)
	fmt.Fprintln(w, "flags of apply (verify takes the same, without --dry-run):")
	printFlags(w, dataplaneFlags(&dataplaneCmd{}, "apply"))
	fmt.Fprintln(w, "\nflags of remove:")
	printFlags(w, dataplaneFlags(&dataplaneCmd{}, "remove"))
	fmt.Fprint(w, dataplaneExitCodes)
}

var (
	singleDashFlag = regexp.MustCompile(`(flag|for|defined:|argument:) -([a-z])`)
	undefinedFlag  = regexp.MustCompile(`^flag provided but not defined: -+([^ ]+)$`)
)

// flagError rewords the flag package's errors: flags are written --name, and a flag of
// another action is named as such.
func flagError(action string, err error) error {
	if m := undefinedFlag.FindStringSubmatch(err.Error()); m != nil {
		if action != "apply" && dataplaneFlags(&dataplaneCmd{}, "apply").Lookup(m[1]) != nil {
			if action == "remove" {
				return usagef("--%s is not a flag of remove (remove takes only --state-path)", m[1])
			}
			return usagef("--%s is only for apply", m[1])
		}
		return usagef("unknown flag --%s", m[1])
	}
	return usagef("%s", singleDashFlag.ReplaceAllString(err.Error(), "$1 --$2"))
}

func parseDataplane(args []string, stdout io.Writer) (*dataplaneCmd, error) {
	if len(args) == 0 {
		return nil, usagef("missing action: apply, verify or remove")
	}
	c := &dataplaneCmd{}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		dataplaneHelp(stdout)
		return nil, flag.ErrHelp
	case "apply", "verify", "remove":
		c.action = args[0]
	default:
		return nil, usagef("unknown action %q: apply, verify or remove", args[0])
	}
	fs := dataplaneFlags(c, c.action)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			dataplaneHelp(stdout)
			return nil, err
		}
		return nil, flagError(c.action, err)
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	// --tailnet-interface, even empty, asks for the tailnet rules; the other tailnet flags
	// only refine them.
	var tailnetFlags []string
	withTailnet := false
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "tailnet-interface":
			withTailnet = true
		case strings.HasPrefix(f.Name, "tailnet-"):
			tailnetFlags = append(tailnetFlags, "--"+f.Name)
		}
	})
	if withTailnet {
		c.spec.Tailnet = &c.tailnet
	} else if len(tailnetFlags) > 0 {
		return nil, usagef("%s given without --tailnet-interface", strings.Join(tailnetFlags, ", "))
	}
	// Nothing on the host is touched before the spec is known to be good.
	if c.action == "remove" {
		if !filepath.IsAbs(c.spec.StatePath) {
			return nil, usagef("remove: state path %q is not absolute", c.spec.StatePath)
		}
	} else if err := c.spec.Validate(); err != nil {
		return nil, usagef("%s: %v", c.action, err)
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
	// Changes are printed on stdout; the log keeps only warnings, so nothing shows twice.
	c.stdout, c.log = e.stdout, slog.New(warnAndAbove{e.log.Handler()})
	return c.run(ctx)
}

func (c *dataplaneCmd) run(ctx context.Context) error {
	dp, err := newHostDataplane(c.log)
	if err != nil && c.action == "verify" {
		return exitError{exitCannotInspect, fmt.Errorf("verify: could not inspect the host: %w", err)}
	}
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
		printResult(c.stdout, res, err)
		if err != nil {
			return fmt.Errorf("apply: %w", err)
		}
		return nil
	case c.action == "verify":
		fs, err := dp.Verify(ctx, c.spec)
		if err != nil {
			return exitError{exitCannotInspect, fmt.Errorf("verify: could not inspect the host: %w", err)}
		}
		for _, f := range fs {
			fmt.Fprintln(c.stdout, f)
		}
		if len(fs) > 0 {
			return fmt.Errorf("verify: %s from the spec", dataplane.Deviations(len(fs)))
		}
		fmt.Fprintln(c.stdout, "ok: the data plane matches the spec")
		return nil
	default:
		res, err := dp.Remove(ctx, dataplane.RemoveOptions{StatePath: c.spec.StatePath})
		printResult(c.stdout, res, err)
		if err != nil {
			return fmt.Errorf("remove: %w", err)
		}
		return nil
	}
}

// printResult lists the changes and notes, one per line, or says there were none when
// the action succeeded.
func printResult(w io.Writer, res dataplane.Result, err error) {
	for _, ch := range res.Changes {
		fmt.Fprintln(w, ch)
	}
	for _, n := range res.Notes {
		fmt.Fprintln(w, "note:", n)
	}
	if len(res.Changes) == 0 && err == nil {
		fmt.Fprintln(w, "no changes")
	}
}

// warnAndAbove passes on only warnings and errors.
type warnAndAbove struct{ slog.Handler }

func (h warnAndAbove) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnAndAbove) WithAttrs(as []slog.Attr) slog.Handler {
	return warnAndAbove{h.Handler.WithAttrs(as)}
}

func (h warnAndAbove) WithGroup(name string) slog.Handler {
	return warnAndAbove{h.Handler.WithGroup(name)}
}

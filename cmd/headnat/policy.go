package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/policy"
)

func init() {
	commands["policy"] = command{"print the headscale ACL policy for a VPC (admins reach it, NAT routes auto-approved)", policyMain}
}

// listFlag collects a repeatable, comma-separated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

func policyMain(_ context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var vpc, extra, admins listFlag
	p := policy.Params{}
	fs.Var(&vpc, "vpc-cidr", "VPC CIDR the admins reach and the NATs advertise (repeatable; required)")
	fs.Var(&extra, "extra-route", "further route the NATs advertise (repeatable)")
	fs.Var(&admins, "admin", "headscale user in the admins group, e.g. alice@ (repeatable)")
	fs.StringVar(&p.NATTag, "nat-tag", policy.DefaultNATTag, "the NAT instances' tag")
	fs.IntVar(&p.AgentPort, "agent-port", policy.DefaultAgentPort, "the agents' port")
	fs.BoolVar(&p.NoSSH, "no-ssh", false, "no tailscale SSH for the admins to the NAT instances")
	if err := fs.Parse(args); err != nil {
		return usagef("%v (flags: --vpc-cidr CIDR --admin USER [--extra-route CIDR] [--nat-tag tag:NAME] [--agent-port N] [--no-ssh])", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	var err error
	if p.VPCCIDRs, err = parseCIDRList(vpc); err != nil {
		return usagef("--vpc-cidr: %v", err)
	}
	if p.ExtraRoutes, err = parseCIDRList(extra); err != nil {
		return usagef("--extra-route: %v", err)
	}
	p.Admins = admins
	out, err := policy.Render(p)
	if err != nil {
		return usagef("%v", err)
	}
	_, err = fmt.Fprint(e.stdout, string(out))
	return err
}

func parseCIDRList(ss []string) ([]netip.Prefix, error) {
	return config.ParseCIDRs(strings.Join(ss, ","))
}

// Package policy renders headnat's headscale ACL policy (policy v2, HuJSON): admins reach the VPC and the NAT agents' port, NAT instances reach each other's
// agent port, admins may SSH to the NAT instances as root (tailscale SSH, unless NoSSH), the
// NAT instances' routes are auto-approved, and nothing else is open.
//
// One rule per route (route -> route:agent port) is inert on the data plane: traffic inside
// the VPC never crosses the tailnet. headscale v0.29 sends a subnet router only the filter
// rules whose destinations touch its approved routes; these rules make every approved route
// appear in the NAT's packet filter even with no admins, which is how the agent (package
// agent/tailnet) tells that its routes are approved. They also make headscale list a NAT's
// own primary routes in its self view.
package policy

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/headnat/headnat/agent/api"
)

// Defaults for the zero fields of Params.
const (
	DefaultAdminGroup = "group:admins"
	DefaultNATTag     = "tag:nat"
	DefaultAgentPort  = api.DefaultAgentPort
)

// Params are the inputs of Render. Zero fields take the defaults above.
type Params struct {
	// Admins are headscale user identities, e.g. "alice@" or "alice@example.com". Empty is
	// allowed: then nobody reaches the VPC until the policy is rendered again.
	Admins     []string
	AdminGroup string // default "group:admins"
	NATTag     string // default "tag:nat"
	// TagOwners may give a node NATTag; default: the admin group.
	TagOwners []string
	// VPCCIDRs must not be empty; ExtraRoutes are advertised and reached the same way.
	VPCCIDRs    []netip.Prefix
	ExtraRoutes []netip.Prefix
	AgentPort   int // default 7070
	// NoSSH leaves out the admins' tailscale SSH to the NAT instances (as root, action
	// accept: headscale's "check" needs a browser login) and its port 22 rule.
	NoSSH bool
}

// SSHUser is the one local user admins may SSH to a NAT instance as.
const SSHUser = "root"

// view is what render writes.
type view struct {
	AdminGroup, NATTag, AgentDst string
	AgentPort                    int
	SSH                          bool
	Admins, TagOwners, RouteDsts []string
	Routes                       []string
}

// Render validates p and returns the policy. The error names the first problem found.
func Render(p Params) ([]byte, error) {
	p = withDefaults(p)
	if err := validate(p); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	routes := Routes(p.VPCCIDRs, p.ExtraRoutes)
	v := view{
		AdminGroup: p.AdminGroup,
		NATTag:     p.NATTag,
		AgentDst:   fmt.Sprintf("%s:%d", p.NATTag, p.AgentPort),
		AgentPort:  p.AgentPort,
		SSH:        !p.NoSSH,
		Admins:     append([]string{}, p.Admins...),
		TagOwners:  p.TagOwners,
	}
	for _, r := range routes {
		v.Routes = append(v.Routes, r.String())
		v.RouteDsts = append(v.RouteDsts, r.String()+":*")
	}
	return []byte(render(v)), nil
}

// Routes returns the VPC CIDRs and extra routes, masked, sorted and without duplicates: the
// routes the NAT instances advertise and the policy approves.
func Routes(vpc, extra []netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range append(slices.Clone(vpc), extra...) {
		out = append(out, p.Masked())
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

func withDefaults(p Params) Params {
	if p.AdminGroup == "" {
		p.AdminGroup = DefaultAdminGroup
	}
	if p.NATTag == "" {
		p.NATTag = DefaultNATTag
	}
	if len(p.TagOwners) == 0 {
		p.TagOwners = []string{p.AdminGroup}
	}
	if p.AgentPort == 0 {
		p.AgentPort = DefaultAgentPort
	}
	return p
}

func validate(p Params) error {
	if !validName(p.AdminGroup, "group:") {
		return fmt.Errorf("admin group %q must be group:NAME", p.AdminGroup)
	}
	if !validName(p.NATTag, "tag:") {
		return fmt.Errorf("NAT tag %q must be tag:NAME, NAME starting with a letter", p.NATTag)
	}
	for _, a := range p.Admins {
		if !validUser(a) {
			return fmt.Errorf("admin %q is not a user identity (alice@ or alice@example.com)", a)
		}
	}
	for _, o := range p.TagOwners {
		if !validUser(o) && !validName(o, "group:") && !validName(o, "tag:") {
			return fmt.Errorf("tag owner %q is not a user, group:NAME or tag:NAME", o)
		}
		if strings.HasPrefix(o, "group:") && o != p.AdminGroup {
			return fmt.Errorf("tag owner %q is not a group this policy defines (%s)", o, p.AdminGroup)
		}
		if strings.HasPrefix(o, "tag:") && o != p.NATTag {
			return fmt.Errorf("tag owner %q is not a tag this policy defines (%s)", o, p.NATTag)
		}
	}
	if len(p.VPCCIDRs) == 0 {
		return errors.New("no VPC CIDRs: the NAT instances would advertise nothing")
	}
	for _, list := range []struct {
		name string
		l    []netip.Prefix
	}{{"VPC CIDR", p.VPCCIDRs}, {"extra route", p.ExtraRoutes}} {
		for _, r := range list.l {
			switch {
			case !r.IsValid():
				return fmt.Errorf("%s %q is not a valid CIDR", list.name, r)
			case r.Masked() != r:
				return fmt.Errorf("%s %s has host bits set (did you mean %s?)", list.name, r, r.Masked())
			case r.Bits() == 0:
				return fmt.Errorf("%s %s is a default route: headnat does not make the NATs exit nodes", list.name, r)
			}
		}
	}
	if p.AgentPort < 1 || p.AgentPort > 65535 {
		return fmt.Errorf("agent port %d is not a TCP port", p.AgentPort)
	}
	return nil
}

// validName reports whether s is prefix+NAME with NAME starting with a letter and made of
// letters, digits, '-', '_' and '.'.
func validName(s, prefix string) bool {
	name, ok := strings.CutPrefix(s, prefix)
	if !ok || name == "" || !isLetter(name[0]) {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLetter(c) && !(c >= '0' && c <= '9') && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// validUser accepts headscale's user identities: "name@" or "name@domain", no spaces or quotes.
func validUser(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && !strings.ContainsAny(s, " \t\n\"',:") && strings.Count(s, "@") == 1
}

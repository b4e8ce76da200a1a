package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// Defaults applied to a zero Spec field.
const (
	// DefaultTCPEstablishedTimeout is the idle timeout of an established TCP flow: RFC 5382
	// (REQ-5) forbids less than 2 h 4 min for a NAT.
	DefaultTCPEstablishedTimeout = 7440 * time.Second
	// DefaultUDPTimeout is the idle timeout of a UDP flow seen in one direction only.
	DefaultUDPTimeout = 30 * time.Second
	// DefaultUDPStreamTimeout is the idle timeout of a UDP flow seen in both directions.
	DefaultUDPStreamTimeout = 120 * time.Second
	// DefaultStatePath is where Apply records the sysctl values it replaced.
	DefaultStatePath = "/run/headnat/dataplane.json"
	// DefaultLockPath is the host-wide lock that serialises Apply and Remove.
	DefaultLockPath = "/run/headnat/dataplane.lock"

	// Bounds of a ConntrackMax sized to memory (MemTotal in bytes / 4096).
	MinAutoConntrackMax = 65536
	MaxAutoConntrackMax = 2097152
	// MinConntrackMax is the smallest explicit ConntrackMax accepted.
	MinConntrackMax = 1024

	// DefaultTailnetUDPPort is tailscaled's default WireGuard and disco port (its --port).
	DefaultTailnetUDPPort = api.DefaultTailnetUDPPort
)

// Spec is the data plane headnat keeps on the host.
type Spec struct {
	// EgressInterface is the interface NATed traffic leaves by. "" means the interface of
	// the IPv4 default route of the main routing table.
	EgressInterface string
	// VPCCIDRs are the VPC's address ranges: masqueraded as sources when leaving the egress
	// interface, never NATed as destinations, and closed to new connections from outside.
	// At least one is required.
	VPCCIDRs []netip.Prefix
	// ExtraSourceCIDRs are further sources allowed out of the egress interface (to the
	// internet) and masqueraded. Forwarded traffic leaving the egress interface from any
	// source not listed here or in VPCCIDRs is dropped. The tailnet does not belong here: it
	// may reach the VPC only, which Tailnet says.
	ExtraSourceCIDRs []netip.Prefix
	// ConntrackMax is net.netfilter.nf_conntrack_max; 0 sizes it to memory: MemTotal in
	// bytes / 4096, clamped to [MinAutoConntrackMax, MaxAutoConntrackMax].
	ConntrackMax int
	// Conntrack idle timeouts, whole seconds; 0 means the Default* above.
	TCPEstablishedTimeout time.Duration
	UDPTimeout            time.Duration
	UDPStreamTimeout      time.Duration
	// StatePath is where Apply records the sysctl values it replaced, so that Remove can
	// restore them. "" means DefaultStatePath.
	StatePath string
	// AgentPort is the agent's TCP port (its listen port). When set, filter/HEADNAT-INPUT
	// admits it only from loopback, VPCCIDRs, ExtraSourceCIDRs and AgentSourceCIDRs, and
	// drops it from everywhere else (the public address included). 0 means no INPUT rules at
	// all: Apply removes HEADNAT-INPUT and its jump if they exist.
	AgentPort int
	// AgentSourceCIDRs are further sources allowed to reach AgentPort only (not forwarded,
	// not masqueraded), e.g. the tailnet 100.64.0.0/10. They may overlap the other lists.
	AgentSourceCIDRs []netip.Prefix
	// KeepJumpPosition leaves headnat's jumps in the filter table where they stand even when
	// a foreign rule above them accepts traffic (the operator's choice, reported as a note
	// by Apply and not as a deviation by Verify). By default Apply moves the jump back to the
	// top of the built-in chain, where only tailscaled's own jump may stand above it.
	KeepJumpPosition bool
	// Tailnet, when set, makes the host a tailnet subnet router for the VPC as well; nil
	// means no tailnet rules at all (Apply removes headnat's if they exist).
	Tailnet *TailnetSpec
}

// TailnetSpec is the tailnet a subnet router on this host (tailscaled) serves. Its sources,
// arriving on Interface, may open connections to the VPC CIDRs and Routes, masqueraded to the
// host's address there; they may not go anywhere else (the node is not an exit node), and
// nothing may open a connection into the tailnet through the host. The agent port admits
// them too.
type TailnetSpec struct {
	// Interface is tailscaled's TUN device, e.g. tailscale0. Required. It need not exist
	// yet: the rules match it by name, and tailscaled creates it when it starts.
	Interface string
	// CIDR is the tailnet's address range, e.g. 100.64.0.0/10. It may not overlap VPCCIDRs
	// or ExtraSourceCIDRs (sources that may reach the internet).
	CIDR netip.Prefix
	// Routes are further destinations the tailnet may reach besides VPCCIDRs: the extra
	// routes the subnet router advertises.
	Routes []netip.Prefix
	// UDPPort is tailscaled's fixed WireGuard and disco UDP port (its --port;
	// DefaultTailnetUDPPort unless changed). Required: 0 (a random port) cannot be matched.
	UDPPort int
	// AllowVPCDirect keeps tailscaled's UDP to and from VPC addresses. By default it is
	// dropped (HEADNAT-PATH-IN and HEADNAT-PATH-OUT), so that two NAT instances reach each
	// other over the tailnet by their public addresses or DERP, never directly over the VPC:
	// the tailnet is the peers' second health path, and it must not share the VPC's fate.
	AllowVPCDirect bool
}

// pathDiversity reports whether the drop of tailscaled's direct VPC path is wanted.
func (s Spec) pathDiversity() bool { return s.Tailnet != nil && !s.Tailnet.AllowVPCDirect }

// WithDefaults returns the spec with zero fields replaced by their defaults (ConntrackMax
// stays 0: it is sized when applied, from the host's memory).
func (s Spec) WithDefaults() Spec {
	if s.TCPEstablishedTimeout == 0 {
		s.TCPEstablishedTimeout = DefaultTCPEstablishedTimeout
	}
	if s.UDPTimeout == 0 {
		s.UDPTimeout = DefaultUDPTimeout
	}
	if s.UDPStreamTimeout == 0 {
		s.UDPStreamTimeout = DefaultUDPStreamTimeout
	}
	if s.StatePath == "" {
		s.StatePath = DefaultStatePath
	}
	return s
}

// Validate reports the first problem with the spec as one error, or nil.
func (s Spec) Validate() error {
	if err := validateInterfaceName("egress interface", s.EgressInterface); err != nil {
		return err
	}
	if len(s.VPCCIDRs) == 0 {
		return errors.New("no VPC CIDR given: at least one is required")
	}
	type named struct {
		what string
		p    netip.Prefix
	}
	var all []named
	for _, p := range s.VPCCIDRs {
		all = append(all, named{"VPC CIDR", p})
	}
	for _, p := range s.ExtraSourceCIDRs {
		all = append(all, named{"extra source CIDR", p})
	}
	for i, a := range all {
		if err := validatePrefix(a.what, a.p); err != nil {
			return err
		}
		for _, b := range all[:i] {
			if a.p == b.p {
				return fmt.Errorf("%s %s is listed twice", a.what, a.p)
			}
			if a.p.Overlaps(b.p) {
				return fmt.Errorf("%s %s overlaps %s %s", a.what, a.p, b.what, b.p)
			}
		}
	}
	if s.ConntrackMax < 0 || (s.ConntrackMax > 0 && s.ConntrackMax < MinConntrackMax) || s.ConntrackMax > 1<<31-1 {
		return fmt.Errorf("conntrack max %d out of range: 0 (sized to memory) or %d..%d", s.ConntrackMax, MinConntrackMax, 1<<31-1)
	}
	for _, t := range []struct {
		what     string
		d        time.Duration
		min, max time.Duration
	}{
		{"TCP established timeout", s.TCPEstablishedTimeout, time.Minute, 5 * 24 * time.Hour},
		{"UDP timeout", s.UDPTimeout, time.Second, time.Hour},
		{"UDP stream timeout", s.UDPStreamTimeout, time.Second, 24 * time.Hour},
	} {
		if t.d == 0 {
			continue // default
		}
		if t.d < t.min || t.d > t.max {
			return fmt.Errorf("%s %s out of range %s..%s (0 means the default)", t.what, t.d, t.min, t.max)
		}
		if t.d%time.Second != 0 {
			return fmt.Errorf("%s %s is not a whole number of seconds", t.what, t.d)
		}
	}
	if s.AgentPort < 0 || s.AgentPort > 65535 {
		return fmt.Errorf("agent port %d out of range: 0 (no INPUT rules) or 1..65535", s.AgentPort)
	}
	for i, p := range s.AgentSourceCIDRs {
		if err := validatePrefix("agent source CIDR", p); err != nil {
			return err
		}
		if slices.Contains(s.AgentSourceCIDRs[:i], p) {
			return fmt.Errorf("agent source CIDR %s is listed twice", p)
		}
	}
	if s.AgentPort == 0 && len(s.AgentSourceCIDRs) > 0 {
		return errors.New("agent source CIDRs given without an agent port")
	}
	if s.StatePath != "" && !filepath.IsAbs(s.StatePath) {
		return fmt.Errorf("state path %q is not absolute", s.StatePath)
	}
	if s.Tailnet != nil {
		return s.Tailnet.validate(s)
	}
	return nil
}

func (t TailnetSpec) validate(s Spec) error {
	if t.Interface == "" {
		return errors.New("tailnet interface not given: tailscaled's TUN device (e.g. tailscale0) is required")
	}
	if err := validateInterfaceName("tailnet interface", t.Interface); err != nil {
		return err
	}
	if t.Interface == "lo" || t.Interface == s.EgressInterface {
		return fmt.Errorf("tailnet interface %q: must be tailscaled's own device, not the egress interface or loopback", t.Interface)
	}
	if err := validatePrefix("tailnet CIDR", t.CIDR); err != nil {
		return err
	}
	for _, p := range s.VPCCIDRs {
		if t.CIDR.Overlaps(p) {
			return fmt.Errorf("tailnet CIDR %s overlaps VPC CIDR %s", t.CIDR, p)
		}
	}
	for _, p := range s.ExtraSourceCIDRs {
		if t.CIDR.Overlaps(p) {
			return fmt.Errorf("tailnet CIDR %s overlaps extra source CIDR %s: extra sources may reach the internet, the tailnet only the VPC (leave it out of the extra sources)", t.CIDR, p)
		}
	}
	for i, p := range t.Routes {
		if err := validatePrefix("tailnet route", p); err != nil {
			return err
		}
		if p.Overlaps(t.CIDR) {
			return fmt.Errorf("tailnet route %s overlaps the tailnet CIDR %s", p, t.CIDR)
		}
		for _, v := range s.VPCCIDRs {
			if p.Overlaps(v) {
				return fmt.Errorf("tailnet route %s overlaps VPC CIDR %s (the VPC is always routed)", p, v)
			}
		}
		for _, q := range t.Routes[:i] {
			if p.Overlaps(q) {
				return fmt.Errorf("tailnet route %s overlaps tailnet route %s", p, q)
			}
		}
	}
	if t.UDPPort < 1 || t.UDPPort > 65535 {
		return fmt.Errorf("tailnet UDP port %d out of range 1..65535 (tailscaled's --port, %d by default; it must be fixed)", t.UDPPort, DefaultTailnetUDPPort)
	}
	return nil
}

func validatePrefix(what string, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("%s %q is not a valid CIDR", what, p.String())
	}
	if !p.Addr().Is4() {
		return fmt.Errorf("%s %s is not IPv4", what, p)
	}
	if p.Bits() == 0 {
		return fmt.Errorf("%s %s covers every address", what, p)
	}
	if p.Masked() != p {
		return fmt.Errorf("%s %s has host bits set (the network is %s)", what, p, p.Masked())
	}
	return nil
}

// validateInterfaceName accepts "" (from the default route) or a name the kernel accepts and
// iptables matches literally (no "+" wildcard, no "!" negation).
func validateInterfaceName(what, name string) error {
	if name == "" {
		return nil
	}
	if len(name) > 15 {
		return fmt.Errorf("%s %q: name longer than 15 characters", what, name)
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/:+!\"\\ \t\n\r") {
		return fmt.Errorf("%s %q: not a valid interface name", what, name)
	}
	return nil
}

// conntrackMaxFor sizes nf_conntrack_max to memory.
func conntrackMaxFor(memTotalBytes uint64) int {
	n := memTotalBytes / 4096
	if n < MinAutoConntrackMax {
		n = MinAutoConntrackMax
	}
	if n > MaxAutoConntrackMax {
		n = MaxAutoConntrackMax
	}
	return int(n)
}

// agentSources is every source CIDR allowed to reach the agent port: the VPC, the extra
// sources, then the agent-only ones not already listed.
func (s Spec) agentSources() []netip.Prefix {
	out := s.sources()
	for _, p := range s.AgentSourceCIDRs {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// tailnetDestinations is where the tailnet may open connections: the VPC, then the extra
// routes.
func (s Spec) tailnetDestinations() []netip.Prefix {
	out := slices.Clone(s.VPCCIDRs)
	if s.Tailnet != nil {
		out = append(out, s.Tailnet.Routes...)
	}
	return out
}

// sources is every source CIDR allowed out and masqueraded, VPC first.
func (s Spec) sources() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(s.VPCCIDRs)+len(s.ExtraSourceCIDRs))
	out = append(out, s.VPCCIDRs...)
	return append(out, s.ExtraSourceCIDRs...)
}

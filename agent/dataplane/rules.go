package dataplane

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The chains headnat owns. Nothing else is ever written to, flushed or deleted.
const (
	ChainForward     = "HEADNAT-FORWARD"     // filter, jumped to from FORWARD
	ChainPostrouting = "HEADNAT-POSTROUTING" // nat, jumped to from POSTROUTING
	ChainMangleFwd   = "HEADNAT-MANGLE-FWD"  // mangle, jumped to from FORWARD
	ChainInput       = "HEADNAT-INPUT"       // filter, jumped to from INPUT (only with an agent port)
)

// CommentPrefix starts the comment of every rule headnat writes.
const CommentPrefix = "headnat"

// chainSpec is one owned chain: its rules in order and the jump to it from a built-in chain.
type chainSpec struct {
	Table  string
	Parent string // built-in chain holding the jump
	Name   string
	Rules  [][]string
	// Guarded: a foreign rule above the jump that accepts traffic bypasses the chain's
	// policy, so the jump's position is checked (filter chains).
	Guarded bool
	// MayStandAbove is the one foreign chain whose jump may stand above headnat's in a
	// guarded parent: tailscaled's. Its ts-forward and ts-input chains only accept traffic
	// from or to tailscale0 that tailscaled itself marked, and tailscaled must see its packets
	// before any other filter; headnat's policy still covers everything else.
	MayStandAbove string
}

// Jump is the rule in the built-in chain that enters the owned chain.
func (c chainSpec) Jump() []string {
	return []string{"-m", "comment", "--comment", CommentPrefix, "-j", c.Name}
}

// movingJump is a second jump Apply holds in place while it moves the real one, so that
// the built-in chain never lacks a jump to the owned chain. A leftover (Apply killed
// mid-move) is a stale jump: the next Apply deletes it.
func (c chainSpec) movingJump() []string {
	return []string{"-m", "comment", "--comment", CommentPrefix + ": moving", "-j", c.Name}
}

// owned lists the chains without their rules (enough to remove them), filter FORWARD
// first and filter INPUT last.
func owned() []chainSpec {
	return []chainSpec{
		{Table: "filter", Parent: "FORWARD", Name: ChainForward, Guarded: true, MayStandAbove: "ts-forward"},
		{Table: "nat", Parent: "POSTROUTING", Name: ChainPostrouting},
		{Table: "mangle", Parent: "FORWARD", Name: ChainMangleFwd},
		{Table: "filter", Parent: "INPUT", Name: ChainInput, Guarded: true, MayStandAbove: "ts-input"},
	}
}

// hostView is what the rules depend on besides the spec.
type hostView struct {
	iface string // the egress interface
	// inside are VPC addresses the main table routes out of another interface (a
	// two-interface NAT): a packet from them arriving on iface is spoofed. Empty on a
	// single-interface NAT, where the VPC's traffic arrives on iface.
	inside []netip.Prefix
}

// wantedChains splits owned() into the chains spec wants (with their rules when the host
// is known) and the ones it wants gone (HEADNAT-INPUT without an agent port).
func wantedChains(s Spec, h *hostView) (want, absent []chainSpec) {
	all := owned()
	if h != nil {
		all = desiredChains(s, *h)
	}
	for _, c := range all {
		if c.Name == ChainInput && s.AgentPort == 0 {
			absent = append(absent, c)
			continue
		}
		want = append(want, c)
	}
	return want, absent
}

// desiredChains builds the rules for spec on host h, in the canonical form `iptables -S`
// prints back (option order -s -d -i -o -p, then matches, then the target), so that a
// listed rule and a desired one compare token for token. The filter chain comes first:
// Apply writes it before the NAT so that forwarding is never open without its drop rules.
func desiredChains(s Spec, h hostView) []chainSpec {
	iface := h.iface
	comment := func(c string) []string { return []string{"-m", "comment", "--comment", CommentPrefix + ": " + c} }
	r := func(parts ...[]string) []string { return slices.Concat(parts...) }
	a := func(args ...string) []string { return args }

	var fwd [][]string
	// First, before an established rule could match a forged packet of a real flow.
	for _, p := range h.inside {
		fwd = append(fwd, r(a("-s", p.String(), "-i", iface), comment("VPC source on the egress side (spoofed)"), a("-j", "DROP")))
	}
	fwd = append(fwd,
		r(a("-o", iface, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("established out"), a("-j", "ACCEPT")),
		r(a("-i", iface, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("established in"), a("-j", "ACCEPT")),
		r(a("-o", iface, "-m", "conntrack", "--ctstate", "INVALID"), comment("invalid out"), a("-j", "DROP")),
		r(a("-i", iface, "-m", "conntrack", "--ctstate", "INVALID"), comment("invalid in"), a("-j", "DROP")),
	)
	for _, p := range s.sources() {
		fwd = append(fwd, r(a("-s", p.String(), "-o", iface, "-m", "conntrack", "--ctstate", "NEW"), comment("allowed source out"), a("-j", "ACCEPT")))
	}
	for _, p := range s.VPCCIDRs {
		fwd = append(fwd, r(a("-d", p.String(), "-i", iface), comment("no new connections into the VPC"), a("-j", "DROP")))
	}
	fwd = append(fwd, r(a("-o", iface), comment("not an open relay"), a("-j", "DROP")))

	var nat [][]string
	for _, p := range s.VPCCIDRs {
		nat = append(nat, r(a("-d", p.String()), comment("no NAT within the VPC"), a("-j", "RETURN")))
	}
	for _, p := range s.sources() {
		nat = append(nat, r(a("-s", p.String(), "-o", iface), comment("masquerade"), a("-j", "MASQUERADE")))
	}

	mangle := [][]string{
		r(a("-o", iface, "-p", "tcp", "-m", "tcp", "--tcp-flags", "SYN,RST", "SYN"), comment("clamp MSS to PMTU"), a("-j", "TCPMSS", "--clamp-mss-to-pmtu")),
	}

	var input [][]string
	if s.AgentPort > 0 {
		port := a("-p", "tcp", "-m", "tcp", "--dport", strconv.Itoa(s.AgentPort))
		// Replies to this host's own connections that happened to use the port as their
		// source port (it lies in ip_local_port_range) are not connections to the agent.
		input = append(input,
			r(port, a("-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("agent port, replies"), a("-j", "ACCEPT")),
			r(a("-i", "lo"), port, comment("agent port from this host"), a("-j", "ACCEPT")))
		for _, p := range s.agentSources() {
			input = append(input, r(a("-s", p.String()), port, comment("agent port from an allowed source"), a("-j", "ACCEPT")))
		}
		// DROP rather than REJECT: the port answers on the public address too, and a silent
		// drop neither confirms it to scanners nor sends resets to forged sources.
		input = append(input, r(port, comment("agent port closed to other sources"), a("-j", "DROP")))
	}

	chains := owned()
	chains[0].Rules = fwd
	chains[1].Rules = nat
	chains[2].Rules = mangle
	chains[3].Rules = input
	return chains
}

// ruleLine renders a rule as `iptables -S` prints it.
func ruleLine(chain string, args []string) string {
	var b strings.Builder
	b.WriteString("-A ")
	b.WriteString(chain)
	for i, a := range args {
		b.WriteByte(' ')
		if i > 0 && args[i-1] == "--comment" {
			b.WriteString(saveString(a))
		} else {
			b.WriteString(quoteIfNeeded(a))
		}
	}
	return b.String()
}

// saveString quotes like iptables' xtables_save_string, which prints comments: bare when
// made only of letters, digits, '_' and '-', otherwise in double quotes, with the double
// quote, the backslash and the single quote escaped by a backslash.
func saveString(s string) string {
	bare := s != ""
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			bare = false
			break
		}
	}
	if bare {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' || r == '\'' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// quoteIfNeeded leaves other arguments bare, as iptables prints them, unless splitting the
// line again would change them.
func quoteIfNeeded(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\'") {
		return s
	}
	return saveString(s)
}

// splitRule splits one line of `iptables -S` output into arguments, undoing quoteArg.
func splitRule(line string) []string {
	var (
		out     []string
		cur     strings.Builder
		inQuote bool
		inToken bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			inToken = true
		case !inQuote && (c == ' ' || c == '\t'):
			if inToken {
				out = append(out, cur.String())
				cur.Reset()
				inToken = false
			}
		default:
			cur.WriteByte(c)
			inToken = true
		}
	}
	if inToken {
		out = append(out, cur.String())
	}
	return out
}

// parseRules keeps the rules of chain from `iptables -S chain` output, as arguments without
// the leading "-A chain".
func parseRules(chain string, lines []string) [][]string {
	var out [][]string
	for _, l := range lines {
		f := splitRule(l)
		if len(f) < 2 || f[0] != "-A" || f[1] != chain {
			continue
		}
		out = append(out, f[2:])
	}
	return out
}

// target returns the chain a rule jumps or goes to ("-j X" or "-g X"), or "".
func target(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" || args[i] == "-g" || args[i] == "--jump" || args[i] == "--goto" {
			return args[i+1]
		}
	}
	return ""
}

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
	// Path diversity (only with a tailnet, unless Tailnet.AllowVPCDirect): drop tailscaled's
	// UDP from and to VPC addresses. In mangle, not filter: tailscaled's ts-input chain,
	// whose jump leads filter INPUT, accepts its own port (v1.102's AddMagicsockPortRule).
	ChainPathIn  = "HEADNAT-PATH-IN"  // mangle, jumped to from INPUT
	ChainPathOut = "HEADNAT-PATH-OUT" // mangle, jumped to from OUTPUT
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
// first.
func owned() []chainSpec {
	return []chainSpec{
		{Table: "filter", Parent: "FORWARD", Name: ChainForward, Guarded: true, MayStandAbove: "ts-forward"},
		{Table: "nat", Parent: "POSTROUTING", Name: ChainPostrouting},
		{Table: "mangle", Parent: "FORWARD", Name: ChainMangleFwd},
		{Table: "filter", Parent: "INPUT", Name: ChainInput, Guarded: true, MayStandAbove: "ts-input"},
		// A foreign ACCEPT above these jumps would end the mangle table before the drop.
		{Table: "mangle", Parent: "INPUT", Name: ChainPathIn, Guarded: true},
		{Table: "mangle", Parent: "OUTPUT", Name: ChainPathOut, Guarded: true},
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
// is known) and the ones it wants gone (HEADNAT-INPUT without an agent port, the path
// diversity chains without a tailnet or with AllowVPCDirect).
func wantedChains(s Spec, h *hostView) (want, absent []chainSpec) {
	all := owned()
	if h != nil {
		all = desiredChains(s, *h)
	}
	for _, c := range all {
		switch {
		case c.Name == ChainInput && s.AgentPort == 0,
			(c.Name == ChainPathIn || c.Name == ChainPathOut) && !s.pathDiversity():
			absent = append(absent, c)
		default:
			want = append(want, c)
		}
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
	tn := s.Tailnet

	var fwd [][]string
	// First, before an established rule could match a forged packet of a real flow.
	for _, p := range h.inside {
		fwd = append(fwd, r(a("-s", p.String(), "-i", iface), comment("VPC source on the egress side (spoofed)"), a("-j", "DROP")))
	}
	if tn != nil {
		fwd = append(fwd, r(a("-s", tn.CIDR.String(), "!", "-i", tn.Interface), comment("tailnet source not from the tailnet (spoofed)"), a("-j", "DROP")))
	}
	fwd = append(fwd,
		r(a("-o", iface, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("established out"), a("-j", "ACCEPT")),
		r(a("-i", iface, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("established in"), a("-j", "ACCEPT")),
		r(a("-o", iface, "-m", "conntrack", "--ctstate", "INVALID"), comment("invalid out"), a("-j", "DROP")),
		r(a("-i", iface, "-m", "conntrack", "--ctstate", "INVALID"), comment("invalid in"), a("-j", "DROP")),
	)
	if tn != nil {
		// The tailnet reaches the VPC (and its extra routes) by whichever interface they
		// are routed, and nothing else; nothing opens a connection into it. Replies go both
		// ways by the established rules.
		ts := tn.Interface
		fwd = append(fwd,
			r(a("-i", ts, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("established from the tailnet"), a("-j", "ACCEPT")),
			r(a("-o", ts, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED"), comment("established to the tailnet"), a("-j", "ACCEPT")))
		for _, d := range s.tailnetDestinations() {
			fwd = append(fwd, r(a("-s", tn.CIDR.String(), "-d", d.String(), "-i", ts, "-m", "conntrack", "--ctstate", "NEW"), comment("tailnet to the VPC"), a("-j", "ACCEPT")))
		}
		fwd = append(fwd,
			r(a("-i", ts), comment("tailnet to elsewhere (not an exit node)"), a("-j", "DROP")),
			r(a("-o", ts), comment("no new connections into the tailnet"), a("-j", "DROP")))
	}
	for _, p := range s.sources() {
		fwd = append(fwd, r(a("-s", p.String(), "-o", iface, "-m", "conntrack", "--ctstate", "NEW"), comment("allowed source out"), a("-j", "ACCEPT")))
	}
	for _, p := range s.VPCCIDRs {
		fwd = append(fwd, r(a("-d", p.String(), "-i", iface), comment("no new connections into the VPC"), a("-j", "DROP")))
	}
	fwd = append(fwd, r(a("-o", iface), comment("not an open relay"), a("-j", "DROP")))

	var nat [][]string
	if tn != nil {
		// Before the VPC's RETURN: the private service sees the host's VPC address and
		// replies through this host, whichever route table its subnet uses.
		for _, d := range s.tailnetDestinations() {
			nat = append(nat, r(a("-s", tn.CIDR.String(), "-d", d.String()), comment("masquerade the tailnet to the VPC"), a("-j", "MASQUERADE")))
		}
	}
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
		if tn != nil {
			input = append(input, r(a("-s", tn.CIDR.String(), "-i", tn.Interface), port, comment("agent port from the tailnet"), a("-j", "ACCEPT")))
		}
		// DROP rather than REJECT: the port answers on the public address too, and a silent
		// drop neither confirms it to scanners nor sends resets to forged sources.
		input = append(input, r(port, comment("agent port closed to other sources"), a("-j", "DROP")))
	}

	// Path diversity. If tailscaled reached another NAT instance directly by its VPC
	// address, a VPC partition would cut the tailnet path together with the VPC path, and
	// the tailnet path would only come back once tailscale's direct path timed out (seconds
	// after failover decided). Dropping tailscaled's UDP to and from VPC addresses leaves it
	// the public addresses (via the internet gateway) or DERP. A dropped send fails with
	// EPERM, which magicsock counts as a lost packet.
	var pathIn, pathOut [][]string
	if s.pathDiversity() {
		port := strconv.Itoa(tn.UDPPort)
		for _, p := range s.VPCCIDRs {
			pathIn = append(pathIn, r(a("-s", p.String(), "-p", "udp", "-m", "udp", "--dport", port), comment("no tailnet path over the VPC (path diversity)"), a("-j", "DROP")))
			pathOut = append(pathOut, r(a("-d", p.String(), "-p", "udp", "-m", "udp", "--sport", port), comment("no tailnet path over the VPC (path diversity)"), a("-j", "DROP")))
		}
	}

	chains := owned()
	for i, c := range chains {
		switch c.Name {
		case ChainForward:
			chains[i].Rules = fwd
		case ChainPostrouting:
			chains[i].Rules = nat
		case ChainMangleFwd:
			chains[i].Rules = mangle
		case ChainInput:
			chains[i].Rules = input
		case ChainPathIn:
			chains[i].Rules = pathIn
		case ChainPathOut:
			chains[i].Rules = pathOut
		}
	}
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

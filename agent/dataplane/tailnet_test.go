package dataplane

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func tailnetSpec() *TailnetSpec {
	return &TailnetSpec{Interface: "tailscale0", CIDR: netip.MustParsePrefix("100.64.0.0/10"), UDPPort: DefaultTailnetUDPPort}
}

// listing renders chains as `iptables -S` would, each jump first.
func listing(chains []chainSpec) []string {
	var out []string
	for _, c := range chains {
		out = append(out, "*"+c.Table+" "+ruleLine(c.Parent, c.Jump()))
		for _, r := range c.Rules {
			out = append(out, ruleLine(c.Name, r))
		}
	}
	return out
}

func TestDesiredRulesTailnet(t *testing.T) {
	tn := tailnetSpec()
	tn.Routes = pfx("198.19.0.0/24")
	s := Spec{VPCCIDRs: pfx("198.18.0.0/16"), ExtraSourceCIDRs: pfx("198.51.100.0/24"), AgentPort: 7070, Tailnet: tn}
	chains, absent := wantedChains(s, &hostView{iface: "eth0"})
	if len(absent) != 0 {
		t.Fatalf("absent: %v", absent)
	}
	want := []string{
		`*filter -A FORWARD -m comment --comment headnat -j HEADNAT-FORWARD`,
		`-A HEADNAT-FORWARD -s 100.64.0.0/10 ! -i tailscale0 -m comment --comment "headnat: tailnet source not from the tailnet (spoofed)" -j DROP`,
		`-A HEADNAT-FORWARD -o eth0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: established out" -j ACCEPT`,
		`-A HEADNAT-FORWARD -i eth0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: established in" -j ACCEPT`,
		`-A HEADNAT-FORWARD -o eth0 -m conntrack --ctstate INVALID -m comment --comment "headnat: invalid out" -j DROP`,
		`-A HEADNAT-FORWARD -i eth0 -m conntrack --ctstate INVALID -m comment --comment "headnat: invalid in" -j DROP`,
		`-A HEADNAT-FORWARD -i tailscale0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: established from the tailnet" -j ACCEPT`,
		`-A HEADNAT-FORWARD -o tailscale0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: established to the tailnet" -j ACCEPT`,
		`-A HEADNAT-FORWARD -s 100.64.0.0/10 -d 198.18.0.0/16 -i tailscale0 -m conntrack --ctstate NEW -m comment --comment "headnat: tailnet to the VPC" -j ACCEPT`,
		`-A HEADNAT-FORWARD -s 100.64.0.0/10 -d 198.19.0.0/24 -i tailscale0 -m conntrack --ctstate NEW -m comment --comment "headnat: tailnet to the VPC" -j ACCEPT`,
		`-A HEADNAT-FORWARD -i tailscale0 -m comment --comment "headnat: tailnet to elsewhere (not an exit node)" -j DROP`,
		`-A HEADNAT-FORWARD -o tailscale0 -m comment --comment "headnat: no new connections into the tailnet" -j DROP`,
		`-A HEADNAT-FORWARD -s 198.18.0.0/16 -o eth0 -m conntrack --ctstate NEW -m comment --comment "headnat: allowed source out" -j ACCEPT`,
		`-A HEADNAT-FORWARD -s 198.51.100.0/24 -o eth0 -m conntrack --ctstate NEW -m comment --comment "headnat: allowed source out" -j ACCEPT`,
		`-A HEADNAT-FORWARD -d 198.18.0.0/16 -i eth0 -m comment --comment "headnat: no new connections into the VPC" -j DROP`,
		`-A HEADNAT-FORWARD -o eth0 -m comment --comment "headnat: not an open relay" -j DROP`,
		`*nat -A POSTROUTING -m comment --comment headnat -j HEADNAT-POSTROUTING`,
		`-A HEADNAT-POSTROUTING -s 100.64.0.0/10 -d 198.18.0.0/16 -m comment --comment "headnat: masquerade the tailnet to the VPC" -j MASQUERADE`,
		`-A HEADNAT-POSTROUTING -s 100.64.0.0/10 -d 198.19.0.0/24 -m comment --comment "headnat: masquerade the tailnet to the VPC" -j MASQUERADE`,
		`-A HEADNAT-POSTROUTING -d 198.18.0.0/16 -m comment --comment "headnat: no NAT within the VPC" -j RETURN`,
		`-A HEADNAT-POSTROUTING -s 198.18.0.0/16 -o eth0 -m comment --comment "headnat: masquerade" -j MASQUERADE`,
		`-A HEADNAT-POSTROUTING -s 198.51.100.0/24 -o eth0 -m comment --comment "headnat: masquerade" -j MASQUERADE`,
		`*mangle -A FORWARD -m comment --comment headnat -j HEADNAT-MANGLE-FWD`,
		`-A HEADNAT-MANGLE-FWD -o eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -m comment --comment "headnat: clamp MSS to PMTU" -j TCPMSS --clamp-mss-to-pmtu`,
		`*filter -A INPUT -m comment --comment headnat -j HEADNAT-INPUT`,
		`-A HEADNAT-INPUT -p tcp -m tcp --dport 7070 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: agent port, replies" -j ACCEPT`,
		`-A HEADNAT-INPUT -i lo -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from this host" -j ACCEPT`,
		`-A HEADNAT-INPUT -s 198.18.0.0/16 -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from an allowed source" -j ACCEPT`,
		`-A HEADNAT-INPUT -s 198.51.100.0/24 -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from an allowed source" -j ACCEPT`,
		`-A HEADNAT-INPUT -s 100.64.0.0/10 -i tailscale0 -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from the tailnet" -j ACCEPT`,
		`-A HEADNAT-INPUT -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port closed to other sources" -j DROP`,
		`*mangle -A INPUT -m comment --comment headnat -j HEADNAT-PATH-IN`,
		`-A HEADNAT-PATH-IN -s 198.18.0.0/16 -p udp -m udp --dport 41641 -m comment --comment "headnat: no tailnet path over the VPC (path diversity)" -j DROP`,
		`*mangle -A OUTPUT -m comment --comment headnat -j HEADNAT-PATH-OUT`,
		`-A HEADNAT-PATH-OUT -d 198.18.0.0/16 -p udp -m udp --sport 41641 -m comment --comment "headnat: no tailnet path over the VPC (path diversity)" -j DROP`,
	}
	if got := listing(chains); !slices.Equal(got, want) {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTailnetPathDiversityOffAndNoTailnet(t *testing.T) {
	tn := tailnetSpec()
	tn.AllowVPCDirect = true
	s := Spec{VPCCIDRs: pfx("198.18.0.0/16", "198.19.0.0/16"), AgentPort: 7070, Tailnet: tn}
	chains, absent := wantedChains(s, &hostView{iface: "eth0"})
	if len(chains) != 4 || len(absent) != 2 || absent[0].Name != ChainPathIn || absent[1].Name != ChainPathOut {
		t.Fatalf("allow VPC direct: chains %d, absent %v", len(chains), absent)
	}
	if !slices.ContainsFunc(listing(chains), func(l string) bool { return strings.Contains(l, "tailnet to the VPC") }) {
		t.Fatal("allow VPC direct dropped the tailnet's forward rules")
	}
	// Path diversity on: one drop per VPC CIDR and direction, whatever the port.
	tn.AllowVPCDirect, tn.UDPPort = false, 3478+1
	chains, _ = wantedChains(s, &hostView{iface: "eth0"})
	var path []string
	for _, c := range chains[4:] {
		path = append(path, listing([]chainSpec{c})[1:]...)
	}
	if len(path) != 4 || !strings.Contains(path[1], "-s 198.19.0.0/16 -p udp -m udp --dport 3479") || !strings.Contains(path[3], "-d 198.19.0.0/16 -p udp -m udp --sport 3479") {
		t.Fatalf("path rules:\n%s", strings.Join(path, "\n"))
	}
	// Without a tailnet, no rule names it.
	s.Tailnet = nil
	chains, _ = wantedChains(s, &hostView{iface: "eth0"})
	for _, l := range listing(chains) {
		if strings.Contains(l, "tailscale0") || strings.Contains(l, "100.64.") || strings.Contains(l, "tailnet") {
			t.Fatalf("rule without a tailnet: %s", l)
		}
	}
}

func TestTailnetNeverEmptyInterface(t *testing.T) {
	tn := tailnetSpec()
	tn.Routes = pfx("198.19.0.0/24")
	s := Spec{VPCCIDRs: pfx("198.18.0.0/16"), AgentPort: 7070, Tailnet: tn}
	for _, c := range desiredChains(s, hostView{iface: "eth0", inside: pfx("198.18.20.0/24")}) {
		for _, r := range c.Rules {
			for i, a := range r {
				if a == "-o" || a == "-i" {
					if i+1 >= len(r) || !slices.Contains([]string{"eth0", "lo", "tailscale0"}, r[i+1]) {
						t.Fatalf("%s: rule with a bad interface: %q", c.Name, r)
					}
				}
			}
		}
	}
}

// badTailnet are specs with a bad tailnet section, each with a piece of its one error.
var badTailnet = []struct {
	name string
	mod  func(*Spec)
	want string
}{
	{"empty interface", func(s *Spec) { s.Tailnet.Interface = "" }, "tailnet interface not given"},
	{"wildcard interface", func(s *Spec) { s.Tailnet.Interface = "tailscale+" }, `tailnet interface "tailscale+": not a valid interface name`},
	{"interface too long", func(s *Spec) { s.Tailnet.Interface = "tailscale0123456" }, "tailnet interface \"tailscale0123456\": name longer than 15"},
	{"loopback", func(s *Spec) { s.Tailnet.Interface = "lo" }, `tailnet interface "lo": must be tailscaled's own device`},
	{"the egress interface", func(s *Spec) { s.EgressInterface = "eth0"; s.Tailnet.Interface = "eth0" }, `tailnet interface "eth0": must be tailscaled's own device`},
	{"no CIDR", func(s *Spec) { s.Tailnet.CIDR = netip.Prefix{} }, `tailnet CIDR "invalid Prefix" is not a valid CIDR`},
	{"IPv6 CIDR", func(s *Spec) { s.Tailnet.CIDR = netip.MustParsePrefix("fd7a:115c:a1e0::/48") }, "tailnet CIDR fd7a:115c:a1e0::/48 is not IPv4"},
	{"host bits", func(s *Spec) { s.Tailnet.CIDR = netip.MustParsePrefix("100.64.0.1/10") }, "tailnet CIDR 100.64.0.1/10 has host bits set (the network is 100.64.0.0/10)"},
	{"everything", func(s *Spec) { s.Tailnet.CIDR = netip.MustParsePrefix("0.0.0.0/0") }, "tailnet CIDR 0.0.0.0/0 covers every address"},
	{"overlaps the VPC", func(s *Spec) { s.Tailnet.CIDR = netip.MustParsePrefix("198.18.128.0/17") }, "tailnet CIDR 198.18.128.0/17 overlaps VPC CIDR 198.18.0.0/16"},
	{"is an extra source", func(s *Spec) { s.ExtraSourceCIDRs = pfx("100.64.0.0/10") }, "tailnet CIDR 100.64.0.0/10 overlaps extra source CIDR 100.64.0.0/10"},
	{"route host bits", func(s *Spec) { s.Tailnet.Routes = pfx("198.19.0.1/24") }, "tailnet route 198.19.0.1/24 has host bits"},
	{"route IPv6", func(s *Spec) { s.Tailnet.Routes = pfx("2001:db8::/32") }, "tailnet route 2001:db8::/32 is not IPv4"},
	{"route in the tailnet", func(s *Spec) { s.Tailnet.Routes = pfx("100.100.0.0/16") }, "tailnet route 100.100.0.0/16 overlaps the tailnet CIDR"},
	{"route in the VPC", func(s *Spec) { s.Tailnet.Routes = pfx("198.18.10.0/24") }, "tailnet route 198.18.10.0/24 overlaps VPC CIDR 198.18.0.0/16"},
	{"route twice", func(s *Spec) { s.Tailnet.Routes = pfx("198.19.0.0/24", "198.19.0.0/16") }, "tailnet route 198.19.0.0/16 overlaps tailnet route 198.19.0.0/24"},
	{"port 0", func(s *Spec) { s.Tailnet.UDPPort = 0 }, "tailnet UDP port 0 out of range 1..65535"},
	{"port negative", func(s *Spec) { s.Tailnet.UDPPort = -1 }, "tailnet UDP port -1 out of range"},
	{"port too big", func(s *Spec) { s.Tailnet.UDPPort = 65536 }, "tailnet UDP port 65536 out of range"},
}

func TestValidateTailnet(t *testing.T) {
	ok := func() Spec {
		tn := tailnetSpec()
		tn.Routes = pfx("198.19.0.0/24", "198.51.100.0/24")
		return Spec{VPCCIDRs: pfx("198.18.0.0/16"), AgentPort: 7070, AgentSourceCIDRs: pfx("100.64.0.0/10"), Tailnet: tn}
	}
	if err := ok().Validate(); err != nil {
		t.Fatalf("valid tailnet spec: %v", err)
	}
	for _, tt := range badTailnet {
		t.Run(tt.name, func(t *testing.T) {
			s := ok()
			tt.mod(&s)
			err := s.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Validate() = %v, want one line containing %q", err, tt.want)
			}
		})
	}
}

func TestApplyRefusesBadTailnetAndChangesNothing(t *testing.T) {
	for _, tt := range badTailnet {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.spec.AgentPort = 7070
			f.spec.Tailnet = tailnetSpec()
			f.apply(t) // a host already applied, with a good tailnet
			rules, sys, writes := f.ipt.Save(), f.sys.Snapshot(), f.ipt.Writes
			tn := *f.spec.Tailnet
			f.spec.Tailnet = &tn
			tt.mod(&f.spec)
			res, err := f.dp.Apply(context.Background(), f.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Count(err.Error(), tt.want) != 1 {
				t.Fatalf("Apply = %v, want %q", err, tt.want)
			}
			if f.ipt.Writes != writes || f.ipt.Save() != rules || !maps.Equal(f.sys.Snapshot(), sys) || len(res.Changes) != 0 {
				t.Fatalf("Apply changed the host despite the error:\n%s", f.ipt.Save())
			}
			if _, err := f.dp.Verify(context.Background(), f.spec); err == nil {
				t.Fatal("Verify accepted it")
			}
		})
	}
	// The tailnet's device cannot be the egress interface found by the default route.
	f := newFixture(t)
	f.spec.Tailnet = tailnetSpec()
	f.spec.Tailnet.Interface = "eth0"
	if _, err := f.dp.Apply(context.Background(), f.spec); err == nil || !strings.Contains(err.Error(), "egress interface eth0 is the tailnet interface") || f.ipt.Writes != 0 {
		t.Fatalf("Apply = %v with %d writes", err, f.ipt.Writes)
	}
}

func TestTailnetApplyVerifyRepairRemove(t *testing.T) {
	f := newFixture(t)
	addForeign(t, f.ipt)
	f.spec.AgentPort = 7070
	f.spec.Tailnet = tailnetSpec()
	f.apply(t)
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify after Apply: %v", fs)
	}
	if res := f.apply(t); len(res.Changes) != 0 {
		t.Fatalf("second Apply changed: %v", res.Changes)
	}
	for _, c := range []struct{ parent, chain string }{{"INPUT", ChainPathIn}, {"OUTPUT", ChainPathOut}} {
		if got := parentLines(f.ipt, "mangle", c.parent); !slices.Equal(got, []string{ruleLine(c.parent, chainSpec{Name: c.chain}.Jump())}) {
			t.Fatalf("mangle %s: %q", c.parent, got)
		}
	}

	// Drift: the OUTPUT jump deleted, a foreign ACCEPT above the INPUT jump (a CONNMARK
	// like tailscaled's is fine), a drop rule deleted, the tailnet's masquerade deleted.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(f.ipt.Delete("mangle", "OUTPUT", chainSpec{Name: ChainPathOut}.Jump()...))
	must(f.ipt.Insert("mangle", "OUTPUT", 1, r("-m conntrack --ctstate NEW -j CONNMARK --save-mark")...))
	must(f.ipt.Insert("mangle", "INPUT", 1, r("-p udp -j ACCEPT")...))
	must(f.ipt.DeleteById("mangle", ChainPathIn, 1))
	nat := f.ipt.Rules("nat", ChainPostrouting)
	must(f.ipt.Delete("nat", ChainPostrouting, nat[0]...))
	got := kinds(f.verify(t))
	want := []string{"jump-bypassed HEADNAT-PATH-ININPUT", "jump-missing HEADNAT-PATH-OUTOUTPUT", "rule-missing HEADNAT-PATH-IN", "rule-missing HEADNAT-POSTROUTING"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %q\nwant %q", got, want)
	}
	f.apply(t)
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify after repair: %v", fs)
	}
	if got := parentLines(f.ipt, "mangle", "INPUT"); len(got) != 2 || got[0] != ruleLine("INPUT", chainSpec{Name: ChainPathIn}.Jump()) {
		t.Fatalf("mangle INPUT after repair: %q", got)
	}

	// Path diversity off: both chains are deviations, and Apply removes them.
	f.spec.Tailnet.AllowVPCDirect = true
	got = kinds(f.verify(t))
	want = []string{"chain-unexpected HEADNAT-PATH-IN", "chain-unexpected HEADNAT-PATH-OUT", "rule-unexpected HEADNAT-PATH-ININPUT", "rule-unexpected HEADNAT-PATH-OUTOUTPUT"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %q\nwant %q", got, want)
	}
	f.apply(t)
	if strings.Contains(f.ipt.Save(), "HEADNAT-PATH") {
		t.Fatalf("path chains left:\n%s", f.ipt.Save())
	}
	// No tailnet: its rules go from the other chains too.
	f.spec.Tailnet = nil
	f.apply(t)
	for _, l := range strings.Split(f.ipt.Save(), "\n") {
		if strings.Contains(l, "HEADNAT-") && (strings.Contains(l, "tailscale0") || strings.Contains(l, "100.64.0.0/10")) {
			t.Fatalf("tailnet rule left: %s", l)
		}
	}
	// Remove takes everything away, the path chains included.
	f.spec.Tailnet = tailnetSpec()
	f.apply(t)
	if _, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(f.ipt.Save(), "HEADNAT") {
		t.Fatalf("left after Remove:\n%s", f.ipt.Save())
	}
}

package dataplane

import (
	"slices"
	"strings"
	"testing"
)

func TestRuleLineRoundTrip(t *testing.T) {
	for _, args := range [][]string{
		{"-s", "198.18.0.0/16", "-o", "eth0", "-m", "comment", "--comment", "headnat: masquerade", "-j", "MASQUERADE"},
		{"-m", "comment", "--comment", "headnat", "-j", "HEADNAT-FORWARD"},
		{"-m", "comment", "--comment", `a "q" b\c it's`, "-j", "ACCEPT"},
		{"-m", "comment", "--comment", "headnat:x", "-j", "ACCEPT"},
		{"-m", "comment", "--comment", "", "-j", "ACCEPT"},
	} {
		line := ruleLine("C", args)
		got := parseRules("C", []string{line})
		if len(got) != 1 || !slices.Equal(got[0], args) {
			t.Errorf("round trip of %q via %q = %q", args, line, got)
		}
	}
}

// The quoting must be byte for byte what iptables prints, checked on iptables 1.8.9.
func TestRuleLineMatchesIptablesOutput(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-d", "198.18.0.0/15", "-m", "comment", "--comment", "headnat: no NAT within the VPC", "-j", "RETURN"},
			`-A C -d 198.18.0.0/15 -m comment --comment "headnat: no NAT within the VPC" -j RETURN`},
		{[]string{"-s", "198.18.0.0/15", "-o", "eth0", "-m", "comment", "--comment", "headnat", "-j", "MASQUERADE"},
			`-A C -s 198.18.0.0/15 -o eth0 -m comment --comment headnat -j MASQUERADE`},
		{[]string{"-m", "comment", "--comment", `a "q" b\c`, "-j", "MASQUERADE"},
			`-A C -m comment --comment "a \"q\" b\\c" -j MASQUERADE`},
	} {
		if got := ruleLine("C", tt.args); got != tt.want {
			t.Errorf("ruleLine = %s\nwant        %s", got, tt.want)
		}
	}
}

func TestParseRulesSkipsOtherLines(t *testing.T) {
	got := parseRules("FORWARD", []string{
		"-P FORWARD ACCEPT",
		"-N FORWARD",
		"-A FORWARD -j ts-forward",
		"-A OTHER -j ACCEPT",
		"",
	})
	if len(got) != 1 || strings.Join(got[0], " ") != "-j ts-forward" {
		t.Fatalf("parseRules = %q", got)
	}
}

func TestTarget(t *testing.T) {
	for args, want := range map[string]string{
		"-j HEADNAT-FORWARD":          "HEADNAT-FORWARD",
		"-i eth0 -g HEADNAT-FORWARD":  "HEADNAT-FORWARD",
		"-m comment --comment x":      "",
		"-j ACCEPT --jump-not-a-flag": "ACCEPT",
	} {
		if got := target(strings.Fields(args)); got != want {
			t.Errorf("target(%q) = %q, want %q", args, got, want)
		}
	}
}

func TestDesiredChainsNeverEmptyInterface(t *testing.T) {
	s := Spec{VPCCIDRs: pfx("198.18.0.0/16", "198.19.0.0/16"), ExtraSourceCIDRs: pfx("100.64.0.0/10"), AgentPort: 7070}
	for _, c := range desiredChains(s, hostView{iface: "eth0", inside: pfx("198.18.20.0/24")}) {
		for _, r := range c.Rules {
			for i, a := range r {
				if (a == "-o" || a == "-i") && (i+1 >= len(r) || r[i+1] != "eth0" && r[i+1] != "lo") {
					t.Fatalf("%s: rule with a bad interface: %q", c.Name, r)
				}
			}
		}
	}
}

func TestDesiredRules(t *testing.T) {
	s := Spec{VPCCIDRs: pfx("198.18.0.0/16"), ExtraSourceCIDRs: pfx("100.64.0.0/10")}
	var got []string
	chains, absent := wantedChains(s, &hostView{iface: "eth0"})
	if len(absent) != 3 || absent[0].Name != ChainInput || absent[1].Name != ChainPathIn || absent[2].Name != ChainPathOut {
		t.Fatalf("without an agent port and a tailnet, absent = %v", absent)
	}
	for _, c := range chains {
		got = append(got, "*"+c.Table+" "+ruleLine(c.Parent, c.Jump()))
		for _, r := range c.Rules {
			got = append(got, ruleLine(c.Name, r))
		}
	}
	want := []string{
		`*filter -A FORWARD -m comment --comment headnat -j HEADNAT-FORWARD`,
		`-A HEADNAT-FORWARD -o eth0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: established out" -j ACCEPT`,
		`-A HEADNAT-FORWARD -i eth0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: established in" -j ACCEPT`,
		`-A HEADNAT-FORWARD -o eth0 -m conntrack --ctstate INVALID -m comment --comment "headnat: invalid out" -j DROP`,
		`-A HEADNAT-FORWARD -i eth0 -m conntrack --ctstate INVALID -m comment --comment "headnat: invalid in" -j DROP`,
		`-A HEADNAT-FORWARD -s 198.18.0.0/16 -o eth0 -m conntrack --ctstate NEW -m comment --comment "headnat: allowed source out" -j ACCEPT`,
		`-A HEADNAT-FORWARD -s 100.64.0.0/10 -o eth0 -m conntrack --ctstate NEW -m comment --comment "headnat: allowed source out" -j ACCEPT`,
		`-A HEADNAT-FORWARD -d 198.18.0.0/16 -i eth0 -m comment --comment "headnat: no new connections into the VPC" -j DROP`,
		`-A HEADNAT-FORWARD -o eth0 -m comment --comment "headnat: not an open relay" -j DROP`,
		`*nat -A POSTROUTING -m comment --comment headnat -j HEADNAT-POSTROUTING`,
		`-A HEADNAT-POSTROUTING -d 198.18.0.0/16 -m comment --comment "headnat: no NAT within the VPC" -j RETURN`,
		`-A HEADNAT-POSTROUTING -s 198.18.0.0/16 -o eth0 -m comment --comment "headnat: masquerade" -j MASQUERADE`,
		`-A HEADNAT-POSTROUTING -s 100.64.0.0/10 -o eth0 -m comment --comment "headnat: masquerade" -j MASQUERADE`,
		`*mangle -A FORWARD -m comment --comment headnat -j HEADNAT-MANGLE-FWD`,
		`-A HEADNAT-MANGLE-FWD -o eth0 -p tcp -m tcp --tcp-flags SYN,RST SYN -m comment --comment "headnat: clamp MSS to PMTU" -j TCPMSS --clamp-mss-to-pmtu`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDesiredRulesAgentPortAndSpoofing(t *testing.T) {
	s := Spec{VPCCIDRs: pfx("198.18.0.0/16"), ExtraSourceCIDRs: pfx("100.64.0.0/10"),
		AgentPort: 7070, AgentSourceCIDRs: pfx("100.64.0.0/10", "203.0.113.0/24")}
	chains, absent := wantedChains(s, &hostView{iface: "eth0", inside: pfx("198.18.20.0/24")})
	if len(absent) != 2 || len(chains) != 4 {
		t.Fatalf("chains %d, absent %v", len(chains), absent)
	}
	lines := func(c chainSpec) []string {
		var out []string
		for _, r := range c.Rules {
			out = append(out, ruleLine(c.Name, r))
		}
		return out
	}
	in := chains[3]
	if in.Table != "filter" || in.Parent != "INPUT" || in.Name != ChainInput {
		t.Fatalf("input chain %+v", in)
	}
	want := []string{
		`-A HEADNAT-INPUT -p tcp -m tcp --dport 7070 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment "headnat: agent port, replies" -j ACCEPT`,
		`-A HEADNAT-INPUT -i lo -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from this host" -j ACCEPT`,
		`-A HEADNAT-INPUT -s 198.18.0.0/16 -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from an allowed source" -j ACCEPT`,
		`-A HEADNAT-INPUT -s 100.64.0.0/10 -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from an allowed source" -j ACCEPT`,
		`-A HEADNAT-INPUT -s 203.0.113.0/24 -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port from an allowed source" -j ACCEPT`,
		`-A HEADNAT-INPUT -p tcp -m tcp --dport 7070 -m comment --comment "headnat: agent port closed to other sources" -j DROP`,
	}
	if got := lines(in); !slices.Equal(got, want) {
		t.Fatalf("input rules:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := lines(chains[0])[0]; got != `-A HEADNAT-FORWARD -s 198.18.20.0/24 -i eth0 -m comment --comment "headnat: VPC source on the egress side (spoofed)" -j DROP` {
		t.Fatalf("first forward rule: %s", got)
	}
	// The agent-only sources are neither forwarded nor masqueraded.
	for _, c := range chains[:3] {
		for _, l := range lines(c) {
			if strings.Contains(l, "203.0.113.0/24") {
				t.Fatalf("agent source in %s: %s", c.Name, l)
			}
		}
	}
}

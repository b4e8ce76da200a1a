package dataplane

import (
	"slices"
	"strings"
	"testing"
)

// parentLines is the built-in chain as `iptables -S` lines, without the policy.
func parentLines(ipt *FakeIPTables, table, chain string) []string {
	var out []string
	for _, r := range ipt.Rules(table, chain) {
		out = append(out, ruleLine(chain, r))
	}
	return out
}

func TestJumpBelowAForeignAcceptIsADeviationAndApplyMovesIt(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	jump := ruleLine("FORWARD", chainSpec{Name: ChainForward}.Jump())
	accept := "-A FORWARD -s 198.51.100.0/24 -j ACCEPT"
	if err := f.ipt.Insert("filter", "FORWARD", 1, r("-s 198.51.100.0/24 -j ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	fs := f.verify(t)
	if len(fs) != 1 || fs[0].Kind != KindJumpBypassed || fs[0].Got != accept || !strings.Contains(fs[0].String(), accept) {
		t.Fatalf("findings %v", fs)
	}
	f.apply(t)
	if got := parentLines(f.ipt, "filter", "FORWARD"); !slices.Equal(got, []string{jump, accept}) {
		t.Fatalf("FORWARD after Apply: %q", got)
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify after Apply: %v", fs)
	}
}

func TestBypassThroughUserChainsAndReturn(t *testing.T) {
	for _, tt := range []struct {
		name   string
		chains map[string][]string // user chains to create, with their rules
		above  string              // the rule put above headnat's jump
		bypass bool
	}{
		{"accept", nil, "-i eth1 -j ACCEPT", true},
		{"drop", nil, "-s 198.51.100.0/24 -j DROP", false},
		{"log", nil, "-j LOG", false},
		{"return to an accept policy", nil, "-s 198.51.100.0/24 -j RETURN", true},
		{"chain that accepts", map[string][]string{"DOCKER-FORWARD": {"-o docker0 -j ACCEPT"}}, "-j DOCKER-FORWARD", true},
		{"chain that only returns", map[string][]string{"DOCKER-USER": {"-j RETURN"}}, "-j DOCKER-USER", false},
		{"nested chain that accepts", map[string][]string{"A": {"-j B"}, "B": {"-j ACCEPT"}}, "-j A", true},
		{"goto falls through to the policy", map[string][]string{"G": {"-j LOG"}}, "-g G", true},
		{"tailscaled's jump", map[string][]string{"ts-forward": {"-o tailscale0 -j ACCEPT"}}, "-j ts-forward", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.apply(t)
			// Chains first, in an order where a jump's target exists.
			for _, name := range []string{"B", "A", "G", "DOCKER-FORWARD", "DOCKER-USER", "ts-forward"} {
				rules, ok := tt.chains[name]
				if !ok {
					continue
				}
				if err := f.ipt.NewChain("filter", name); err != nil {
					t.Fatal(err)
				}
				for _, x := range rules {
					if err := f.ipt.Append("filter", name, r(x)...); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := f.ipt.Insert("filter", "FORWARD", 1, r(tt.above)...); err != nil {
				t.Fatal(err)
			}
			fs := f.verify(t)
			if tt.bypass != (len(fs) == 1 && fs[0].Kind == KindJumpBypassed) || !tt.bypass && len(fs) != 0 {
				t.Fatalf("findings %v, want a bypass: %t", fs, tt.bypass)
			}
			res := f.apply(t)
			if !tt.bypass && len(res.Changes) != 0 {
				t.Fatalf("Apply moved the jump below a rule that does not accept: %v", res.Changes)
			}
			if fs := f.verify(t); len(fs) != 0 {
				t.Fatalf("Verify after Apply: %v", fs)
			}
		})
	}
}

func TestDuplicateJumpKeepsTheTopCopy(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	// jump, foreign ACCEPT, jump: deleting by spec would drop the top copy.
	jumpArgs := chainSpec{Name: ChainForward}.Jump()
	if err := f.ipt.Append("filter", "FORWARD", r("-j ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.Append("filter", "FORWARD", jumpArgs...); err != nil {
		t.Fatal(err)
	}
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"jump-duplicate HEADNAT-FORWARDFORWARD"}) {
		t.Fatalf("findings %q", got)
	}
	f.apply(t)
	want := []string{ruleLine("FORWARD", jumpArgs), "-A FORWARD -j ACCEPT"}
	if got := parentLines(f.ipt, "filter", "FORWARD"); !slices.Equal(got, want) {
		t.Fatalf("FORWARD after Apply: %q", got)
	}
}

func TestKeepJumpPosition(t *testing.T) {
	f := newFixture(t)
	f.spec.KeepJumpPosition = true
	if err := f.ipt.Append("filter", "FORWARD", r("-s 198.51.100.0/24 -j ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	f.apply(t) // a new jump still goes to the top
	if err := f.ipt.Insert("filter", "FORWARD", 1, r("-i eth1 -j ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	before := f.ipt.Save()
	res := f.apply(t)
	if len(res.Changes) != 0 || f.ipt.Save() != before {
		t.Fatalf("Apply moved the jump despite KeepJumpPosition: %v", res.Changes)
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "-A FORWARD -i eth1 -j ACCEPT") }) {
		t.Fatalf("no note naming the rule above the jump: %q", res.Notes)
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify with KeepJumpPosition: %v", fs)
	}
	f.spec.KeepJumpPosition = false
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"jump-bypassed HEADNAT-FORWARDFORWARD"}) {
		t.Fatalf("findings without KeepJumpPosition %q", got)
	}
}

func TestJumpGoesBelowTailscaledsJump(t *testing.T) {
	f := newFixture(t)
	addForeign(t, f.ipt)
	// ts-forward leads FORWARD, then the operator's ACCEPT.
	if err := f.ipt.Delete("filter", "FORWARD", r("-j ts-forward")...); err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.Insert("filter", "FORWARD", 1, r("-j ts-forward")...); err != nil {
		t.Fatal(err)
	}
	f.apply(t)
	got := parentLines(f.ipt, "filter", "FORWARD")
	if len(got) < 2 || got[0] != "-A FORWARD -j ts-forward" || got[1] != ruleLine("FORWARD", chainSpec{Name: ChainForward}.Jump()) {
		t.Fatalf("FORWARD: %q", got)
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify: %v", fs)
	}
}

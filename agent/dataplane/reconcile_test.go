package dataplane

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func r(s string) []string { return strings.Fields(s) }

// simulate runs ops on a copy of cur, failing on any invalid position or a delete of a rule
// other than the one planned, and checks that a rule of want, once present, never goes
// missing.
func simulate(t *testing.T, cur, want [][]string, ops []chainOp) [][]string {
	t.Helper()
	live := slices.Clone(cur)
	present := func(rule []string) bool {
		return slices.ContainsFunc(live, func(x []string) bool { return slices.Equal(x, rule) })
	}
	for _, op := range ops {
		before := map[string]bool{}
		for _, w := range want {
			before[strings.Join(w, " ")] = present(w)
		}
		if op.insert {
			if op.pos < 1 || op.pos > len(live)+1 {
				t.Fatalf("insert at %d into %d rules", op.pos, len(live))
			}
			live = slices.Insert(live, op.pos-1, op.rule)
		} else {
			if op.pos < 1 || op.pos > len(live) {
				t.Fatalf("delete #%d of %d rules", op.pos, len(live))
			}
			if !slices.Equal(live[op.pos-1], op.rule) {
				t.Fatalf("delete #%d is %q, planned %q", op.pos, live[op.pos-1], op.rule)
			}
			live = slices.Delete(live, op.pos-1, op.pos)
		}
		for _, w := range want {
			if before[strings.Join(w, " ")] && !present(w) {
				t.Fatalf("op %+v removed the last copy of wanted rule %q", op, w)
			}
		}
	}
	return live
}

func TestPlanChain(t *testing.T) {
	a, b, c, x := r("-j A"), r("-j B"), r("-j C"), r("-j X")
	tests := []struct {
		name      string
		cur, want [][]string
		ops       int
	}{
		{"empty to full", nil, [][]string{a, b, c}, 3},
		{"already right", [][]string{a, b, c}, [][]string{a, b, c}, 0},
		{"missing middle", [][]string{a, c}, [][]string{a, b, c}, 1},
		{"stale extra", [][]string{a, x, b, c}, [][]string{a, b, c}, 1},
		{"duplicates", [][]string{a, a, b, b, c, c}, [][]string{a, b, c}, 3},
		{"swapped", [][]string{b, a}, [][]string{a, b}, 2},
		{"reversed", [][]string{c, b, a}, [][]string{a, b, c}, 4},
		{"full to empty", [][]string{a, b}, nil, 2},
		{"wanted duplicate", [][]string{a}, [][]string{a, a}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ops := planChain(tt.cur, tt.want)
			got := simulate(t, tt.cur, tt.want, ops)
			if !slices.EqualFunc(got, tt.want, slices.Equal) {
				t.Fatalf("result %q, want %q", got, tt.want)
			}
			if len(ops) != tt.ops {
				t.Fatalf("%d ops, want %d: %+v", len(ops), tt.ops, ops)
			}
			// Inserts come before deletes.
			seenDelete := false
			for _, op := range ops {
				if !op.insert {
					seenDelete = true
				} else if seenDelete {
					t.Fatalf("insert after a delete: %+v", ops)
				}
			}
		})
	}
}

func TestPlanChainRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pool := [][]string{r("-j A"), r("-j B"), r("-j C"), r("-j D"), r("-j X"), r("-j Y")}
	for i := range 3000 {
		var cur, want [][]string
		for range rng.IntN(9) {
			cur = append(cur, pool[rng.IntN(len(pool))])
		}
		for _, w := range pool[:4] {
			if rng.IntN(4) > 0 {
				want = append(want, w)
			}
		}
		rng.Shuffle(len(want), func(i, j int) { want[i], want[j] = want[j], want[i] })
		got := simulate(t, cur, want, planChain(cur, want))
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("case %d: %q -> %q, want %q", i, cur, got, want)
		}
	}
}

// foreignRules are rules of other owners the fake starts with, per table and chain.
var foreignRules = []struct{ table, chain, rule string }{
	{"filter", "FORWARD", "-s 198.18.99.0/24 -m comment --comment operator -j ACCEPT"},
	{"filter", "FORWARD", "-j ts-forward"},
	{"filter", "FORWARD", "-j DOCKER-USER"},
	{"filter", "INPUT", "-j ts-input"},
	{"filter", "INPUT", "-i lo -j ACCEPT"},
	{"filter", "ts-input", "-i tailscale0 -j ACCEPT"},
	{"filter", "ts-forward", "-i tailscale0 -j MARK --set-xmark 0x40000/0xff0000"},
	{"filter", "ts-forward", "-o tailscale0 -j ACCEPT"},
	{"filter", "DOCKER-USER", "-j RETURN"},
	{"nat", "POSTROUTING", "-j ts-postrouting"},
	{"nat", "POSTROUTING", "-s 198.18.98.0/24 -o eth0 -j MASQUERADE"},
	{"nat", "ts-postrouting", "-m mark --mark 0x40000/0xff0000 -j MASQUERADE"},
	{"mangle", "FORWARD", "-o eth0 -j MARK --set-xmark 0x1/0x1"},
}

func newFakes() (*FakeIPTables, *FakeSysctl, *FakeLinks) {
	return NewFakeIPTables(), NewFakeSysctl("eth0", "eth1"),
		&FakeLinks{Default: "eth0", Links: map[string]Link{
			"eth0": {Name: "eth0", AdminUp: true, OperState: "up"},
			"eth1": {Name: "eth1", AdminUp: true, OperState: "up"},
			"eth2": {Name: "eth2", AdminUp: false, OperState: "down"},
		}}
}

func newTestDataplane(t testing.TB, ipt IPTables, sys Sysctl, links Links) *Dataplane {
	t.Helper()
	return NewWith(Deps{IPTables: ipt, Sysctl: sys, Links: links,
		MemTotal: func() (uint64, error) { return 1 << 30, nil }})
}

func addForeign(t testing.TB, ipt *FakeIPTables) {
	t.Helper()
	for _, c := range []struct{ table, chain string }{{"filter", "ts-forward"}, {"filter", "ts-input"}, {"filter", "DOCKER-USER"}, {"nat", "ts-postrouting"}} {
		if err := ipt.NewChain(c.table, c.chain); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range foreignRules {
		if err := ipt.Append(f.table, f.chain, r(f.rule)...); err != nil {
			t.Fatal(err)
		}
	}
}

// foreignView is the state with every rule that is headnat's (in an owned chain, or
// targeting one) left out.
func foreignView(ipt *FakeIPTables) string {
	var keep []string
	for _, l := range strings.Split(ipt.Save(), "\n") {
		if !strings.Contains(l, "HEADNAT-") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// TestApplyConvergesFromRandomStates starts from many random partial, duplicated,
// reordered and stale states of headnat's chains mixed with foreign rules, and checks that
// one Apply converges to exactly the desired rules with each jump once and above any
// foreign rule that accepts, that foreign rules are untouched, that a wanted rule once
// present never disappears during the Apply, nor the last jump to an owned chain, and that a
// second Apply changes nothing.
func TestApplyConvergesFromRandomStates(t *testing.T) {
	spec := Spec{VPCCIDRs: pfx("198.18.0.0/16", "198.19.0.0/24"), ExtraSourceCIDRs: pfx("198.51.100.0/24"), AgentPort: 7070,
		Tailnet: &TailnetSpec{Interface: "tailscale0", CIDR: netip.MustParsePrefix("100.64.0.0/10"), Routes: pfx("203.0.113.0/24"), UDPPort: DefaultTailnetUDPPort}}
	want, _ := wantedChains(spec, &hostView{iface: "eth0"})
	stale, _ := wantedChains(Spec{VPCCIDRs: pfx("198.18.0.0/15"), AgentPort: 7071, // an older spec
		Tailnet: &TailnetSpec{Interface: "ts1", CIDR: netip.MustParsePrefix("100.64.0.0/16"), UDPPort: 41642}}, &hostView{iface: "eth1"})
	if len(want) != 6 || len(stale) != 6 {
		t.Fatalf("chains: %d and %d", len(want), len(stale))
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for i := range 400 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			ipt, sys, links := newFakes()
			addForeign(t, ipt)
			for ci, c := range want {
				if rng.IntN(5) == 0 {
					continue // chain absent
				}
				if err := ipt.NewChain(c.Table, c.Name); err != nil {
					t.Fatal(err)
				}
				var pool [][]string
				pool = append(pool, c.Rules...)
				pool = append(pool, stale[ci].Rules...)
				pool = append(pool, r("-j ACCEPT"))
				for range rng.IntN(2 * len(pool)) {
					if err := ipt.Append(c.Table, c.Name, pool[rng.IntN(len(pool))]...); err != nil {
						t.Fatal(err)
					}
				}
				// Jumps: none, one, several, some non-canonical, anywhere in the parent.
				for range rng.IntN(3) {
					j := c.Jump()
					if rng.IntN(3) == 0 {
						j = []string{"-i", "eth1", "-j", c.Name}
					}
					n := len(ipt.Rules(c.Table, c.Parent))
					if err := ipt.Insert(c.Table, c.Parent, 1+rng.IntN(n+1), j...); err != nil {
						t.Fatal(err)
					}
				}
			}
			foreignBefore := foreignView(ipt)

			// Every wanted rule present at some point must stay present, and so must a jump
			// to each owned chain.
			seen := map[string]bool{}
			markSeen := func() {
				for _, c := range want {
					for _, x := range ipt.Rules(c.Table, c.Name) {
						seen[c.Name+strings.Join(x, " ")] = true
					}
					if slices.ContainsFunc(ipt.Rules(c.Table, c.Parent), func(x []string) bool { return target(x) == c.Name }) {
						seen["jump "+c.Name] = true
					}
				}
			}
			markSeen()
			ipt.AfterWrite = func(op string) error {
				for _, c := range want {
					got := ipt.Rules(c.Table, c.Name)
					for _, w := range c.Rules {
						if !slices.ContainsFunc(got, func(x []string) bool { return slices.Equal(x, w) }) && seen[c.Name+strings.Join(w, " ")] {
							return fmt.Errorf("after %q: wanted rule %q went missing", op, w)
						}
					}
					if seen["jump "+c.Name] && !slices.ContainsFunc(ipt.Rules(c.Table, c.Parent), func(x []string) bool { return target(x) == c.Name }) {
						return fmt.Errorf("after %q: no jump to %s left", op, c.Name)
					}
				}
				markSeen()
				return nil
			}

			dp := newTestDataplane(t, ipt, sys, links)
			spec := spec
			spec.StatePath = filepath.Join(t.TempDir(), "state.json")
			if _, err := dp.Apply(context.Background(), spec); err != nil {
				t.Fatalf("Apply: %v\nstate:\n%s", err, ipt.Save())
			}
			for _, c := range want {
				if got := ipt.Rules(c.Table, c.Name); !slices.EqualFunc(got, c.Rules, slices.Equal) {
					t.Fatalf("%s = %q, want %q", c.Name, got, c.Rules)
				}
				n := 0
				for _, x := range ipt.Rules(c.Table, c.Parent) {
					if target(x) == c.Name {
						n++
						if !slices.Equal(x, c.Jump()) {
							t.Fatalf("stale jump left: %q", x)
						}
					}
				}
				if n != 1 {
					t.Fatalf("%d jumps to %s", n, c.Name)
				}
			}
			if got := foreignView(ipt); got != foreignBefore {
				t.Fatalf("foreign rules changed:\n%s\nwant:\n%s", got, foreignBefore)
			}
			if f, err := dp.Verify(context.Background(), spec); err != nil || len(f) != 0 {
				t.Fatalf("Verify after Apply = %v, %v", f, err)
			}
			ipt.AfterWrite = nil
			writes := ipt.Writes
			res, err := dp.Apply(context.Background(), spec)
			if err != nil || len(res.Changes) != 0 || ipt.Writes != writes {
				t.Fatalf("second Apply: %v changes %v", err, res.Changes)
			}
		})
	}
}

package dataplane

import (
	"fmt"
	"strings"
)

// Finding kinds reported by Verify.
const (
	KindSysctl           = "sysctl"
	KindChainMissing     = "chain-missing"
	KindChainUnexpected  = "chain-unexpected"
	KindRuleMissing      = "rule-missing"
	KindRuleDuplicate    = "rule-duplicate"
	KindRuleUnexpected   = "rule-unexpected"
	KindRuleOrder        = "rule-order"
	KindJumpMissing      = "jump-missing"
	KindJumpDuplicate    = "jump-duplicate"
	KindJumpBypassed     = "jump-bypassed"
	KindInterfaceMissing = "interface-missing"
	KindInterfaceDown    = "interface-down"
)

// Finding is one deviation of the host from the spec.
type Finding struct {
	Kind  string // one of the Kind* constants
	Table string // iptables table, for rule and chain kinds
	Chain string
	Key   string // sysctl key or interface name
	Want  string
	Got   string
}

func (f Finding) String() string {
	where := f.Table + " " + f.Chain
	switch f.Kind {
	case KindSysctl:
		return fmt.Sprintf("sysctl %s is %q, want %q", f.Key, f.Got, f.Want)
	case KindChainMissing:
		return fmt.Sprintf("chain-missing: %s does not exist", where)
	case KindChainUnexpected:
		return fmt.Sprintf("chain-unexpected: %s exists, but the spec wants none", where)
	case KindRuleMissing:
		return fmt.Sprintf("rule-missing in %s: %s", where, f.Want)
	case KindRuleDuplicate:
		return fmt.Sprintf("rule-duplicate in %s (%s): %s", where, f.Got, f.Want)
	case KindRuleUnexpected:
		return fmt.Sprintf("rule-unexpected in %s: %s", where, f.Got)
	case KindRuleOrder:
		return fmt.Sprintf("rule-order in %s: rule %s, want %s", where, f.Got, f.Want)
	case KindJumpMissing:
		return fmt.Sprintf("jump-missing: %s has no jump to %s: %s", where, f.Key, f.Want)
	case KindJumpDuplicate:
		return fmt.Sprintf("jump-duplicate: %s jumps to %s %s", where, f.Key, f.Got)
	case KindJumpBypassed:
		return fmt.Sprintf("jump-bypassed: in %s, a foreign rule above the jump to %s accepts traffic headnat never sees: %s", where, f.Key, f.Got)
	case KindInterfaceMissing:
		return fmt.Sprintf("interface-missing: egress interface %s: %s", f.Key, f.Got)
	case KindInterfaceDown:
		return fmt.Sprintf("interface-down: egress interface %s is %s", f.Key, f.Got)
	}
	return fmt.Sprintf("%s: table=%s chain=%s key=%s want=%q got=%q", f.Kind, f.Table, f.Chain, f.Key, f.Want, f.Got)
}

// Deviations says "1 deviation" or "n deviations".
func Deviations(n int) string {
	if n == 1 {
		return "1 deviation"
	}
	return fmt.Sprintf("%d deviations", n)
}

// Change kinds reported by Apply and Remove.
const (
	ChangeSysctl        = "sysctl"
	ChangeChainCreate   = "chain-create"
	ChangeChainDelete   = "chain-delete"
	ChangeRuleInsert    = "rule-insert"
	ChangeRuleDelete    = "rule-delete"
	ChangeJumpInsert    = "jump-insert"
	ChangeJumpDelete    = "jump-delete"
	ChangeSysctlRestore = "sysctl-restore"
)

// Change is one write made to the host.
type Change struct {
	Kind  string
	Table string
	Chain string
	Pos   int    // 1-based rule position, for inserts and deletes by position
	Rule  string // as `iptables -S` prints it
	Key   string // sysctl key
	From  string
	To    string
}

func (c Change) String() string {
	switch c.Kind {
	case ChangeSysctl, ChangeSysctlRestore:
		return fmt.Sprintf("%s %s: %q -> %q", c.Kind, c.Key, c.From, c.To)
	case ChangeChainCreate, ChangeChainDelete:
		return fmt.Sprintf("%s %s %s", c.Kind, c.Table, c.Chain)
	}
	if c.Pos > 0 {
		return fmt.Sprintf("%s %s %s #%d: %s", c.Kind, c.Table, c.Chain, c.Pos, c.Rule)
	}
	return fmt.Sprintf("%s %s %s: %s", c.Kind, c.Table, c.Chain, c.Rule)
}

// Result is what Apply or Remove did.
type Result struct {
	Interface string   // the egress interface used (Apply)
	Changes   []Change // in the order they were made
	Notes     []string // things left alone on purpose, and why
}

// Plan is the state Apply would converge to, read without changing anything.
type Plan struct {
	Interface string
	Sysctls   []SysctlPlan
	Chains    []ChainPlan
	// Findings is how the host differs from the plan now (what Apply would change).
	Findings []Finding
}

// SysctlPlan is one kernel parameter Apply sets.
type SysctlPlan struct {
	Key     string
	Want    string
	Current string
	Note    string // e.g. not settable in this network namespace
}

// ChainPlan is one owned chain with its rules as `iptables -S` prints them.
type ChainPlan struct {
	Table  string
	Parent string
	Chain  string
	Jump   string // the rule in Parent, kept at the top
	Below  string // a foreign chain whose jump may stand above it (tailscaled's), or ""
	Rules  []string
}

// String renders the plan as a readable listing: sysctls, then per table the chain in
// `iptables -S` form.
func (p Plan) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "egress interface: %s\n", p.Interface)
	b.WriteString("sysctls:\n")
	for _, s := range p.Sysctls {
		fmt.Fprintf(&b, "  %s = %s", s.Key, s.Want)
		if s.Current != s.Want {
			fmt.Fprintf(&b, " (now %s)", s.Current)
		}
		if s.Note != "" {
			fmt.Fprintf(&b, " (%s)", s.Note)
		}
		b.WriteByte('\n')
	}
	for _, c := range p.Chains {
		fmt.Fprintf(&b, "iptables -t %s:\n", c.Table)
		fmt.Fprintf(&b, "  -N %s\n", c.Chain)
		for _, r := range c.Rules {
			fmt.Fprintf(&b, "  %s\n", r)
		}
		if c.Below != "" {
			fmt.Fprintf(&b, "  %s (at the top, below -j %s if that leads)\n", c.Jump, c.Below)
		} else {
			fmt.Fprintf(&b, "  %s (at the top when absent)\n", c.Jump)
		}
	}
	if len(p.Findings) == 0 {
		b.WriteString("the host already matches: apply would change nothing\n")
	} else {
		b.WriteString("apply would fix:\n")
		for _, f := range p.Findings {
			fmt.Fprintf(&b, "  %s\n", f)
		}
	}
	return b.String()
}

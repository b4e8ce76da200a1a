package dataplane

import (
	"context"
	"fmt"
	"slices"
)

// topPosition is where the jump belongs in the built-in chain with rules: position 1, or
// right below tailscaled's jumps when they lead the chain.
func (c chainSpec) topPosition(rules [][]string) int {
	n := 0
	for n < len(rules) && c.MayStandAbove != "" && target(rules[n]) == c.MayStandAbove {
		n++
	}
	return n + 1
}

// reconcileJump makes the built-in chain jump to the owned chain exactly once, at the top:
// it inserts the jump when absent, keeps the topmost copy when there are several, moves it
// to the top when a foreign rule above it accepts traffic (a guarded chain, unless
// keepPos), and deletes any other rule of the built-in chain that targets the owned chain.
// Writes there go by rule spec or insert position, never delete by position: others write
// to built-in chains concurrently.
func (d *Dataplane) reconcileJump(ctx context.Context, c chainSpec, keepPos bool, res *Result) error {
	ipt := d.deps.IPTables
	lines, err := ipt.List(c.Table, c.Parent)
	if err != nil {
		return fmt.Errorf("list %s %s: %w", c.Table, c.Parent, err)
	}
	rules := parseRules(c.Parent, lines)
	jump := c.Jump()
	var at []int // 1-based positions of the jump
	var stale [][]string
	for i, r := range rules {
		switch {
		case slices.Equal(r, jump):
			at = append(at, i+1)
		case target(r) == c.Name:
			stale = append(stale, r)
		}
	}
	top := c.topPosition(rules)
	pos := 0 // where the jump is put; 0 leaves it where it is
	switch {
	case len(at) == 0:
		if err := d.insertJump(c, top, jump, res); err != nil {
			return err
		}
	case c.Guarded:
		bypass, err := d.bypassing(c, lines, rules[:at[0]-1])
		if err != nil {
			return err
		}
		if len(bypass) > 0 && keepPos {
			for _, b := range bypass {
				d.note(res, fmt.Sprintf("%s %s: %q stands above headnat's jump and accepts traffic %s never sees; left there (keep jump position)", c.Table, c.Parent, b, c.Name))
			}
			bypass = nil
		}
		if len(bypass) > 0 {
			pos = top
		}
	}
	if pos == 0 && len(at) > 1 {
		pos = at[0]
	}
	if pos > 0 {
		// iptables deletes by spec the first match, so the copy to keep cannot be told from
		// the others: hold a second jump at pos, delete every copy, put the jump back at pos
		// above the holder, then delete the holder. The chain never lacks the jump at pos.
		moving := c.movingJump()
		if err := d.insertJump(c, pos, moving, res); err != nil {
			return err
		}
		for range at {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := d.deleteJump(c, jump, "delete jump", res); err != nil {
				return err
			}
		}
		if err := d.insertJump(c, pos, jump, res); err != nil {
			return err
		}
		stale = append(stale, moving)
	}
	for _, r := range stale {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := d.deleteJump(c, r, "delete stale jump", res); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dataplane) insertJump(c chainSpec, pos int, rule []string, res *Result) error {
	line := ruleLine(c.Parent, rule)
	if err := d.deps.IPTables.Insert(c.Table, c.Parent, pos, rule...); err != nil {
		return fmt.Errorf("insert jump %s %s at %d %q: %w", c.Table, c.Parent, pos, line, err)
	}
	d.record(res, Change{Kind: ChangeJumpInsert, Table: c.Table, Chain: c.Parent, Pos: pos, Rule: line})
	return nil
}

func (d *Dataplane) deleteJump(c chainSpec, rule []string, what string, res *Result) error {
	line := ruleLine(c.Parent, rule)
	if err := d.deps.IPTables.Delete(c.Table, c.Parent, rule...); err != nil {
		return fmt.Errorf("%s %s %s %q: %w", what, c.Table, c.Parent, line, err)
	}
	d.record(res, Change{Kind: ChangeJumpDelete, Table: c.Table, Chain: c.Parent, Rule: line})
	return nil
}

// Targets that are never a user chain: no need to ask iptables.
var extensionTargets = map[string]bool{
	"DROP": true, "REJECT": true, "LOG": true, "NFLOG": true, "ULOG": true, "MARK": true,
	"CONNMARK": true, "TCPMSS": true, "CT": true, "NOTRACK": true, "TRACE": true,
	"CLASSIFY": true, "DSCP": true, "TOS": true, "TTL": true, "AUDIT": true, "SET": true,
	"NFQUEUE": true, "QUEUE": true, "CHECKSUM": true, "CONNSECMARK": true, "SECMARK": true,
}

// maxChainDepth bounds the walk through user chains (iptables itself refuses loops).
const maxChainDepth = 16

// bypassing returns, as `iptables -S` lines, the rules of above (the built-in chain's rules
// standing above headnat's jump) that can accept a packet before the owned chain sees it:
// an ACCEPT, a RETURN to an ACCEPT policy, or a jump or goto to a user chain that can.
// Matches are not evaluated: a rule that can accept something is reported. tailscaled's
// jump (c.MayStandAbove) and stale jumps to the owned chain itself are not counted.
func (d *Dataplane) bypassing(c chainSpec, parentLines []string, above [][]string) ([]string, error) {
	policyAccept := slices.Contains(parentLines, "-P "+c.Parent+" ACCEPT")
	memo := map[string]bool{}
	var out []string
	for _, r := range above {
		t := target(r)
		if t == c.Name || (c.MayStandAbove != "" && t == c.MayStandAbove) {
			continue
		}
		ok, err := d.accepts(c.Table, r, policyAccept, memo, 0)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, ruleLine(c.Parent, r))
		}
	}
	return out, nil
}

// accepts reports whether rule r, in a chain at depth below the built-in one (0: the
// built-in chain, whose policy is policyAccept), can end in ACCEPT.
func (d *Dataplane) accepts(table string, r []string, policyAccept bool, memo map[string]bool, depth int) (bool, error) {
	t := target(r)
	switch {
	case t == "ACCEPT":
		return true, nil
	case t == "RETURN":
		return depth == 0 && policyAccept, nil // RETURN from a built-in chain applies its policy
	case t == "" || extensionTargets[t]:
		return false, nil
	}
	if depth >= maxChainDepth {
		return true, nil // too deep to tell: count it
	}
	exists, err := d.deps.IPTables.ChainExists(table, t)
	if err != nil {
		return false, fmt.Errorf("check chain %s %s: %w", table, t, err)
	}
	if !exists {
		return false, nil // a target extension
	}
	if depth == 0 && policyAccept && isGoto(r) {
		return true, nil // falling off the end of a chain gone to applies the built-in policy
	}
	if v, ok := memo[t]; ok {
		return v, nil
	}
	memo[t] = false
	lines, err := d.deps.IPTables.List(table, t)
	if err != nil {
		return false, fmt.Errorf("list %s %s: %w", table, t, err)
	}
	for _, sub := range parseRules(t, lines) {
		ok, err := d.accepts(table, sub, false, memo, depth+1)
		if err != nil {
			return false, err
		}
		if ok {
			memo[t] = true
			return true, nil
		}
	}
	return false, nil
}

func isGoto(args []string) bool {
	for _, a := range args {
		if a == "-g" || a == "--goto" {
			return true
		}
	}
	return false
}

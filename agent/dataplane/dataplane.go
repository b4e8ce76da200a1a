// Package dataplane turns the host into a NAT router and keeps it one: IPv4 forwarding and
// related sysctls, and iptables rules confined to chains headnat owns (HEADNAT-FORWARD and,
// guarding the agent's port, HEADNAT-INPUT in filter, HEADNAT-POSTROUTING in nat,
// HEADNAT-MANGLE-FWD in mangle and, with a tailnet, HEADNAT-PATH-IN and HEADNAT-PATH-OUT
// in mangle), each entered by one jump at the top of its built-in chain. With a tailnet the
// host is also its subnet router into the VPC.
// Apply converges the host to a Spec and reports what it changed, Verify lists every
// deviation, Remove undoes exactly what Apply did.
// Rules of other owners (tailscaled's ts-* chains, Docker's, the operator's) are never
// touched.
package dataplane

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// Dataplane applies, verifies and removes a Spec on one host.
type Dataplane struct {
	deps Deps
	log  *slog.Logger
}

// NewWith builds a Dataplane over the given side effects (tests pass fakes).
func NewWith(deps Deps) *Dataplane {
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dataplane{deps: deps, log: log}
}

// lock takes the host-wide lock: one Apply or Remove at a time, whatever the state path.
func (d *Dataplane) lock() (release func(deleteFile bool), _ error) {
	if d.deps.Lock == nil {
		return func(bool) {}, nil
	}
	path := d.deps.LockPath
	if path == "" {
		path = DefaultLockPath
	}
	release, err := d.deps.Lock(path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return release, nil
}

// view reads what the rules depend on besides the spec: the routes that tell a
// two-interface NAT from a single-interface one.
func (d *Dataplane) view(spec Spec, iface string) (hostView, error) {
	routes, err := d.deps.Links.Routes()
	if err != nil {
		return hostView{}, fmt.Errorf("list routes: %w", err)
	}
	return hostView{iface: iface, inside: insidePrefixes(spec.VPCCIDRs, routes, iface)}, nil
}

// resolveInterface finds the egress interface and refuses one that is missing or down: no
// rule is ever written with an empty or unknown interface.
func (d *Dataplane) resolveInterface(name string) (string, error) {
	if name == "" {
		n, err := d.deps.Links.DefaultRouteInterface()
		if err != nil {
			return "", fmt.Errorf("egress interface from the default route: %w (set the egress interface explicitly)", err)
		}
		if n == "" {
			return "", errors.New("egress interface from the default route: the default route names no interface")
		}
		if err := validateInterfaceName("egress interface", n); err != nil {
			return "", fmt.Errorf("default route: %w", err)
		}
		name = n
	}
	l, err := d.deps.Links.Link(name)
	if errors.Is(err, ErrLinkNotFound) {
		return "", fmt.Errorf("egress interface %q does not exist", name)
	}
	if err != nil {
		return "", fmt.Errorf("egress interface %q: %w", name, err)
	}
	if !l.Up() {
		return "", fmt.Errorf("egress interface %s is down (admin up: %t, oper state: %s)", name, l.AdminUp, l.OperState)
	}
	return name, nil
}

// resolveInterfaces is resolveInterface, refusing an egress interface that is the tailnet's
// (a default route through tailscaled's device).
func (d *Dataplane) resolveInterfaces(spec Spec) (string, error) {
	iface, err := d.resolveInterface(spec.EgressInterface)
	if err != nil {
		return "", err
	}
	if spec.Tailnet != nil && spec.Tailnet.Interface == iface {
		return "", fmt.Errorf("egress interface %s is the tailnet interface", iface)
	}
	return iface, nil
}

// Apply converges the host to spec. It validates the spec and resolves the egress
// interface before changing anything; then it writes the filter chain (so that forwarding is
// never open without its drop rules), the nat and mangle chains, their jumps, and the
// sysctls (ip_forward last), recording each sysctl's previous value in spec.StatePath
// before replacing it. A second Apply with the same spec changes nothing.
func (d *Dataplane) Apply(ctx context.Context, spec Spec) (Result, error) {
	if err := spec.Validate(); err != nil {
		return Result{}, fmt.Errorf("invalid spec: %w", err)
	}
	spec = spec.WithDefaults()
	iface, err := d.resolveInterfaces(spec)
	if err != nil {
		return Result{}, err
	}
	res := Result{Interface: iface}
	h, err := d.view(spec, iface)
	if err != nil {
		return res, err
	}
	wants, err := d.desiredSysctls(spec, &h)
	if err != nil {
		return res, err
	}
	release, err := d.lock()
	if err != nil {
		return res, err
	}
	defer release(false)
	st, err := loadState(spec.StatePath)
	if err != nil {
		return res, err
	}

	chains, absent := wantedChains(spec, &h)
	for _, c := range chains {
		if err := d.reconcileChain(ctx, c, &res); err != nil {
			return res, err
		}
		if err := d.reconcileJump(ctx, c, spec.KeepJumpPosition, &res); err != nil {
			return res, err
		}
	}
	for _, c := range absent {
		if err := d.removeChain(ctx, c, &res); err != nil {
			return res, err
		}
	}
	for _, w := range wants {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if err := d.applySysctl(spec.StatePath, &st, w, &res); err != nil {
			return res, err
		}
	}

	// Check the outcome as Verify would: a concurrent writer or an iptables that prints
	// rules differently from what was written must not pass silently.
	findings, err := d.verifyChains(chains, absent, true, spec.KeepJumpPosition)
	if err != nil {
		return res, err
	}
	sf, err := d.verifySysctls(wants)
	if err != nil {
		return res, err
	}
	findings = append(findings, sf...)
	if len(findings) > 0 {
		return res, fmt.Errorf("data plane did not converge (%s), first: %s", Deviations(len(findings)), findings[0])
	}
	return res, nil
}

func (d *Dataplane) record(res *Result, c Change) {
	res.Changes = append(res.Changes, c)
	d.log.Info("dataplane change", "change", c.String())
}

func (d *Dataplane) note(res *Result, n string) {
	res.Notes = append(res.Notes, n)
	d.log.Debug("dataplane note", "note", n)
}

func (d *Dataplane) reconcileChain(ctx context.Context, c chainSpec, res *Result) error {
	ipt := d.deps.IPTables
	exists, err := ipt.ChainExists(c.Table, c.Name)
	if err != nil {
		return fmt.Errorf("check chain %s %s: %w", c.Table, c.Name, err)
	}
	if !exists {
		if err := ipt.NewChain(c.Table, c.Name); err != nil {
			return fmt.Errorf("create chain %s %s: %w", c.Table, c.Name, err)
		}
		d.record(res, Change{Kind: ChangeChainCreate, Table: c.Table, Chain: c.Name})
	}
	lines, err := ipt.List(c.Table, c.Name)
	if err != nil {
		return fmt.Errorf("list %s %s: %w", c.Table, c.Name, err)
	}
	for _, op := range planChain(parseRules(c.Name, lines), c.Rules) {
		if err := ctx.Err(); err != nil {
			return err
		}
		line := ruleLine(c.Name, op.rule)
		if op.insert {
			if err := ipt.Insert(c.Table, c.Name, op.pos, op.rule...); err != nil {
				return fmt.Errorf("insert into %s %s at %d %q: %w", c.Table, c.Name, op.pos, line, err)
			}
			d.record(res, Change{Kind: ChangeRuleInsert, Table: c.Table, Chain: c.Name, Pos: op.pos, Rule: line})
			continue
		}
		// The chain is ours and Apply holds the lock, but deleting by position must never
		// hit another rule: check the position still holds the rule planned.
		got, err := ipt.ListById(c.Table, c.Name, op.pos)
		if err != nil {
			return fmt.Errorf("read %s %s #%d: %w", c.Table, c.Name, op.pos, err)
		}
		if g := parseRules(c.Name, []string{got}); len(g) != 1 || !slices.Equal(g[0], op.rule) {
			return fmt.Errorf("%s %s changed while being reconciled: #%d is %q, expected %q", c.Table, c.Name, op.pos, got, line)
		}
		if err := ipt.DeleteById(c.Table, c.Name, op.pos); err != nil {
			return fmt.Errorf("delete %s %s #%d %q: %w", c.Table, c.Name, op.pos, line, err)
		}
		d.record(res, Change{Kind: ChangeRuleDelete, Table: c.Table, Chain: c.Name, Pos: op.pos, Rule: line})
	}
	return nil
}

func (d *Dataplane) applySysctl(statePath string, st *state, w sysctlWant, res *Result) error {
	sys := d.deps.Sysctl
	cur, err := sys.Get(w.Key)
	if err != nil {
		if n := d.sysctlSkip(w, err); n != "" {
			d.note(res, n)
			return nil
		}
		return fmt.Errorf("read sysctl %s: %w", w.Key, err)
	}
	if normValue(cur) == normValue(w.Value) {
		return nil
	}
	if n := d.sysctlSkip(w, nil); n != "" {
		d.note(res, fmt.Sprintf("%s (is %s, would be %s)", n, normValue(cur), w.Value))
		return nil
	}
	// Record first: a crash after the write must still leave the previous value on disk.
	prev := *st
	prev.Sysctls = slices.Clone(st.Sysctls)
	if rec := st.find(w.Key); rec != nil {
		rec.Applied = w.Value
	} else {
		st.Sysctls = append(st.Sysctls, savedSysctl{Key: w.Key, Previous: cur, Applied: w.Value})
	}
	if err := saveState(statePath, *st); err != nil {
		*st = prev
		return err
	}
	if err := sys.Set(w.Key, w.Value); err != nil {
		*st = prev
		if serr := saveState(statePath, *st); serr != nil {
			d.log.Warn("restore state after failed sysctl write", "err", serr)
		}
		if w.Tunable && errors.Is(err, fs.ErrPermission) {
			d.note(res, fmt.Sprintf("%s cannot be written here: %v", w.Key, err))
			return nil
		}
		return fmt.Errorf("set sysctl %s=%s: %w", w.Key, w.Value, err)
	}
	d.record(res, Change{Kind: ChangeSysctl, Key: w.Key, From: normValue(cur), To: w.Value})
	return nil
}

// Verify lists every deviation of the host from spec; an empty slice means healthy. It
// changes nothing. An error means the host could not be inspected (or the spec is invalid).
func (d *Dataplane) Verify(ctx context.Context, spec Spec) ([]Finding, error) {
	if err := spec.Validate(); err != nil {
		return nil, fmt.Errorf("invalid spec: %w", err)
	}
	spec = spec.WithDefaults()
	findings := []Finding{}
	iface, present, f, err := d.checkInterface(spec.EgressInterface)
	if err != nil {
		return nil, err
	}
	findings = append(findings, f...)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var h *hostView
	if iface != "" {
		v, err := d.view(spec, iface)
		if err != nil {
			return nil, err
		}
		h = &v
	}
	sysView := h
	if !present {
		sysView = nil
	}
	wants, err := d.desiredSysctls(spec, sysView)
	if err != nil {
		return nil, err
	}
	sf, err := d.verifySysctls(wants)
	if err != nil {
		return nil, err
	}
	findings = append(findings, sf...)
	chains, absent := wantedChains(spec, h)
	cf, err := d.verifyChains(chains, absent, h != nil, spec.KeepJumpPosition)
	if err != nil {
		return nil, err
	}
	return append(findings, cf...), nil
}

// checkInterface resolves the egress interface for Verify: a missing or down interface is a
// finding, not an error. The name is "" when it cannot be known; present is false when the
// interface does not exist.
func (d *Dataplane) checkInterface(name string) (iface string, present bool, _ []Finding, _ error) {
	if name == "" {
		n, err := d.deps.Links.DefaultRouteInterface()
		if err != nil || n == "" || validateInterfaceName("egress interface", n) != nil {
			got := "no usable default route"
			if err != nil {
				got = err.Error()
			}
			return "", false, []Finding{{Kind: KindInterfaceMissing, Key: "(from the default route)", Got: got}}, nil
		}
		name = n
	}
	l, err := d.deps.Links.Link(name)
	if errors.Is(err, ErrLinkNotFound) {
		return name, false, []Finding{{Kind: KindInterfaceMissing, Key: name, Got: "does not exist"}}, nil
	}
	if err != nil {
		return "", false, nil, fmt.Errorf("egress interface %q: %w", name, err)
	}
	if !l.Up() {
		return name, true, []Finding{{Kind: KindInterfaceDown, Key: name, Want: "up",
			Got: fmt.Sprintf("down (admin up: %t, oper state: %s)", l.AdminUp, l.OperState)}}, nil
	}
	return name, true, nil, nil
}

func (d *Dataplane) verifySysctls(wants []sysctlWant) ([]Finding, error) {
	var out []Finding
	for _, w := range wants {
		cur, err := d.deps.Sysctl.Get(w.Key)
		if err != nil {
			if d.sysctlSkip(w, err) != "" {
				continue
			}
			if errors.Is(err, fs.ErrNotExist) {
				out = append(out, Finding{Kind: KindSysctl, Key: w.Key, Want: w.Value, Got: "(does not exist)"})
				continue
			}
			return nil, fmt.Errorf("read sysctl %s: %w", w.Key, err)
		}
		if normValue(cur) == normValue(w.Value) || d.sysctlSkip(w, nil) != "" {
			continue
		}
		out = append(out, Finding{Kind: KindSysctl, Key: w.Key, Want: w.Value, Got: normValue(cur)})
	}
	return out, nil
}

// verifyChains compares each owned chain and its jump with the desired state, and checks
// that the chains in absent are gone. Without rules (the interface is unknown), only the
// chains' and jumps' existence and the jumps' position are checked.
func (d *Dataplane) verifyChains(chains, absent []chainSpec, withRules, keepPos bool) ([]Finding, error) {
	ipt := d.deps.IPTables
	var out []Finding
	for _, c := range chains {
		exists, err := ipt.ChainExists(c.Table, c.Name)
		if err != nil {
			return nil, fmt.Errorf("check chain %s %s: %w", c.Table, c.Name, err)
		}
		if !exists {
			out = append(out, Finding{Kind: KindChainMissing, Table: c.Table, Chain: c.Name})
		} else if withRules {
			lines, err := ipt.List(c.Table, c.Name)
			if err != nil {
				return nil, fmt.Errorf("list %s %s: %w", c.Table, c.Name, err)
			}
			out = append(out, compareRules(c, parseRules(c.Name, lines))...)
		}
		lines, err := ipt.List(c.Table, c.Parent)
		if err != nil {
			return nil, fmt.Errorf("list %s %s: %w", c.Table, c.Parent, err)
		}
		jump := c.Jump()
		n, first := 0, 0
		rules := parseRules(c.Parent, lines)
		for i, r := range rules {
			switch {
			case slices.Equal(r, jump):
				n++
				if first == 0 {
					first = i + 1
				}
			case target(r) == c.Name:
				out = append(out, Finding{Kind: KindRuleUnexpected, Table: c.Table, Chain: c.Parent, Key: c.Name, Got: ruleLine(c.Parent, r)})
			}
		}
		switch {
		case n == 0:
			out = append(out, Finding{Kind: KindJumpMissing, Table: c.Table, Chain: c.Parent, Key: c.Name, Want: ruleLine(c.Parent, jump)})
		case n > 1:
			out = append(out, Finding{Kind: KindJumpDuplicate, Table: c.Table, Chain: c.Parent, Key: c.Name, Want: "once", Got: strconv.Itoa(n) + " times"})
		}
		if first > 0 && c.Guarded && !keepPos {
			bypass, err := d.bypassing(c, lines, rules[:first-1])
			if err != nil {
				return nil, err
			}
			for _, b := range bypass {
				out = append(out, Finding{Kind: KindJumpBypassed, Table: c.Table, Chain: c.Parent, Key: c.Name, Got: b})
			}
		}
	}
	for _, c := range absent {
		exists, err := ipt.ChainExists(c.Table, c.Name)
		if err != nil {
			return nil, fmt.Errorf("check chain %s %s: %w", c.Table, c.Name, err)
		}
		if exists {
			out = append(out, Finding{Kind: KindChainUnexpected, Table: c.Table, Chain: c.Name})
		}
		lines, err := ipt.List(c.Table, c.Parent)
		if err != nil {
			return nil, fmt.Errorf("list %s %s: %w", c.Table, c.Parent, err)
		}
		for _, r := range parseRules(c.Parent, lines) {
			if target(r) == c.Name {
				out = append(out, Finding{Kind: KindRuleUnexpected, Table: c.Table, Chain: c.Parent, Key: c.Name, Got: ruleLine(c.Parent, r)})
			}
		}
	}
	return out, nil
}

func compareRules(c chainSpec, cur [][]string) []Finding {
	var out []Finding
	count := func(rule []string, in [][]string) int {
		n := 0
		for _, r := range in {
			if slices.Equal(r, rule) {
				n++
			}
		}
		return n
	}
	for i, w := range c.Rules {
		if slices.IndexFunc(c.Rules[:i], func(r []string) bool { return slices.Equal(r, w) }) >= 0 {
			continue
		}
		switch n := count(w, cur); {
		case n == 0:
			out = append(out, Finding{Kind: KindRuleMissing, Table: c.Table, Chain: c.Name, Want: ruleLine(c.Name, w)})
		case n > count(w, c.Rules):
			out = append(out, Finding{Kind: KindRuleDuplicate, Table: c.Table, Chain: c.Name, Want: ruleLine(c.Name, w), Got: fmt.Sprintf("%d copies", n)})
		}
	}
	for i, r := range cur {
		if count(r, c.Rules) == 0 && slices.IndexFunc(cur[:i], func(x []string) bool { return slices.Equal(x, r) }) < 0 {
			out = append(out, Finding{Kind: KindRuleUnexpected, Table: c.Table, Chain: c.Name, Got: ruleLine(c.Name, r)})
		}
	}
	if len(out) == 0 && !slices.EqualFunc(cur, c.Rules, slices.Equal) {
		for i := range cur {
			if !slices.Equal(cur[i], c.Rules[i]) {
				out = append(out, Finding{Kind: KindRuleOrder, Table: c.Table, Chain: c.Name,
					Want: fmt.Sprintf("#%d %s", i+1, ruleLine(c.Name, c.Rules[i])), Got: fmt.Sprintf("#%d %s", i+1, ruleLine(c.Name, cur[i]))})
				break
			}
		}
	}
	return out
}

// Plan reads the host and returns the state Apply would converge to, with what differs now.
// It changes nothing.
func (d *Dataplane) Plan(ctx context.Context, spec Spec) (Plan, error) {
	if err := spec.Validate(); err != nil {
		return Plan{}, fmt.Errorf("invalid spec: %w", err)
	}
	spec = spec.WithDefaults()
	iface, err := d.resolveInterfaces(spec)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Interface: iface}
	h, err := d.view(spec, iface)
	if err != nil {
		return Plan{}, err
	}
	wants, err := d.desiredSysctls(spec, &h)
	if err != nil {
		return Plan{}, err
	}
	for _, w := range wants {
		sp := SysctlPlan{Key: w.Key, Want: w.Value}
		cur, err := d.deps.Sysctl.Get(w.Key)
		switch {
		case err == nil:
			sp.Current = normValue(cur)
			sp.Note = d.sysctlSkip(w, nil)
		case d.sysctlSkip(w, err) != "":
			sp.Current = "(none)"
			sp.Note = d.sysctlSkip(w, err)
		default:
			return Plan{}, fmt.Errorf("read sysctl %s: %w", w.Key, err)
		}
		if sp.Current == sp.Want {
			sp.Note = ""
		}
		p.Sysctls = append(p.Sysctls, sp)
	}
	chains, _ := wantedChains(spec, &h)
	for _, c := range chains {
		cp := ChainPlan{Table: c.Table, Parent: c.Parent, Chain: c.Name, Jump: ruleLine(c.Parent, c.Jump()), Below: c.MayStandAbove}
		for _, r := range c.Rules {
			cp.Rules = append(cp.Rules, ruleLine(c.Name, r))
		}
		p.Chains = append(p.Chains, cp)
	}
	if p.Findings, err = d.Verify(ctx, spec); err != nil {
		return Plan{}, err
	}
	return p, nil
}

// RemoveOptions says where Apply recorded its state.
type RemoveOptions struct {
	StatePath string // "" means DefaultStatePath
}

// Remove undoes Apply: the jumps and the owned chains (nat and mangle first, so NAT stops
// before the filter chains go), then the sysctls recorded in the state file, each restored only if it
// still holds the value Apply wrote. The state file is deleted once everything recorded is
// settled, and the lock file in any case. Removing twice is harmless; rules of other owners
// are untouched.
func (d *Dataplane) Remove(ctx context.Context, opts RemoveOptions) (Result, error) {
	path := opts.StatePath
	if path == "" {
		path = DefaultStatePath
	}
	if !filepath.IsAbs(path) {
		return Result{}, fmt.Errorf("state path %q is not absolute", path)
	}
	var res Result
	release, err := d.lock()
	if err != nil {
		return res, err
	}
	defer release(true)
	st, err := loadState(path)
	if err != nil {
		return res, err
	}
	chains := owned()
	byName := func(name string) chainSpec {
		return chains[slices.IndexFunc(chains, func(c chainSpec) bool { return c.Name == name })]
	}
	var errs []error
	for _, name := range []string{ChainPostrouting, ChainMangleFwd, ChainPathIn, ChainPathOut} {
		if err := d.removeChain(ctx, byName(name), &res); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.restoreSysctls(path, st, &res); err != nil {
		errs = append(errs, err)
	}
	for _, name := range []string{ChainForward, ChainInput} {
		if err := d.removeChain(ctx, byName(name), &res); err != nil {
			errs = append(errs, err)
		}
	}
	return res, errors.Join(errs...)
}

func (d *Dataplane) removeChain(ctx context.Context, c chainSpec, res *Result) error {
	ipt := d.deps.IPTables
	lines, err := ipt.List(c.Table, c.Parent)
	if err != nil {
		return fmt.Errorf("list %s %s: %w", c.Table, c.Parent, err)
	}
	for _, r := range parseRules(c.Parent, lines) {
		if target(r) != c.Name {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		l := ruleLine(c.Parent, r)
		if err := ipt.Delete(c.Table, c.Parent, r...); err != nil {
			return fmt.Errorf("delete jump %s %s %q: %w", c.Table, c.Parent, l, err)
		}
		d.record(res, Change{Kind: ChangeJumpDelete, Table: c.Table, Chain: c.Parent, Rule: l})
	}
	exists, err := ipt.ChainExists(c.Table, c.Name)
	if err != nil {
		return fmt.Errorf("check chain %s %s: %w", c.Table, c.Name, err)
	}
	if !exists {
		return nil
	}
	if err := ipt.ClearChain(c.Table, c.Name); err != nil {
		return fmt.Errorf("flush %s %s: %w", c.Table, c.Name, err)
	}
	if err := ipt.DeleteChain(c.Table, c.Name); err != nil {
		return fmt.Errorf("delete chain %s %s (is a rule outside headnat's jump still using it?): %w", c.Table, c.Name, err)
	}
	d.record(res, Change{Kind: ChangeChainDelete, Table: c.Table, Chain: c.Name})
	return nil
}

// restoreSysctls puts back the recorded previous values, last changed first (so
// ip_forward goes first), and deletes the state file once nothing is left to restore.
func (d *Dataplane) restoreSysctls(path string, st state, res *Result) error {
	var keep []savedSysctl
	var errs []error
	for i := len(st.Sysctls) - 1; i >= 0; i-- {
		s := st.Sysctls[i]
		cur, err := d.deps.Sysctl.Get(s.Key)
		if errors.Is(err, fs.ErrNotExist) {
			d.note(res, fmt.Sprintf("%s no longer exists; nothing to restore", s.Key))
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read sysctl %s: %w", s.Key, err))
			keep = append(keep, s)
			continue
		}
		cur = normValue(cur)
		if cur == normValue(s.Previous) {
			continue
		}
		if cur != normValue(s.Applied) {
			d.note(res, fmt.Sprintf("%s changed since headnat set it (is %s, headnat wrote %s); left as is, not restored to %s", s.Key, cur, s.Applied, normValue(s.Previous)))
			continue
		}
		if err := d.deps.Sysctl.Set(s.Key, s.Previous); err != nil {
			errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", s.Key, s.Previous, err))
			keep = append(keep, s)
			continue
		}
		d.record(res, Change{Kind: ChangeSysctlRestore, Key: s.Key, From: cur, To: normValue(s.Previous)})
	}
	if len(keep) > 0 {
		slices.Reverse(keep)
		if err := saveState(path, state{Version: 1, Sysctls: keep}); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("delete state: %w", err))
	}
	return errors.Join(errs...)
}

// Apply converges this host to spec (see Dataplane.Apply). It logs nothing: the Result
// says what changed.
func Apply(ctx context.Context, spec Spec) (Result, error) {
	d, err := New(nil)
	if err != nil {
		return Result{}, err
	}
	return d.Apply(ctx, spec)
}

// Verify lists this host's deviations from spec (see Dataplane.Verify).
func Verify(ctx context.Context, spec Spec) ([]Finding, error) {
	d, err := New(nil)
	if err != nil {
		return nil, err
	}
	return d.Verify(ctx, spec)
}

// Remove undoes Apply on this host (see Dataplane.Remove).
func Remove(ctx context.Context, opts RemoveOptions) (Result, error) {
	d, err := New(nil)
	if err != nil {
		return Result{}, err
	}
	return d.Remove(ctx, opts)
}

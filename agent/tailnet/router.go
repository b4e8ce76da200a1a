package tailnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"
	"tailscale.com/types/preftype"
)

// Defaults of the Router's tunables.
const (
	DefaultLoginWait  = 30 * time.Second
	DefaultLoginRetry = 30 * time.Second
)

// BackendUnreachable is State.Backend when tailscaled's socket does not answer.
const BackendUnreachable = "unreachable"

// Router keeps one tailscaled in the Desired state. Its methods are safe for concurrent use;
// calls are serialised.
type Router struct {
	lc  LocalClient
	log *slog.Logger

	// LoginWait bounds how long Set waits for a login to reach Running (the context may
	// end it sooner). LoginRetry is the least time between two failed logins, so a bad key
	// or a dead headscale does not make every Set read the key again.
	LoginWait  time.Duration
	LoginRetry time.Duration

	mu        sync.Mutex // serialises Set and Withdraw
	stateMu   sync.Mutex // guards last, so Last never waits for a login
	last      State
	now       func() time.Time
	lastLogin time.Time // when the last failed login was tried
	loginErr  string    // why it failed
	tagsRelog string    // the tag mismatch a re-login was already tried for
	poll      time.Duration
}

// New returns a Router driving tailscaled through lc.
func New(lc LocalClient, log *slog.Logger) *Router {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Router{lc: lc, log: log, LoginWait: DefaultLoginWait, LoginRetry: DefaultLoginRetry,
		now: time.Now, poll: 250 * time.Millisecond, last: State{Backend: ipn.NoState.String()}}
}

// Last returns the State of the last Set or Withdraw. It does not wait for one in progress.
func (r *Router) Last() State {
	r.stateMu.Lock()
	defer r.stateMu.Unlock()
	return r.last
}

// Degraded reports whether the last Set left tailscaled short of the desired state.
func (r *Router) Degraded() bool { return r.Last().Degraded }

// Set brings tailscaled to d: it logs in with d.AuthKey when tailscaled is logged out, needs
// a login or points at another control server (or carries other tags than d.Tags, once),
// and otherwise re-asserts only the prefs that drifted. A Set that finds nothing to change
// writes nothing. On failure the returned State is Degraded and says why; the error says the
// same. The auth key never appears in either, nor in the log.
func (r *Router) Set(ctx context.Context, d Desired) (State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.set(ctx, d)
	return r.finish(st, err)
}

// Withdraw stops advertising routes, so headscale makes another router primary at once (used
// when draining). A later Set advertises them again: do not call Set while draining.
func (r *Router) Withdraw(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err := r.lc.EditPrefs(ctx, &ipn.MaskedPrefs{AdvertiseRoutesSet: true})
	if err != nil {
		err = fmt.Errorf("tailnet: withdraw routes: %w", err)
	} else {
		r.log.Info("tailnet: withdrew advertised routes")
	}
	st, serr := r.read(ctx)
	if err == nil && serr != nil {
		err = serr
	}
	_, err = r.finish(st, err)
	return err
}

// finish records st, marks it degraded on err, and logs transitions into and out of degraded.
func (r *Router) finish(st State, err error) (State, error) {
	st.Degraded, st.Error = err != nil, ""
	if err != nil {
		st.Error = err.Error()
	}
	r.stateMu.Lock()
	was := r.last.Degraded
	r.last = st
	r.stateMu.Unlock()
	switch {
	case st.Degraded && !was:
		r.log.Warn("tailnet: degraded", "error", st.Error, "backend", st.Backend)
	case !st.Degraded && was:
		r.log.Info("tailnet: recovered", "backend", st.Backend, "ip", st.IP)
	case st.Degraded:
		r.log.Debug("tailnet: still degraded", "error", st.Error)
	}
	return st, err
}

func (r *Router) set(ctx context.Context, d Desired) (State, error) {
	if err := d.validate(); err != nil {
		return r.Last(), err
	}
	d.Routes = normRoutes(d.Routes)
	d.Tags = normTags(d.Tags)
	// At most: a login, a re-login for the tags, and the check after it.
	for range 3 {
		status, prefs, err := r.fetch(ctx)
		if err != nil {
			return State{Backend: BackendUnreachable}, err
		}
		if why := needsLogin(status, prefs, d); why != "" {
			if st, err := r.login(ctx, d, status, prefs, why); err != nil {
				return st, err
			}
			continue
		}
		if edit, what := drift(prefs, d); len(what) > 0 {
			r.log.Info("tailnet: re-asserting prefs", "changed", strings.Join(what, ","))
			edited, err := r.lc.EditPrefs(ctx, edit)
			if err != nil {
				return stateOf(status, prefs, nil), fmt.Errorf("tailnet: edit prefs (%s): %w", strings.Join(what, ","), err)
			}
			prefs = edited
			if status, err = r.lc.Status(ctx); err != nil {
				return State{Backend: BackendUnreachable}, fmt.Errorf("tailnet: status: %w", err)
			}
		}
		prefs, sshErr := r.setSSH(ctx, prefs, d.SSH)
		st := stateOf(status, prefs, r.rules(ctx, status, prefs))
		if mismatch := tagMismatch(st.Tags, d.Tags); len(d.Tags) > 0 && mismatch != "" {
			if r.tagsRelog == mismatch {
				return st, fmt.Errorf("tailnet: %s after logging in again with the key; headscale takes a node's tags from its first pre-auth key: make one with --tags, or `headscale nodes tag`", mismatch)
			}
			// Once per mismatch: a login with the key may give the node the key's tags.
			r.tagsRelog = mismatch
			if st, err := r.login(ctx, d, status, prefs, "tags differ: "+mismatch); err != nil {
				return st, err
			}
			continue
		}
		r.tagsRelog = ""
		switch {
		case st.Backend == ipn.NeedsMachineAuth.String():
			return st, errors.New("tailnet: headscale has not authorized this machine yet")
		case st.Backend == ipn.Running.String() && !st.Connected:
			return st, errors.New("tailnet: not connected to headscale (control)")
		}
		return st, sshErr
	}
	st, _ := r.read(ctx)
	return st, fmt.Errorf("tailnet: tailscaled still needs a login after logging in (backend %s)", st.Backend)
}

func (d Desired) validate() error {
	switch {
	case d.ControlURL == "":
		return errors.New("tailnet: no control URL")
	case d.Hostname == "":
		return errors.New("tailnet: no hostname")
	case d.AuthKey == nil:
		return errors.New("tailnet: no auth key source")
	}
	return nil
}

func (r *Router) fetch(ctx context.Context) (*ipnstate.Status, *ipn.Prefs, error) {
	status, err := r.lc.Status(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tailnet: tailscaled unreachable: %w", err)
	}
	prefs, err := r.lc.GetPrefs(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("tailnet: tailscaled prefs: %w", err)
	}
	return status, prefs, nil
}

// read returns the current State without changing anything.
func (r *Router) read(ctx context.Context) (State, error) {
	status, prefs, err := r.fetch(ctx)
	if err != nil {
		return State{Backend: BackendUnreachable}, err
	}
	return stateOf(status, prefs, r.rules(ctx, status, prefs)), nil
}

// rules returns headscale's packet filter for the node when it matters (something is
// advertised and the node is running); a failure reads as no rules, so nothing approved.
func (r *Router) rules(ctx context.Context, st *ipnstate.Status, p *ipn.Prefs) []tailcfg.FilterRule {
	if st == nil || p == nil || len(p.AdvertiseRoutes) == 0 || st.BackendState != ipn.Running.String() {
		return nil
	}
	rules, err := r.lc.DebugPacketFilterRules(ctx)
	if err != nil {
		r.log.Debug("tailnet: packet filter", "error", err)
		return nil
	}
	return rules
}

// needsLogin says why tailscaled must log in, or "" if it need not.
func needsLogin(st *ipnstate.Status, p *ipn.Prefs, d Desired) string {
	switch {
	case p.LoggedOut:
		return "logged out"
	case st.BackendState == ipn.NeedsLogin.String():
		return "needs login"
	case st.BackendState == ipn.NoState.String() && !st.HaveNodeKey:
		return "never logged in"
	case sameURL(p.ControlURL, d.ControlURL):
		return ""
	default:
		return fmt.Sprintf("control URL is %q", p.ControlURL)
	}
}

func sameURL(a, b string) bool { return strings.TrimRight(a, "/") == strings.TrimRight(b, "/") }

// login starts a login with the auth key and waits, bounded by LoginWait and ctx, for it to
// reach Running.
func (r *Router) login(ctx context.Context, d Desired, status *ipnstate.Status, cur *ipn.Prefs, why string) (State, error) {
	if !r.lastLogin.IsZero() && r.loginErr != "" && r.now().Sub(r.lastLogin) < r.LoginRetry {
		next := r.LoginRetry - r.now().Sub(r.lastLogin)
		return stateOf(status, cur, nil), fmt.Errorf("%s (next login in %s)", r.loginErr, next.Round(time.Second))
	}
	r.lastLogin = r.now()
	st, err := r.doLogin(ctx, d, status, cur, why)
	if err != nil {
		r.loginErr = err.Error()
		return st, err
	}
	r.loginErr, r.lastLogin = "", time.Time{}
	r.log.Info("tailnet: logged in", "hostname", d.Hostname, "ip", st.IP, "backend", st.Backend)
	return st, nil
}

func (r *Router) doLogin(ctx context.Context, d Desired, status *ipnstate.Status, cur *ipn.Prefs, why string) (State, error) {
	before := stateOf(status, cur, nil)
	stale := loginErrors(status) // errors of an earlier login, not of this one
	r.log.Info("tailnet: logging in", "reason", why, "control_url", d.ControlURL, "hostname", d.Hostname)
	key, err := d.AuthKey(ctx)
	if err != nil {
		return before, fmt.Errorf("tailnet: auth key: %w", err)
	}
	if strings.TrimSpace(key) == "" {
		return before, errors.New("tailnet: auth key is empty")
	}
	key = strings.TrimSpace(key)
	p := cur.Clone()
	apply(p, d)
	p.LoggedOut = false
	// headscale takes tags from the pre-auth key and refuses a key with --advertise-tags.
	p.AdvertiseTags = nil
	if err := r.lc.Start(ctx, ipn.Options{AuthKey: key, UpdatePrefs: p}); err != nil {
		return before, fmt.Errorf("tailnet: start: %w", redact(err, key))
	}
	if err := r.lc.StartLoginInteractive(ctx); err != nil {
		return before, fmt.Errorf("tailnet: login: %w", redact(err, key))
	}
	wctx, cancel := context.WithTimeout(ctx, r.LoginWait)
	defer cancel()
	t0 := time.Now()
	last := before
	for {
		status, prefs, err := r.fetch(wctx)
		if err == nil {
			last = stateOf(status, prefs, nil)
			if last.Backend == ipn.Running.String() {
				return last, nil
			}
			// headscale refused the login (bad or expired key) or could not be reached: no need to wait.
			for _, e := range loginErrors(status) {
				if !slices.Contains(stale, e) {
					return last, errors.New(scrub("tailnet: login failed: "+e, key))
				}
			}
		}
		select {
		case <-wctx.Done():
			reason := "backend " + last.Backend
			if err != nil {
				reason = err.Error()
			} else if e := loginErrors(status); len(e) > 0 {
				reason += ": " + strings.Join(e, "; ")
			}
			return last, errors.New(scrub(fmt.Sprintf("tailnet: login did not complete in %s (%s)", time.Since(t0).Round(100*time.Millisecond), reason), key))
		case <-time.After(r.poll):
		}
	}
}

// apply sets the prefs the Router owns to d.
func apply(p *ipn.Prefs, d Desired) {
	p.ControlURL = d.ControlURL
	p.Hostname = d.Hostname
	p.AdvertiseRoutes = slices.Clone(d.Routes)
	p.CorpDNS = false
	p.RouteAll = false
	p.WantRunning = true
	// headnat's data plane owns the forwarding and masquerade of tailnet traffic; tailscaled's
	// own iptables rules would accept all of it ahead of headnat's and hide its policy.
	p.NetfilterMode = preftype.NetfilterOff
}

// setSSH turns tailscaled's SSH server (RunSSH) on or off if it differs from on, in an edit
// of its own: tailscaled may refuse RunSSH (built without SSH, TS_DISABLE_SSH_SERVER), and that
// must not keep the routes from being set. It returns the prefs after the edit.
func (r *Router) setSSH(ctx context.Context, p *ipn.Prefs, on bool) (*ipn.Prefs, error) {
	if p.RunSSH == on {
		return p, nil
	}
	edited, err := r.lc.EditPrefs(ctx, &ipn.MaskedPrefs{Prefs: ipn.Prefs{RunSSH: on}, RunSSHSet: true})
	if err != nil {
		return p, fmt.Errorf("tailnet: turn SSH server %s: %w", onOff(on), err)
	}
	r.log.Info("tailnet: SSH server turned "+onOff(on), "was", onOff(p.RunSSH))
	return edited, nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// drift returns the edit that brings p to d and the names of what it changes.
func drift(p *ipn.Prefs, d Desired) (*ipn.MaskedPrefs, []string) {
	mp := &ipn.MaskedPrefs{}
	apply(&mp.Prefs, d)
	var what []string
	if p.Hostname != d.Hostname {
		mp.HostnameSet = true
		what = append(what, "hostname")
	}
	if !slices.Equal(normRoutes(p.AdvertiseRoutes), d.Routes) {
		mp.AdvertiseRoutesSet = true
		what = append(what, "routes")
	}
	if p.CorpDNS {
		mp.CorpDNSSet = true
		what = append(what, "accept-dns")
	}
	// A NAT that accepted subnet routes would send its own VPC traffic into the tailnet.
	if p.RouteAll {
		mp.RouteAllSet = true
		what = append(what, "accept-routes")
	}
	if !p.WantRunning {
		mp.WantRunningSet = true
		what = append(what, "want-running")
	}
	if p.NetfilterMode != preftype.NetfilterOff {
		mp.NetfilterModeSet = true
		what = append(what, "netfilter-mode")
	}
	return mp, what
}

func tagMismatch(have, want []string) string {
	if slices.Equal(normTags(have), want) {
		return ""
	}
	return fmt.Sprintf("node tags are [%s], want [%s]", strings.Join(have, " "), strings.Join(want, " "))
}

// stateOf builds a State from tailscaled's status and prefs and headscale's packet filter.
func stateOf(st *ipnstate.Status, p *ipn.Prefs, rules []tailcfg.FilterRule) State {
	s := State{Backend: BackendUnreachable}
	if st == nil {
		return s
	}
	s.Backend = st.BackendState
	for _, a := range st.TailscaleIPs {
		if a.Is4() {
			s.IP = a
			break
		}
	}
	if p != nil {
		s.Hostname = p.Hostname
		s.Advertised = normRoutes(p.AdvertiseRoutes)
		s.SSH = p.RunSSH
	}
	if self := st.Self; self != nil {
		s.Connected = self.Online
		if self.Tags != nil {
			s.Tags = normTags(self.Tags.AsSlice())
		}
	}
	elsewhere := map[netip.Prefix]bool{}
	for _, peer := range st.Peer {
		if peer.PrimaryRoutes != nil {
			for _, r := range peer.PrimaryRoutes.All() {
				elsewhere[r] = true
			}
		}
		id, ok := InstanceFromHostname(peer.HostName)
		if !ok {
			continue
		}
		if s.Peers == nil {
			s.Peers = map[string]netip.Addr{}
		}
		for _, a := range peer.TailscaleIPs {
			if a.Is4() {
				s.Peers[id] = a
				break
			}
		}
		if !peer.Online {
			s.Offline = append(s.Offline, id)
		}
	}
	slices.Sort(s.Offline)
	s.Approved = len(s.Advertised) > 0
	for _, r := range s.Advertised {
		switch {
		case !inFilter(rules, r):
			s.Approved = false
		case elsewhere[r]:
			s.Standby = append(s.Standby, r)
		case s.Connected:
			s.Primary = append(s.Primary, r)
		}
	}
	return s
}

// inFilter reports whether a destination of the packet filter overlaps route.
func inFilter(rules []tailcfg.FilterRule, route netip.Prefix) bool {
	for _, rule := range rules {
		for _, d := range rule.DstPorts {
			if dstOverlaps(d.IP, route) {
				return true
			}
		}
	}
	return false
}

// dstOverlaps parses a filter destination ("*", an address, a CIDR or a range a-b).
func dstOverlaps(dst string, route netip.Prefix) bool {
	if dst == "*" {
		return true
	}
	if p, err := netip.ParsePrefix(dst); err == nil {
		return p.Overlaps(route)
	}
	if a, err := netip.ParseAddr(dst); err == nil {
		return route.Contains(a)
	}
	if lo, hi, ok := strings.Cut(dst, "-"); ok {
		a, err1 := netip.ParseAddr(lo)
		b, err2 := netip.ParseAddr(hi)
		if err1 == nil && err2 == nil {
			first := route.Masked().Addr()
			return route.Contains(a) || route.Contains(b) || (a.Compare(first) <= 0 && first.Compare(b) <= 0)
		}
	}
	return false
}

// loginErrors returns tailscaled's health warnings about a failed login.
func loginErrors(st *ipnstate.Status) []string {
	if st == nil {
		return nil
	}
	var out []string
	for _, h := range st.Health {
		if strings.Contains(strings.ToLower(h), "login error") {
			out = append(out, h)
		}
	}
	return out
}

// redact returns err with every occurrence of key replaced, keeping nothing of err that could
// still hold it.
func redact(err error, key string) error {
	if err == nil {
		return nil
	}
	return errors.New(scrub(err.Error(), key))
}

func scrub(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "[redacted]")
}

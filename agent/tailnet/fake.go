package tailnet

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/views"
)

// FakeLocalClient is a LocalClient for tests that models tailscaled logged in to headscale:
// the backend state, prefs, logins with a set of valid keys (tags from the key, as headscale
// does), auto-approved routes, primary election, peers, and a switch for tailscaled's socket
// and one for headscale. It counts write calls.
type FakeLocalClient struct {
	mu sync.Mutex

	// Knobs, set by the test (under Do when the Router may be running).
	Down        bool                // tailscaled's socket fails every call
	ControlDown bool                // headscale is unreachable: logins fail, Self offline
	ValidKeys   map[string][]string // pre-auth key -> tags it gives a new node
	Approve     []netip.Prefix      // routes headscale auto-approves (they appear in the filter)
	Peers       []FakePeer
	EchoKey     bool       // Start's error echoes the auth key (as a careless backend might)
	StartErr    error      // Start fails with this
	IP          netip.Addr // address a login assigns; default 100.64.0.1
	// SSHRefused, if set, is the error tailscaled gives for prefs with RunSSH on (as one built
	// without SSH or run with TS_DISABLE_SSH_SERVER does); the whole edit is refused.
	SSHRefused string

	// State, as tailscaled would hold it.
	LoginErr string // the last login error, shown in the health warnings
	Backend  string
	Prefs    ipn.Prefs
	NodeKey  bool
	Tags     []string

	// Counters.
	Writes   int // Start, StartLoginInteractive and EditPrefs calls
	Logins   int // StartLoginInteractive calls
	Edits    []ipn.MaskedPrefs
	StatusN  int
	startKey string
}

// FakePeer is a peer in the fake's status.
type FakePeer struct {
	HostName string
	IP       netip.Addr
	Online   bool
	Primary  []netip.Prefix
}

var _ LocalClient = (*FakeLocalClient)(nil)

// NewFakeLocalClient returns a fresh, never logged in tailscaled.
func NewFakeLocalClient() *FakeLocalClient {
	p := ipn.NewPrefs()
	p.WantRunning = false
	return &FakeLocalClient{Backend: ipn.NeedsLogin.String(), Prefs: *p, ValidKeys: map[string][]string{}}
}

// Do runs f with the fake locked, to change knobs or state safely.
func (f *FakeLocalClient) Do(fn func(f *FakeLocalClient)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var errFakeDown = errors.New("dial unix /run/tailscale/tailscaled.sock: connect: no such file or directory")

func (f *FakeLocalClient) Status(ctx context.Context) (*ipnstate.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.StatusN++
	if f.Down {
		return nil, errFakeDown
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	st := &ipnstate.Status{BackendState: f.Backend, HaveNodeKey: f.NodeKey, Peer: map[key.NodePublic]*ipnstate.PeerStatus{}}
	if f.LoginErr != "" {
		st.Health = append(st.Health, "You are logged out. The last login error was: "+f.LoginErr)
	}
	if f.NodeKey {
		ip := f.ip()
		st.TailscaleIPs = []netip.Addr{ip}
		self := &ipnstate.PeerStatus{HostName: f.Prefs.Hostname, TailscaleIPs: []netip.Addr{ip},
			Online: f.Backend == ipn.Running.String() && !f.ControlDown}
		if len(f.Tags) > 0 {
			t := views.SliceOf(slices.Clone(f.Tags))
			self.Tags = &t
		}
		st.Self = self
		for _, p := range f.Peers {
			ps := &ipnstate.PeerStatus{HostName: p.HostName, TailscaleIPs: []netip.Addr{p.IP}, Online: p.Online}
			if len(p.Primary) > 0 {
				v := views.SliceOf(slices.Clone(p.Primary))
				ps.PrimaryRoutes = &v
			}
			st.Peer[key.NewNode().Public()] = ps
		}
	}
	return st, nil
}

func (f *FakeLocalClient) ip() netip.Addr {
	if f.IP.IsValid() {
		return f.IP
	}
	return netip.MustParseAddr("100.64.0.1")
}

func (f *FakeLocalClient) GetPrefs(ctx context.Context) (*ipn.Prefs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Down {
		return nil, errFakeDown
	}
	return f.Prefs.Clone(), nil
}

func (f *FakeLocalClient) EditPrefs(ctx context.Context, mp *ipn.MaskedPrefs) (*ipn.Prefs, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Writes++
	if f.Down {
		return nil, errFakeDown
	}
	next := f.Prefs.Clone()
	next.ApplyEdits(mp)
	if next.RunSSH && f.SSHRefused != "" {
		return nil, errors.New(f.SSHRefused)
	}
	f.Edits = append(f.Edits, *mp)
	f.Prefs.ApplyEdits(mp)
	f.settle()
	return f.Prefs.Clone(), nil
}

func (f *FakeLocalClient) Start(ctx context.Context, o ipn.Options) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Writes++
	if f.Down {
		return errFakeDown
	}
	if f.EchoKey {
		return fmt.Errorf("control: invalid key %q", o.AuthKey)
	}
	if f.StartErr != nil {
		return f.StartErr
	}
	if o.UpdatePrefs != nil {
		persist := f.Prefs.Persist
		f.Prefs = *o.UpdatePrefs.Clone()
		f.Prefs.Persist = persist
	}
	f.startKey = o.AuthKey
	if f.Prefs.LoggedOut {
		f.NodeKey = false
	}
	f.settle()
	return nil
}

func (f *FakeLocalClient) StartLoginInteractive(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Writes++
	f.Logins++
	if f.Down {
		return errFakeDown
	}
	tags, ok := f.ValidKeys[f.startKey]
	if f.ControlDown {
		// tailscaled keeps trying to reach headscale.
		f.Backend = ipn.NeedsLogin.String()
		f.NodeKey = false
		return nil
	}
	if !ok {
		f.Backend = ipn.NeedsLogin.String()
		f.NodeKey = false
		f.LoginErr = "handling register with auth key: invalid or expired key"
		return nil
	}
	f.LoginErr = ""
	// headscale: a new node or a user-owned one takes the key's tags; a tagged node keeps its.
	if !f.NodeKey || len(f.Tags) == 0 {
		f.Tags = slices.Clone(tags)
	}
	f.NodeKey = true
	f.settle()
	return nil
}

// DebugPacketFilterRules returns one rule per advertised, approved route, as headscale does
// for a subnet router.
func (f *FakeLocalClient) DebugPacketFilterRules(ctx context.Context) ([]tailcfg.FilterRule, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Down {
		return nil, errFakeDown
	}
	if !f.NodeKey {
		return nil, errors.New("404 Not Found: no netmap")
	}
	var rules []tailcfg.FilterRule
	for _, r := range f.Prefs.AdvertiseRoutes {
		if slices.Contains(f.Approve, r) {
			rules = append(rules, tailcfg.FilterRule{SrcIPs: []string{"100.64.0.9"},
				DstPorts: []tailcfg.NetPortRange{{IP: r.String(), Ports: tailcfg.PortRangeAny}}})
		}
	}
	return rules, nil
}

// settle derives the backend state from the prefs and login.
func (f *FakeLocalClient) settle() {
	switch {
	case !f.NodeKey || f.Prefs.LoggedOut:
		f.Backend = ipn.NeedsLogin.String()
	case !f.Prefs.WantRunning:
		f.Backend = ipn.Stopped.String()
	default:
		f.Backend = ipn.Running.String()
	}
}

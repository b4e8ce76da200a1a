package tailnet

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/ipn"
	"tailscale.com/types/preftype"
)

const testKey = "hskey-auth-0123456789abcdef-SECRET"

var (
	vpc   = netip.MustParsePrefix("198.18.0.0/16")
	extra = netip.MustParsePrefix("203.0.113.0/24")
)

// logRecorder is a slog handler that keeps every record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many records have msg.
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Message == msg {
			n++
		}
	}
	return n
}

// text renders every record with its attributes.
func (l *logRecorder) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			b.WriteString(" " + a.String())
			return true
		})
		b.WriteString("\n")
	}
	return b.String()
}

type env struct {
	fake    *FakeLocalClient
	r       *Router
	logs    *logRecorder
	keyN    int
	keyErr  error
	clock   time.Time
	desired Desired
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{fake: NewFakeLocalClient(), logs: &logRecorder{}, clock: time.Unix(1_000_000, 0)}
	e.fake.ValidKeys[testKey] = []string{"tag:nat"}
	e.fake.Approve = []netip.Prefix{vpc, extra}
	e.r = New(e.fake, slog.New(e.logs))
	e.r.now = func() time.Time { return e.clock }
	e.r.poll = time.Millisecond
	e.r.LoginWait = 50 * time.Millisecond
	e.desired = Desired{
		ControlURL: "http://127.0.0.1:8080",
		Hostname:   Hostname("us-east-1a", "i-0123456789abcdef0"),
		Tags:       []string{"tag:nat"},
		// Unsorted, with a duplicate and host bits: Set normalises.
		Routes: []netip.Prefix{extra, vpc, netip.MustParsePrefix("198.18.1.1/16")},
		SSH:    true,
		AuthKey: func(context.Context) (string, error) {
			e.keyN++
			return testKey, e.keyErr
		},
	}
	return e
}

func (e *env) set(t *testing.T) (State, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return e.r.Set(ctx, e.desired)
}

func (e *env) mustSet(t *testing.T) State {
	t.Helper()
	st, err := e.set(t)
	if err != nil {
		t.Fatalf("Set: %v (state %+v)", err, st)
	}
	return st
}

// assertNoKey fails if the key shows up in the state, its JSON, the error or the log.
func (e *env) assertNoKey(t *testing.T, st State, err error) {
	t.Helper()
	b, _ := json.Marshal(st)
	for what, s := range map[string]string{"state": string(b), "log": e.logs.text()} {
		if strings.Contains(s, testKey) || strings.Contains(s, "SECRET") {
			t.Errorf("auth key leaked into the %s: %s", what, s)
		}
	}
	if err != nil && strings.Contains(err.Error(), "SECRET") {
		t.Errorf("auth key leaked into the error: %v", err)
	}
}

func TestFirstSetLogsInThenWritesNothing(t *testing.T) {
	e := newEnv(t)
	st := e.mustSet(t)
	want := []netip.Prefix{vpc, extra}
	if st.Backend != "Running" || !st.Connected || st.Degraded || !st.Running() {
		t.Fatalf("state %+v", st)
	}
	if !slices.Equal(st.Advertised, want) || !slices.Equal(st.Primary, want) || !st.Approved {
		t.Errorf("advertised %v primary %v approved %v, want %v", st.Advertised, st.Primary, st.Approved, want)
	}
	if st.Hostname != "nat-us-east-1a-i-0123456789abcdef0" || st.IP != netip.MustParseAddr("100.64.0.1") || !slices.Equal(st.Tags, []string{"tag:nat"}) {
		t.Errorf("state %+v", st)
	}
	p := e.fake.Prefs
	if p.CorpDNS || p.RouteAll || !p.WantRunning || p.LoggedOut || len(p.AdvertiseTags) != 0 || p.ControlURL != e.desired.ControlURL ||
		p.NetfilterMode != preftype.NetfilterOff || !p.RunSSH || !st.SSH {
		t.Errorf("prefs after login: %+v (state ssh %v)", p, st.SSH)
	}
	if e.keyN != 1 || e.fake.Logins != 1 {
		t.Errorf("key read %d times, %d logins; want 1 and 1", e.keyN, e.fake.Logins)
	}
	writes := e.fake.Writes
	for range 3 {
		if st2 := e.mustSet(t); st2.Backend != "Running" {
			t.Fatalf("state %+v", st2)
		}
	}
	if e.fake.Writes != writes || e.keyN != 1 {
		t.Errorf("Sets with nothing drifted made %d writes and read the key %d more times", e.fake.Writes-writes, e.keyN-1)
	}
	if e.r.Last().Backend != "Running" || e.r.Degraded() {
		t.Errorf("Last = %+v", e.r.Last())
	}
	e.assertNoKey(t, st, nil)
}

func TestDrift(t *testing.T) {
	for _, tc := range []struct {
		name  string
		drift func(p *ipn.Prefs)
		mask  func(m *ipn.MaskedPrefs) bool // the bits the re-assertion must set
	}{
		{"hostname", func(p *ipn.Prefs) { p.Hostname = "renamed" }, func(m *ipn.MaskedPrefs) bool { return m.HostnameSet }},
		{"routes removed", func(p *ipn.Prefs) { p.AdvertiseRoutes = nil }, func(m *ipn.MaskedPrefs) bool { return m.AdvertiseRoutesSet }},
		{"route added", func(p *ipn.Prefs) {
			p.AdvertiseRoutes = append(p.AdvertiseRoutes, netip.MustParsePrefix("198.51.100.0/24"))
		}, func(m *ipn.MaskedPrefs) bool { return m.AdvertiseRoutesSet }},
		{"accept-dns", func(p *ipn.Prefs) { p.CorpDNS = true }, func(m *ipn.MaskedPrefs) bool { return m.CorpDNSSet && !m.CorpDNS }},
		{"accept-routes", func(p *ipn.Prefs) { p.RouteAll = true }, func(m *ipn.MaskedPrefs) bool { return m.RouteAllSet && !m.RouteAll }},
		{"down", func(p *ipn.Prefs) { p.WantRunning = false }, func(m *ipn.MaskedPrefs) bool { return m.WantRunningSet && m.WantRunning }},
		{"netfilter", func(p *ipn.Prefs) { p.NetfilterMode = preftype.NetfilterOn }, func(m *ipn.MaskedPrefs) bool {
			return m.NetfilterModeSet && m.NetfilterMode == preftype.NetfilterOff
		}},
		{"ssh off by hand", func(p *ipn.Prefs) { p.RunSSH = false }, func(m *ipn.MaskedPrefs) bool {
			return m.RunSSHSet && m.RunSSH && !m.AdvertiseRoutesSet && !m.HostnameSet
		}},
		{"all", func(p *ipn.Prefs) { p.Hostname, p.CorpDNS, p.AdvertiseRoutes = "x", true, nil }, func(m *ipn.MaskedPrefs) bool {
			return m.HostnameSet && m.CorpDNSSet && m.AdvertiseRoutesSet && !m.RouteAllSet && !m.WantRunningSet && !m.RunSSHSet
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			before := e.mustSet(t)
			e.fake.Do(func(f *FakeLocalClient) {
				tc.drift(&f.Prefs)
				f.settle()
				f.Edits = nil
			})
			writes, keys := e.fake.Writes, e.keyN
			st := e.mustSet(t)
			if e.fake.Writes-writes != 1 || len(e.fake.Edits) != 1 {
				t.Fatalf("%d writes (%d edits), want one EditPrefs", e.fake.Writes-writes, len(e.fake.Edits))
			}
			if m := e.fake.Edits[0]; !tc.mask(&m) {
				t.Errorf("edit %+v lacks the expected mask bits", m)
			}
			if e.keyN != keys {
				t.Error("a pref drift read the auth key")
			}
			if st.Hostname != before.Hostname || !slices.Equal(st.Advertised, before.Advertised) || st.Backend != "Running" || !st.SSH || !e.fake.Prefs.RunSSH {
				t.Errorf("after re-assertion %+v, before %+v", st, before)
			}
			writes = e.fake.Writes
			e.mustSet(t)
			if e.fake.Writes != writes {
				t.Error("a Set after the re-assertion wrote again")
			}
		})
	}
}

// With SSH off, the Router turns tailscaled's SSH server off and keeps it off.
func TestSSHOffIsKeptOff(t *testing.T) {
	e := newEnv(t)
	e.desired.SSH = false
	e.fake.Prefs.RunSSH = true // as left by `tailscale up --ssh`
	st := e.mustSet(t)
	if e.fake.Prefs.RunSSH || st.SSH {
		t.Fatalf("RunSSH %v, state ssh %v after Set with SSH off", e.fake.Prefs.RunSSH, st.SSH)
	}
	e.fake.Do(func(f *FakeLocalClient) { f.Prefs.RunSSH, f.Edits = true, nil }) // `tailscale set --ssh` by hand
	writes := e.fake.Writes
	st = e.mustSet(t)
	if e.fake.Writes-writes != 1 || len(e.fake.Edits) != 1 || !e.fake.Edits[0].RunSSHSet || e.fake.Edits[0].RunSSH {
		t.Fatalf("%d writes, edits %+v; want one edit turning RunSSH off", e.fake.Writes-writes, e.fake.Edits)
	}
	if e.fake.Prefs.RunSSH || st.SSH || st.Degraded {
		t.Errorf("RunSSH %v, state %+v", e.fake.Prefs.RunSSH, st)
	}
	if e.logs.count("tailnet: SSH server turned off") != 2 {
		t.Errorf("log:\n%s", e.logs.text())
	}
}

// tailscaled refusing RunSSH degrades the tailnet state with a clear error, but the node is
// still logged in once and advertises its approved routes; once tailscaled accepts it, SSH
// is on and the state recovers, without another login.
func TestSSHRefusedKeepsRoutes(t *testing.T) {
	e := newEnv(t)
	const refusal = "The Tailscale SSH server is disabled (TS_DISABLE_SSH_SERVER)"
	e.fake.SSHRefused = refusal
	st, err := e.set(t)
	if err == nil || !strings.Contains(err.Error(), "turn SSH server on") || !strings.Contains(err.Error(), refusal) {
		t.Fatalf("err = %v, want the refusal of SSH", err)
	}
	if !st.Degraded || st.Error != err.Error() || st.SSH || st.Backend != "Running" || !st.Approved ||
		!slices.Equal(st.Advertised, []netip.Prefix{vpc, extra}) {
		t.Fatalf("state %+v, want running, routes approved, degraded by SSH", st)
	}
	for range 2 {
		if _, err := e.set(t); err == nil {
			t.Fatal("Set succeeded while tailscaled refuses SSH")
		}
	}
	if e.fake.Logins != 1 || e.keyN != 1 {
		t.Errorf("%d logins, key read %d times; want 1 and 1", e.fake.Logins, e.keyN)
	}
	e.fake.Do(func(f *FakeLocalClient) { f.SSHRefused = "" })
	st = e.mustSet(t)
	if !st.SSH || !e.fake.Prefs.RunSSH || st.Degraded || e.fake.Logins != 1 {
		t.Errorf("after tailscaled accepts SSH: state %+v, RunSSH %v, %d logins", st, e.fake.Prefs.RunSSH, e.fake.Logins)
	}
	e.assertNoKey(t, st, err)
}

func TestLoginCases(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(e *env)
	}{
		{"logged out", func(e *env) {
			e.fake.Do(func(f *FakeLocalClient) { f.Prefs.LoggedOut = true; f.NodeKey = false; f.settle() })
		}},
		{"control URL changed", func(e *env) { e.desired.ControlURL = "http://127.0.0.1:9999" }},
		{"node key gone", func(e *env) { e.fake.Do(func(f *FakeLocalClient) { f.NodeKey = false; f.settle() }) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustSet(t)
			tc.setup(e)
			logins := e.fake.Logins
			st := e.mustSet(t)
			if e.fake.Logins != logins+1 || e.keyN != 2 {
				t.Errorf("logins %d key reads %d, want one more login and one more key read", e.fake.Logins-logins, e.keyN)
			}
			if st.Backend != "Running" || e.fake.Prefs.ControlURL != e.desired.ControlURL {
				t.Errorf("state %+v control %q", st, e.fake.Prefs.ControlURL)
			}
		})
	}
}

func TestBadKeyDegradesOnceAndRecovers(t *testing.T) {
	e := newEnv(t)
	e.fake.ValidKeys = map[string][]string{} // headscale knows no key
	var last State
	for i := range 5 {
		st, err := e.set(t)
		if err == nil || !st.Degraded || st.Error == "" || st.Error != err.Error() {
			t.Fatalf("Set %d: state %+v err %v, want degraded", i, st, err)
		}
		e.assertNoKey(t, st, err)
		last = st
	}
	if !strings.Contains(last.Error, "invalid or expired key") {
		t.Errorf("error %q does not say why the login failed", last.Error)
	}
	if n := e.logs.count("tailnet: degraded"); n != 1 {
		t.Errorf("%d 'degraded' log lines, want 1:\n%s", n, e.logs.text())
	}
	// Within LoginRetry the key is not read again.
	if e.keyN != 1 {
		t.Errorf("key read %d times within LoginRetry, want 1", e.keyN)
	}
	e.clock = e.clock.Add(DefaultLoginRetry + time.Second)
	if _, err := e.set(t); err == nil || e.keyN != 2 {
		t.Errorf("after LoginRetry: err %v, key reads %d (want a second try)", err, e.keyN)
	}
	// A good key: recovers, and says so once.
	e.fake.Do(func(f *FakeLocalClient) { f.ValidKeys[testKey] = []string{"tag:nat"} })
	e.clock = e.clock.Add(DefaultLoginRetry + time.Second)
	st := e.mustSet(t)
	e.mustSet(t)
	if st.Degraded || st.Error != "" || e.logs.count("tailnet: recovered") != 1 || e.logs.count("tailnet: degraded") != 1 {
		t.Errorf("state %+v; log:\n%s", st, e.logs.text())
	}
	e.assertNoKey(t, st, nil)
}

func TestRefusedLoginFailsFast(t *testing.T) {
	e := newEnv(t)
	e.fake.ValidKeys = map[string][]string{}
	e.r.LoginWait = time.Hour
	t0 := time.Now()
	st, err := e.set(t)
	if err == nil || !strings.Contains(err.Error(), "login failed: ") || time.Since(t0) > time.Second {
		t.Fatalf("after %s: state %+v err %v", time.Since(t0), st, err)
	}
	// headscale unreachable: no verdict, so the login waits for LoginWait.
	e = newEnv(t)
	e.fake.ControlDown = true
	st, err = e.set(t)
	if err == nil || !strings.Contains(err.Error(), "did not complete in") {
		t.Fatalf("state %+v err %v", st, err)
	}
}

func TestKeyEchoedByBackendIsRedacted(t *testing.T) {
	e := newEnv(t)
	e.fake.EchoKey = true
	st, err := e.set(t)
	if err == nil || !strings.Contains(err.Error(), "[redacted]") {
		t.Fatalf("err %v, want the backend's error with the key redacted", err)
	}
	e.assertNoKey(t, st, err)
}

func TestAuthKeySourceError(t *testing.T) {
	e := newEnv(t)
	e.keyErr = errors.New("ssm: parameter not found")
	st, err := e.set(t)
	if err == nil || !strings.Contains(err.Error(), "auth key: ssm: parameter not found") || !st.Degraded {
		t.Fatalf("state %+v err %v", st, err)
	}
}

func TestTailscaledDown(t *testing.T) {
	e := newEnv(t)
	e.mustSet(t)
	e.fake.Do(func(f *FakeLocalClient) { f.Down = true })
	for range 3 {
		st, err := e.set(t)
		if err == nil || st.Backend != BackendUnreachable || !st.Degraded {
			t.Fatalf("state %+v err %v", st, err)
		}
	}
	e.fake.Do(func(f *FakeLocalClient) { f.Down = false })
	if st := e.mustSet(t); st.Backend != "Running" {
		t.Fatalf("state %+v", st)
	}
	if e.logs.count("tailnet: degraded") != 1 || e.logs.count("tailnet: recovered") != 1 {
		t.Errorf("log:\n%s", e.logs.text())
	}
}

func TestHeadscaleDownWhileRunning(t *testing.T) {
	e := newEnv(t)
	e.mustSet(t)
	writes := e.fake.Writes
	e.fake.Do(func(f *FakeLocalClient) { f.ControlDown = true })
	st, err := e.set(t)
	if err == nil || !st.Degraded || st.Connected || !strings.Contains(st.Error, "not connected to headscale") {
		t.Fatalf("state %+v err %v", st, err)
	}
	if e.fake.Writes != writes || e.keyN != 1 {
		t.Error("headscale being down made the Router write or read the key")
	}
	e.fake.Do(func(f *FakeLocalClient) { f.ControlDown = false })
	if st := e.mustSet(t); !st.Running() {
		t.Fatalf("state %+v", st)
	}
}

func TestSetHonoursContext(t *testing.T) {
	e := newEnv(t)
	e.fake.ValidKeys = map[string][]string{}
	e.r.LoginWait = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	st, err := e.r.Set(ctx, e.desired)
	if err == nil || !st.Degraded {
		t.Fatalf("state %+v err %v", st, err)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("Set took %s with a 100ms context", d)
	}
}

func TestWithdrawThenSetReadvertises(t *testing.T) {
	e := newEnv(t)
	e.mustSet(t)
	ctx := context.Background()
	if err := e.r.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	st := e.r.Last()
	if len(e.fake.Prefs.AdvertiseRoutes) != 0 || len(st.Advertised) != 0 || st.Approved || len(st.Primary) != 0 {
		t.Fatalf("after Withdraw: prefs routes %v state %+v", e.fake.Prefs.AdvertiseRoutes, st)
	}
	if m := e.fake.Edits[len(e.fake.Edits)-1]; !m.AdvertiseRoutesSet || m.HostnameSet || m.WantRunningSet {
		t.Errorf("withdraw edit %+v", m)
	}
	st = e.mustSet(t)
	if !slices.Equal(st.Advertised, []netip.Prefix{vpc, extra}) || !st.Approved {
		t.Errorf("after Set: %+v", st)
	}
	e.fake.Do(func(f *FakeLocalClient) { f.Down = true })
	if err := e.r.Withdraw(ctx); err == nil || !e.r.Degraded() {
		t.Errorf("Withdraw with tailscaled down: %v", err)
	}
}

func TestTagsFromKey(t *testing.T) {
	e := newEnv(t)
	// headscale registers the node with a user-owned key: no tags. The first Set logs in,
	// finds no tags, logs in again once, and reports; later Sets do not log in again.
	e.fake.ValidKeys[testKey] = nil
	for range 3 {
		st, err := e.set(t)
		if err == nil || !st.Degraded || !strings.Contains(err.Error(), "node tags are [], want [tag:nat]") {
			t.Fatalf("state %+v err %v", st, err)
		}
	}
	if e.fake.Logins != 2 {
		t.Errorf("%d logins, want the login and one re-login for the tags", e.fake.Logins)
	}
	// The node loses its registration (deleted in headscale); the key is now tagged: the next
	// login gives it the key's tags.
	e.fake.Do(func(f *FakeLocalClient) { f.ValidKeys[testKey] = []string{"tag:nat"}; f.NodeKey = false; f.settle() })
	st := e.mustSet(t)
	if !slices.Equal(st.Tags, []string{"tag:nat"}) || e.logs.count("tailnet: recovered") != 1 {
		t.Errorf("tags %v; log:\n%s", st.Tags, e.logs.text())
	}
}

func TestTaggedNodeKeepsTagsAndReports(t *testing.T) {
	e := newEnv(t)
	e.mustSet(t)
	e.desired.Tags = []string{"tag:other"}
	// Changed tags: one re-login; headscale keeps the tagged node's tags: degraded.
	logins := e.fake.Logins
	st, err := e.set(t)
	if e.fake.Logins != logins+1 || err == nil || !strings.Contains(st.Error, "pre-auth key") {
		t.Errorf("logins +%d, state %+v, err %v", e.fake.Logins-logins, st, err)
	}
	e.desired.Tags = []string{"tag:nat"}
	if st := e.mustSet(t); st.Degraded {
		t.Errorf("state %+v", st)
	}
}

func TestPeersAndStandby(t *testing.T) {
	e := newEnv(t)
	e.fake.Peers = []FakePeer{
		{HostName: Hostname("us-east-1b", "i-0aaaaaaaaaaaaaaaa"), IP: netip.MustParseAddr("100.64.0.2"), Online: true, Primary: []netip.Prefix{vpc}},
		{HostName: Hostname("us-east-1c", "i-0bbbbbbbb"), IP: netip.MustParseAddr("100.64.0.3"), Online: false},
		{HostName: "laptop", IP: netip.MustParseAddr("100.64.0.9"), Online: true, Primary: []netip.Prefix{extra}},
	}
	st := e.mustSet(t)
	want := map[string]netip.Addr{"i-0aaaaaaaaaaaaaaaa": netip.MustParseAddr("100.64.0.2"), "i-0bbbbbbbb": netip.MustParseAddr("100.64.0.3")}
	if len(st.Peers) != 2 || st.Peers["i-0aaaaaaaaaaaaaaaa"] != want["i-0aaaaaaaaaaaaaaaa"] || st.Peers["i-0bbbbbbbb"] != want["i-0bbbbbbbb"] {
		t.Errorf("peers %v, want %v", st.Peers, want)
	}
	if !slices.Equal(st.Offline, []string{"i-0bbbbbbbb"}) {
		t.Errorf("offline %v", st.Offline)
	}
	if len(st.Primary) != 0 || !slices.Equal(st.Standby, []netip.Prefix{vpc, extra}) || !st.Approved {
		t.Errorf("primary %v standby %v approved %v", st.Primary, st.Standby, st.Approved)
	}
	// No peer is primary for extra any more: this node is.
	e.fake.Do(func(f *FakeLocalClient) { f.Peers = f.Peers[:2] })
	if st := e.mustSet(t); !slices.Equal(st.Primary, []netip.Prefix{extra}) || !slices.Equal(st.Standby, []netip.Prefix{vpc}) {
		t.Errorf("primary %v standby %v", st.Primary, st.Standby)
	}
	// A route headscale has not approved is in neither list.
	e.fake.Do(func(f *FakeLocalClient) { f.Approve = []netip.Prefix{vpc} })
	if st := e.mustSet(t); st.Approved || len(st.Primary) != 0 || !slices.Equal(st.Standby, []netip.Prefix{vpc}) {
		t.Errorf("with %s unapproved: %+v", extra, st)
	}
}

func TestStateJSON(t *testing.T) {
	st := State{Backend: "Running", IP: netip.MustParseAddr("100.64.0.1"), Advertised: []netip.Prefix{vpc},
		Primary: []netip.Prefix{vpc}, Approved: true, Connected: true, Peers: map[string]netip.Addr{"i-1": netip.MustParseAddr("100.64.0.2")}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"backend":"Running"`, `"ip":"100.64.0.1"`, `"advertised":["198.18.0.0/16"]`, `"primary":["198.18.0.0/16"]`, `"approved":true`, `"degraded":false`, `"peers":{"i-1":"100.64.0.2"}`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("%s lacks %s", b, k)
		}
	}
	if b, _ := json.Marshal(State{Backend: BackendUnreachable}); strings.Contains(string(b), `"ip"`) {
		t.Errorf("zero IP marshalled: %s", b)
	}
}

func TestHostname(t *testing.T) {
	h := Hostname("us-east-1a", "i-0123456789abcdef0")
	if h != "nat-us-east-1a-i-0123456789abcdef0" {
		t.Fatal(h)
	}
	for _, tc := range []struct {
		h, az, id string
		ok        bool
	}{
		{h, "us-east-1a", "i-0123456789abcdef0", true},
		{"nat-il-central-1a-i-12345678", "il-central-1a", "i-12345678", true},
		{"NAT-us-west-2b-i-ABCDEF0123", "us-west-2b", "i-abcdef0123", true},
		{"nat-us-east-1a-i-xyz12345", "", "", false},
		{"nat-i-0123456789", "", "", false},
		{"laptop", "", "", false},
		{"nat-us-east-1a-i-123", "", "", false},
	} {
		az, id, ok := ParseHostname(tc.h)
		if az != tc.az || id != tc.id || ok != tc.ok {
			t.Errorf("ParseHostname(%q) = %q %q %v, want %q %q %v", tc.h, az, id, ok, tc.az, tc.id, tc.ok)
		}
	}
	if id, ok := InstanceFromHostname(h); !ok || id != "i-0123456789abcdef0" {
		t.Errorf("InstanceFromHostname = %q %v", id, ok)
	}
}

func TestDesiredValidation(t *testing.T) {
	e := newEnv(t)
	e.desired.AuthKey = nil
	if _, err := e.set(t); err == nil || e.fake.Writes != 0 {
		t.Errorf("err %v writes %d", err, e.fake.Writes)
	}
}

func TestDstOverlaps(t *testing.T) {
	for _, tc := range []struct {
		dst  string
		want bool
	}{
		{"*", true},
		{"198.18.0.0/16", true},
		{"198.18.5.0/24", true},
		{"198.0.0.0/8", true},
		{"198.19.0.0/16", false},
		{"198.18.1.1", true},
		{"100.64.0.1", false},
		{"198.17.255.250-198.18.0.3", true},
		{"198.17.0.0-198.19.255.255", true},
		{"10.0.0.1-10.0.0.9", false},
		{"garbage", false},
	} {
		if got := dstOverlaps(tc.dst, vpc); got != tc.want {
			t.Errorf("dstOverlaps(%q, %s) = %v, want %v", tc.dst, vpc, got, tc.want)
		}
	}
}

func TestLastDoesNotWaitForALogin(t *testing.T) {
	e := newEnv(t)
	e.fake.ControlDown = true // the login hangs until LoginWait
	e.r.LoginWait = 2 * time.Second
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.set(t)
	}()
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	_ = e.r.Last()
	_ = e.r.Degraded()
	if d := time.Since(t0); d > 500*time.Millisecond {
		t.Errorf("Last waited %s for the login", d)
	}
	<-done
}

func TestNoTagsDesiredNotChecked(t *testing.T) {
	e := newEnv(t)
	e.desired.Tags = nil
	if st := e.mustSet(t); !slices.Equal(st.Tags, []string{"tag:nat"}) || e.fake.Logins != 1 {
		t.Errorf("state %+v, %d logins", st, e.fake.Logins)
	}
}

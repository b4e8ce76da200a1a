package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// Peer is another NAT instance of the cluster.
type Peer struct {
	ID         string
	AZ         string
	ENI        string
	IP         netip.Addr // VPC private IP
	TailnetIP  netip.Addr // zero when unknown
	LaunchTime time.Time
}

// PeerPath asks a peer for its /healthz over one network path. An answer the peer gave (even
// "unhealthy") is returned without error; an error means the path did not deliver an answer.
type PeerPath interface {
	Check(ctx context.Context, peer Peer) (api.Healthz, error)
}

// HTTPPath GETs http://<peer IP>:<Port>/healthz; with Tailnet set it uses the peer's tailnet
// IP instead of its VPC IP. A nil Client uses a client without keep-alives, proxies or redirects.
type HTTPPath struct {
	Port    int
	Client  *http.Client
	Tailnet bool
}

const maxHealthzBody = 64 << 10

func (p HTTPPath) Check(ctx context.Context, peer Peer) (api.Healthz, error) {
	addr := peer.IP
	if p.Tailnet {
		addr = peer.TailnetIP
	}
	if !addr.IsValid() {
		return api.Healthz{}, fmt.Errorf("peer %s: no address for this path", peer.ID)
	}
	if p.Port < 1 || p.Port > 65535 {
		return api.Healthz{}, fmt.Errorf("peer %s: invalid port %d", peer.ID, p.Port)
	}
	url := "http://" + netip.AddrPortFrom(addr, uint16(p.Port)).String() + api.PathHealthz
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return api.Healthz{}, fmt.Errorf("peer %s: %w", peer.ID, err)
	}
	req.Header.Set("Accept", "application/json")
	c := p.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return api.Healthz{}, fmt.Errorf("peer %s: %w", peer.ID, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusServiceUnavailable {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxHealthzBody))
		return api.Healthz{}, fmt.Errorf("peer %s: GET %s: status %s", peer.ID, url, resp.Status)
	}
	var hz api.Healthz
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxHealthzBody)).Decode(&hz); err != nil {
		return api.Healthz{}, fmt.Errorf("peer %s: GET %s: status %s: decode body: %w", peer.ID, url, resp.Status, err)
	}
	if peer.ID != "" && hz.Instance != peer.ID {
		// The address now belongs to another instance (or something else answers there).
		return api.Healthz{}, fmt.Errorf("peer %s: GET %s: answered as instance %q", peer.ID, url, hz.Instance)
	}
	if resp.StatusCode != http.StatusOK {
		hz.Healthy = false
	}
	return hz, nil
}

// PeerState is the tracker's view of one peer after the latest probe.
type PeerState struct {
	Peer    Peer
	Healthy bool      // rise/fall verdict over the primary (VPC) path
	Changed bool      // Healthy changed with the latest probe
	Decided bool      // a verdict was reached at least once (see RiseFall.Decided)
	Since   time.Time // when the current verdict began
	LastErr string    // latest primary-path error, "" when the primary answered
	// HostUp: the latest primary probe was refused: the peer's kernel answered, but nothing
	// listens on the health port (its agent is down or restarting).
	HostUp bool
	Via    string // path that answered the latest probe: api.ViaVPC, api.ViaTailnet or api.ViaNone
	// TailnetReachable: the primary path failed and the secondary answered in the latest probe.
	// A fact about one probe, for /status; decisions use TailnetHealthy (see Partitioned).
	TailnetReachable bool
	// TailnetProbed: the secondary path was asked in the latest probe (there is one, and the
	// peer had a tailnet address).
	TailnetProbed bool
	// TailnetHealthy is the verdict over the secondary path: the peer answered healthy over it
	// in at least one of the last Fall probes. Rise is one answer (a healthy answer is proof of
	// life, as a rising peer's is over the VPC); fall is the primary's, so a flapping tailnet does
	// not flip it, and a peer silent on both paths loses it in the same probe that the primary
	// verdict falls: no delay is added to detecting a dead peer. A round in which the peer has
	// no tailnet address counts as a failed probe.
	TailnetHealthy bool
	Draining       bool        // from the latest answer on any path (kept while none answers)
	Answer         api.Healthz // latest answer on any path (kept while none answers)
	AnsweredAt     time.Time   // when Answer arrived; zero if never
}

// Partitioned: the VPC path fails (verdict unhealthy, latest probe unanswered) while the peer
// answers healthy over the tailnet (TailnetHealthy): it is cut off from us over the VPC, not dead.
func (s PeerState) Partitioned() bool { return !s.Healthy && s.LastErr != "" && s.TailnetHealthy }

// Status converts the state to its /status form.
func (s PeerState) Status() api.PeerStatus {
	ps := api.PeerStatus{
		ID:               s.Peer.ID,
		AZ:               s.Peer.AZ,
		ENI:              s.Peer.ENI,
		Healthy:          s.Healthy,
		Since:            s.Since,
		LastError:        s.LastErr,
		Via:              s.Via,
		TailnetReachable: s.TailnetReachable,
		Draining:         s.Draining,
		DrainReason:      s.Answer.DrainReason,
		Lifecycle:        s.Answer.Lifecycle,
		PublicIP:         s.Answer.PublicIP,
		LaunchTime:       s.Peer.LaunchTime,
	}
	if s.Peer.IP.IsValid() {
		ps.PrivateIP = s.Peer.IP.String()
	}
	if ps.Via == "" {
		ps.Via = api.ViaNone
	}
	return ps
}

// PeerTracker probes peers every tick and keeps a rise/fall verdict per peer over the primary
// (VPC) path. When a secondary (tailnet) path is set it is probed concurrently with the primary
// on every tick, for each peer with a tailnet address, so that a partition is known in the same
// tick the primary fails; its answers never make a peer healthy, they keep their own verdict
// (TailnetHealthy).
type PeerTracker struct {
	cfg       Config
	primary   PeerPath
	secondary PeerPath // nil: no corroboration

	mu    sync.Mutex
	peers map[string]*peerEntry
}

type peerEntry struct {
	rf      *RiseFall
	tailnet *RiseFall // secondary-path verdict: rise 1, fall as the primary's
	state   PeerState
}

// NewPeerTracker returns a tracker; secondary may be nil.
func NewPeerTracker(cfg Config, primary, secondary PeerPath) (*PeerTracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if primary == nil {
		return nil, fmt.Errorf("peer tracker: primary path is required")
	}
	return &PeerTracker{cfg: cfg, primary: primary, secondary: secondary, peers: map[string]*peerEntry{}}, nil
}

type pathResult struct {
	hz  api.Healthz
	err error
}

var errNoTailnetAddr = errors.New("no tailnet address")

// Probe checks every peer concurrently (each bounded by the configured timeout), records the
// results observed at now, forgets peers no longer listed and returns the states in peers order.
func (t *PeerTracker) Probe(ctx context.Context, peers []Peer, now time.Time) []PeerState {
	prim := make([]pathResult, len(peers))
	sec := make([]pathResult, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		pctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
		var pw sync.WaitGroup
		pw.Go(func() {
			hz, err := t.primary.Check(pctx, p)
			prim[i] = pathResult{hz, err}
		})
		switch {
		case t.secondary == nil:
		case !p.TailnetIP.IsValid():
			sec[i] = pathResult{err: fmt.Errorf("peer %s: %w", p.ID, errNoTailnetAddr)}
		default:
			pw.Go(func() {
				hz, err := t.secondary.Check(pctx, p)
				sec[i] = pathResult{hz, err}
			})
		}
		wg.Go(func() {
			pw.Wait()
			cancel()
		})
	}
	wg.Wait()

	t.mu.Lock()
	defer t.mu.Unlock()
	seen := make(map[string]bool, len(peers))
	out := make([]PeerState, len(peers))
	for i, p := range peers {
		if seen[p.ID] {
			out[i] = t.peers[p.ID].state // listed twice: count it once
			continue
		}
		seen[p.ID] = true
		e := t.peers[p.ID]
		if e == nil {
			e = &peerEntry{rf: NewRiseFall(t.cfg.Rise, t.cfg.Fall), tailnet: NewRiseFall(1, t.cfg.Fall)}
			t.peers[p.ID] = e
		}
		out[i] = e.observe(p, prim[i], sec[i], t.secondary != nil, now)
	}
	for id := range t.peers {
		if !seen[id] {
			delete(t.peers, id)
		}
	}
	return out
}

func (e *peerEntry) observe(p Peer, prim, sec pathResult, haveSecondary bool, now time.Time) PeerState {
	s := e.state
	s.Peer = p
	s.Healthy, s.Changed = e.rf.Observe(prim.err == nil && prim.hz.Healthy, now)
	s.Decided = e.rf.Decided()
	s.Since = e.rf.Since()
	s.TailnetReachable = false
	s.TailnetProbed = haveSecondary && !errors.Is(sec.err, errNoTailnetAddr)
	if haveSecondary {
		s.TailnetHealthy, _ = e.tailnet.Observe(s.TailnetProbed && sec.err == nil && sec.hz.Healthy, now)
	}
	s.HostUp = errors.Is(prim.err, syscall.ECONNREFUSED)
	switch {
	case prim.err == nil:
		s.LastErr, s.Via = "", api.ViaVPC
		s.Answer, s.AnsweredAt = prim.hz, now
	case s.TailnetProbed && sec.err == nil:
		s.LastErr, s.Via = prim.err.Error(), api.ViaTailnet
		s.TailnetReachable = true
		s.Answer, s.AnsweredAt = sec.hz, now
	default:
		s.LastErr, s.Via = prim.err.Error(), api.ViaNone
	}
	s.Draining = s.Answer.Draining
	e.state = s
	return s
}

// States returns every tracked peer's latest state, sorted by peer ID.
func (t *PeerTracker) States() []PeerState {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]PeerState, 0, len(t.peers))
	for _, e := range t.peers {
		out = append(out, e.state)
	}
	slices.SortFunc(out, func(a, b PeerState) int { return strings.Compare(a.Peer.ID, b.Peer.ID) })
	return out
}

// State returns one peer's latest state.
func (t *PeerTracker) State(id string) (PeerState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.peers[id]
	if !ok {
		return PeerState{}, false
	}
	return e.state, true
}

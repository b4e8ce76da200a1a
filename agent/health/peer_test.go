package health

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// healthzServer is a peer's /healthz on loopback answering whatever answer holds.
type healthzServer struct {
	port   int
	code   atomic.Int32
	body   atomic.Pointer[string]
	served atomic.Int32
}

func newHealthzServer(t *testing.T, code int, hz api.Healthz) *healthzServer {
	t.Helper()
	h := &healthzServer{}
	h.set(t, code, hz)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.served.Add(1)
		if r.URL.Path != api.PathHealthz {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(h.code.Load()))
		w.Write([]byte(*h.body.Load()))
	}))
	t.Cleanup(s.Close)
	_, port, _ := net.SplitHostPort(s.Listener.Addr().String())
	h.port, _ = strconv.Atoi(port)
	return h
}

func (h *healthzServer) set(t *testing.T, code int, hz api.Healthz) {
	b, err := json.Marshal(hz)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	h.body.Store(&s)
	h.code.Store(int32(code))
}

func (h *healthzServer) setRaw(code int, body string) {
	h.body.Store(&body)
	h.code.Store(int32(code))
}

func closedPortNumber(t *testing.T) int {
	_, port, _ := net.SplitHostPort(closedPort(t))
	n, _ := strconv.Atoi(port)
	return n
}

func TestHTTPPath(t *testing.T) {
	peer := Peer{ID: "i-peer", AZ: "az-b", IP: loopback}
	ok := api.Healthz{Instance: "i-peer", AZ: "az-b", Healthy: true, Tables: []string{"rtb-b"}, Version: "v1"}
	h := newHealthzServer(t, 200, ok)
	path := HTTPPath{Port: h.port}

	got, err := path.Check(testCtx(t), peer)
	if err != nil {
		t.Fatalf("healthy peer: %v", err)
	}
	if !got.Healthy || got.AZ != "az-b" || len(got.Tables) != 1 || got.Tables[0] != "rtb-b" {
		t.Fatalf("healthy peer parsed as %+v", got)
	}

	// 503 with a JSON body is an answer, not a transport failure.
	h.set(t, 503, api.Healthz{Instance: "i-peer", Healthy: false, Draining: true, Reasons: []string{"draining"}})
	got, err = path.Check(testCtx(t), peer)
	if err != nil {
		t.Fatalf("503 with body: %v", err)
	}
	if got.Healthy || !got.Draining || len(got.Reasons) != 1 || got.Reasons[0] != "draining" {
		t.Fatalf("503 parsed as %+v", got)
	}

	// A 503 whose body claims healthy is still unhealthy.
	h.set(t, 503, ok)
	if got, err = path.Check(testCtx(t), peer); err != nil || got.Healthy {
		t.Fatalf("503 claiming healthy: %+v, %v", got, err)
	}

	failures := []struct {
		name string
		code int
		body string
		want string
	}{
		{"500", 500, `{"instance":"i-peer","healthy":true}`, "status 500"},
		{"503 without JSON", 503, "Service Unavailable", "decode"},
		{"another instance answers", 200, `{"instance":"i-other","healthy":true}`, `"i-other"`},
	}
	for _, f := range failures {
		h.setRaw(f.code, f.body)
		if _, err := path.Check(testCtx(t), peer); err == nil || !strings.Contains(err.Error(), f.want) {
			t.Errorf("%s: err=%v, want mention of %q", f.name, err, f.want)
		}
	}

	if _, err := (HTTPPath{Port: closedPortNumber(t)}).Check(testCtx(t), peer); err == nil {
		t.Error("closed port answered")
	}
	if _, err := (HTTPPath{Port: h.port, Tailnet: true}).Check(testCtx(t), peer); err == nil {
		t.Error("tailnet path without a tailnet IP answered")
	}
	if _, err := (HTTPPath{Port: 0}).Check(testCtx(t), peer); err == nil {
		t.Error("port 0 accepted")
	}
}

func trackerConfig() Config {
	return Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 3, Fall: 3}
}

func TestPeerTrackerRiseFall(t *testing.T) {
	hz := api.Healthz{Instance: "i-b", AZ: "az-b", Healthy: true}
	h := newHealthzServer(t, 200, hz)
	tr, err := NewPeerTracker(trackerConfig(), HTTPPath{Port: h.port}, nil)
	if err != nil {
		t.Fatal(err)
	}
	peers := []Peer{{ID: "i-b", AZ: "az-b", ENI: "eni-b", IP: loopback}}
	t0 := time.Unix(5000, 0)
	probe := func(i int) PeerState {
		st := tr.Probe(testCtx(t), peers, t0.Add(time.Duration(i)*time.Second))
		if len(st) != 1 {
			t.Fatalf("got %d states", len(st))
		}
		return st[0]
	}
	for i := range 2 {
		if s := probe(i); s.Healthy || s.Decided || s.Via != api.ViaVPC {
			t.Fatalf("probe %d: fresh peer passed early: %+v", i, s)
		}
	}
	if s := probe(2); !s.Healthy || !s.Changed || !s.Since.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after rise: %+v", s)
	}

	// The peer starts draining: 503 with draining, seen at once, unhealthy after fall.
	h.set(t, 503, api.Healthz{Instance: "i-b", Draining: true})
	s := probe(3)
	if !s.Healthy || !s.Draining || s.LastErr != "" {
		t.Fatalf("first draining answer: %+v", s)
	}
	probe(4)
	if s = probe(5); s.Healthy || !s.Changed || s.TailnetReachable {
		t.Fatalf("after fall: %+v", s)
	}
	ps := s.Status()
	if ps.ID != "i-b" || ps.PrivateIP != "127.0.0.1" || ps.ENI != "eni-b" || ps.Healthy || !ps.Draining || ps.Via != api.ViaVPC {
		t.Fatalf("status form: %+v", ps)
	}
	if got, ok := tr.State("i-b"); !ok || got.Healthy != s.Healthy || !got.Since.Equal(s.Since) {
		t.Fatalf("State: %+v %v", got, ok)
	}

	// A peer no longer listed is forgotten.
	tr.Probe(testCtx(t), nil, t0.Add(10*time.Second))
	if _, ok := tr.State("i-b"); ok || len(tr.States()) != 0 {
		t.Fatal("unlisted peer kept")
	}
}

func TestPeerTrackerSecondaryPath(t *testing.T) {
	// VPC path: nothing listens. Tailnet path: the peer answers healthy.
	h := newHealthzServer(t, 200, api.Healthz{Instance: "i-c", Healthy: true})
	primary := HTTPPath{Port: closedPortNumber(t)}
	secondary := HTTPPath{Port: h.port, Tailnet: true}
	tr, err := NewPeerTracker(trackerConfig(), primary, secondary)
	if err != nil {
		t.Fatal(err)
	}
	peers := []Peer{
		{ID: "i-c", IP: loopback, TailnetIP: loopback},
		{ID: "i-d", IP: loopback}, // no tailnet address: unreachable on both paths
	}
	t0 := time.Unix(9000, 0)
	var st []PeerState
	for i := range 4 {
		st = tr.Probe(testCtx(t), peers, t0.Add(time.Duration(i)*time.Second))
	}
	c, d := st[0], st[1]
	if c.Healthy || !c.Decided {
		t.Errorf("the secondary path must not make a peer healthy: %+v", c)
	}
	if !c.TailnetReachable || c.Via != api.ViaTailnet || c.LastErr == "" || c.Answer.Instance != "i-c" {
		t.Errorf("partitioned peer: %+v", c)
	}
	if d.TailnetReachable || d.Via != api.ViaNone || d.LastErr == "" || d.Healthy {
		t.Errorf("dead peer: %+v", d)
	}
	if got := tr.States(); len(got) != 2 || got[0].Peer.ID != "i-c" || got[1].Peer.ID != "i-d" {
		t.Errorf("States not sorted by ID: %+v", got)
	}
	if n := h.served.Load(); n != 4 {
		t.Errorf("tailnet path probed %d times over 4 ticks, want 4", n)
	}
}

func TestPeerTrackerPrimaryAnswerWins(t *testing.T) {
	// Both paths reach the same healthy peer: VPC is used, no partition is reported.
	h := newHealthzServer(t, 200, api.Healthz{Instance: "i-e", Healthy: true})
	tr, err := NewPeerTracker(trackerConfig(), HTTPPath{Port: h.port}, HTTPPath{Port: h.port, Tailnet: true})
	if err != nil {
		t.Fatal(err)
	}
	st := tr.Probe(testCtx(t), []Peer{{ID: "i-e", IP: loopback, TailnetIP: loopback}}, time.Unix(1, 0))
	if st[0].Via != api.ViaVPC || st[0].TailnetReachable || st[0].LastErr != "" {
		t.Fatalf("%+v", st[0])
	}
}

func TestNewPeerTrackerRejectsBadInput(t *testing.T) {
	if _, err := NewPeerTracker(Config{}, HTTPPath{Port: 1}, nil); err == nil {
		t.Error("zero config accepted")
	}
	if _, err := NewPeerTracker(trackerConfig(), nil, nil); err == nil {
		t.Error("nil primary accepted")
	}
}

// A refused probe means the peer's kernel answered (its agent is down); a probe that times out
// means nothing answered at all. Only the first sets HostUp.
func TestPeerTrackerHostUpOnlyWhenRefused(t *testing.T) {
	// A port that was just closed refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	// A listener that never accepts and has a full backlog is not refused; a timeout comes
	// from a server that accepts and never answers.
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(silent.Close)
	silentPort := silent.Listener.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name   string
		port   int
		hostUp bool
	}{{"refused", closedPort, true}, {"silent", silentPort, false}} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := NewPeerTracker(trackerConfig(), HTTPPath{Port: tc.port}, nil)
			if err != nil {
				t.Fatal(err)
			}
			st := tr.Probe(testCtx(t), []Peer{{ID: "i-b", IP: loopback}}, time.Unix(1, 0))
			if st[0].LastErr == "" || st[0].HostUp != tc.hostUp {
				t.Fatalf("HostUp = %v (err %q), want %v", st[0].HostUp, st[0].LastErr, tc.hostUp)
			}
		})
	}
}

package health

import (
	"context"
	"fmt"
	"sync"

	"github.com/headnat/headnat/agent/api"
)

// FakePath is a PeerPath whose answers the test sets per peer: an answer, or an error.
// A peer with nothing set fails with "unreachable".
type FakePath struct {
	mu      sync.Mutex
	answers map[string]api.Healthz
	errs    map[string]error
	calls   map[string]int
}

// Answer makes peer answer hz.
func (f *FakePath) Answer(peer string, hz api.Healthz) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	delete(f.errs, peer)
	f.answers[peer] = hz
}

// Fail makes the path to peer fail with err.
func (f *FakePath) Fail(peer string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	delete(f.answers, peer)
	f.errs[peer] = err
}

// Calls is how often peer was asked.
func (f *FakePath) Calls(peer string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[peer]
}

func (f *FakePath) init() {
	if f.answers == nil {
		f.answers, f.errs, f.calls = map[string]api.Healthz{}, map[string]error{}, map[string]int{}
	}
}

func (f *FakePath) Check(ctx context.Context, peer Peer) (api.Healthz, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.init()
	f.calls[peer.ID]++
	if hz, ok := f.answers[peer.ID]; ok {
		return hz, nil
	}
	if err, ok := f.errs[peer.ID]; ok {
		return api.Healthz{}, fmt.Errorf("peer %s: %w", peer.ID, err)
	}
	return api.Healthz{}, fmt.Errorf("peer %s: unreachable", peer.ID)
}

// FakeProbe is an egress probe that fails with Err (nil: passes).
type FakeProbe struct {
	mu  sync.Mutex
	err error
}

// Set makes the probe fail with err from now on (nil: pass).
func (p *FakeProbe) Set(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *FakeProbe) Probe(context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

package tailnetlab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// RequireBinaries skips the test unless it runs as root, and returns the bin directory. When
// HEADNAT_BIN is set, a missing binary fails the test instead of skipping it: whoever set it
// meant these tests to run.
func RequireBinaries(t testing.TB) string {
	t.Helper()
	netns.RequireRoot(t)
	dir, err := FindBin()
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	if err := CheckBin(dir); err != nil {
		if os.Getenv("HEADNAT_BIN") != "" {
			t.Fatal(err)
		}
		t.Skipf("skipping: %v", err)
	}
	return dir
}

// MustStartHeadscale starts headscale for the test and stops it (removing its dir) at the end.
func MustStartHeadscale(t testing.TB, opts HeadscaleOptions) *Headscale {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	h, err := StartHeadscale(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Stop)
	return h
}

// MustStartTailscaled starts tailscaled in ns for the test and stops it at the end.
func MustStartTailscaled(t testing.TB, ns *netns.NS, opts TailscaledOptions) *Tailscaled {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ts, err := StartTailscaled(ctx, ns, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ts.Stop)
	return ts
}

// MustForward starts a loopback forwarder in ns for the test.
func MustForward(t testing.TB, ns *netns.NS, localPort int, target string) *Forwarder {
	t.Helper()
	f, err := Forward(ns, localPort, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// MustLAN makes a switch for the test and removes it at the end.
func MustLAN(t testing.TB, prefix netip.Prefix) *LAN {
	t.Helper()
	netns.RequireRoot(t)
	l, err := NewLAN(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return l
}

// MustJoin links ns to the LAN through ifname and returns its address.
func (l *LAN) MustJoin(t testing.TB, ns *netns.NS, ifname string) netip.Addr {
	t.Helper()
	a, err := l.Join(ns, ifname)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Tailnet is the usual test setup: a LAN, headscale in its own namespace on it, and nodes that
// each get a namespace on the LAN, a forwarder to headscale and a tailscaled.
type Tailnet struct {
	Bin  string
	LAN  *LAN
	HSNS *netns.NS
	HS   *Headscale
}

// TailnetOptions configure NewTailnet. Policy is required.
type TailnetOptions struct {
	Prefix                      netip.Prefix // LAN; default 198.18.77.0/24
	Policy                      []byte
	ProbeInterval, ProbeTimeout time.Duration // headscale's HA prober; defaults 2s and 1s
	LogLevel                    string
}

// NewTailnet builds a LAN and starts headscale on it, all removed when the test ends.
func NewTailnet(t testing.TB, opts TailnetOptions) *Tailnet {
	t.Helper()
	bin := RequireBinaries(t)
	if !opts.Prefix.IsValid() {
		opts.Prefix = netip.MustParsePrefix("198.18.77.0/24")
	}
	lan := MustLAN(t, opts.Prefix)
	hsns := netns.New(t, "hs")
	addr := lan.MustJoin(t, hsns, "eth0")
	hs := MustStartHeadscale(t, HeadscaleOptions{
		NS: hsns, Addr: addr, Policy: opts.Policy, Bin: bin,
		ProbeInterval: opts.ProbeInterval, ProbeTimeout: opts.ProbeTimeout, LogLevel: opts.LogLevel,
	})
	return &Tailnet{Bin: bin, LAN: lan, HSNS: hsns, HS: hs}
}

// TNode is one tailnet node made by AddNode.
type TNode struct {
	NS   *netns.NS
	Addr netip.Addr // on the LAN (interface eth0)
	TS   *Tailscaled
}

// AddNode makes a namespace on the LAN with a forwarder to headscale and a running (not yet
// logged in) tailscaled. Log it in with TS.Up(ctx, tn.HS.ServerURL, ...) or a tailnet.Router
// on TS.Socket().
func (tn *Tailnet) AddNode(t testing.TB, role string) *TNode {
	t.Helper()
	ns := netns.New(t, role)
	addr := tn.LAN.MustJoin(t, ns, "eth0")
	MustForward(t, ns, tn.HS.Port, fmt.Sprintf("%s:%d", tn.HS.Addr, tn.HS.Port))
	ts := MustStartTailscaled(t, ns, TailscaledOptions{Bin: tn.Bin})
	return &TNode{NS: ns, Addr: addr, TS: ts}
}

// WaitNodes polls headscale's node list until ok accepts it or timeout passes.
func (h *Headscale) WaitNodes(t testing.TB, timeout time.Duration, what string, ok func([]Node) bool) []Node {
	t.Helper()
	var last []Node
	err := poll(timeout, 250*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		nodes, err := h.Nodes(ctx)
		if err != nil {
			return err
		}
		last = nodes
		if !ok(nodes) {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v; nodes: %+v", what, err, last)
	}
	return last
}

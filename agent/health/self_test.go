package health

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func hasReason(rs []string, sub string) bool {
	return slices.ContainsFunc(rs, func(r string) bool { return strings.Contains(r, sub) })
}

func selfConfig() Config {
	// Generous timeout: it only bounds the loopback probes.
	return Config{Interval: 10 * time.Second, Timeout: 5 * time.Second, Rise: 2, Fall: 2}
}

func TestSelf(t *testing.T) {
	var findings atomic.Pointer[[]string]
	findings.Store(&[]string{})
	var verr atomic.Pointer[error]
	v := VerifierFunc(func(ctx context.Context) ([]string, error) {
		if p := verr.Load(); p != nil {
			return nil, *p
		}
		return *findings.Load(), nil
	})
	good, bad := TCPProbe{Addr: openPort(t)}, TCPProbe{Addr: closedPort(t)}
	egress := &KofN{K: 1, Probes: []Probe{good, bad}}
	s, err := NewSelf(selfConfig(), egress, v)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	tick := 0
	check := func() SelfResult {
		tick++
		return s.Check(testCtx(t), t0.Add(time.Duration(tick)*time.Second))
	}

	if r := s.Last(); r.Healthy || !hasReason(r.Reasons, "not checked") {
		t.Fatalf("before any check: %+v", r)
	}
	r := check()
	if r.Healthy || !hasReason(r.Reasons, "rising: 1 of 2") {
		t.Fatalf("fresh start passed at once: %+v", r)
	}
	if len(r.Probes) != 2 || r.Probes[0].Err != nil || r.Probes[1].Err == nil {
		t.Fatalf("probe results: %+v", r.Probes)
	}
	r = check()
	if !r.Healthy || !r.Changed || !slices.Equal(r.Reasons, []string{"ok"}) {
		t.Fatalf("after rise: %+v", r)
	}

	// Data-plane findings make it unhealthy after fall.
	findings.Store(&[]string{"forwarding disabled"})
	if r = check(); !r.Healthy || !hasReason(r.Reasons, "dataplane: forwarding disabled") {
		t.Fatalf("first finding: %+v", r)
	}
	if r = check(); r.Healthy || !r.Changed || !hasReason(r.Reasons, "forwarding disabled") {
		t.Fatalf("after fall: %+v", r)
	}
	if !slices.Equal(r.Findings, []string{"forwarding disabled"}) {
		t.Fatalf("findings: %v", r.Findings)
	}
	findings.Store(&[]string{})
	check()
	if r = check(); !r.Healthy {
		t.Fatalf("recovered: %+v", r)
	}

	// A verifier error counts as a failure.
	e := errors.New("iptables locked")
	verr.Store(&e)
	check()
	if r = check(); r.Healthy || !hasReason(r.Reasons, "iptables locked") {
		t.Fatalf("verifier error: %+v", r)
	}
	verr.Store(nil)
	check()
	check()

	// Egress below K fails.
	egress.K = 2
	check()
	if r = check(); r.Healthy || !hasReason(r.Reasons, "egress: 1 of 2") {
		t.Fatalf("egress below k: %+v", r)
	}
	egress.K = 1
	check()
	if r = check(); !r.Healthy {
		t.Fatalf("egress back: %+v", r)
	}

	// Draining is immediate, in Last and in the next check, and reversible.
	s.SetDraining(true)
	if l := s.Last(); l.Healthy || !l.Draining || !hasReason(l.Reasons, "draining") {
		t.Fatalf("Last after SetDraining: %+v", l)
	}
	if r = check(); r.Healthy || !r.Draining || !slices.Equal(r.Reasons, []string{"draining"}) {
		t.Fatalf("check while draining: %+v", r)
	}
	s.SetDraining(false)
	if l := s.Last(); l.Healthy || l.Draining || slices.Contains(l.Reasons, "draining") {
		t.Fatalf("Last after undrain: %+v", l)
	}
	if r = check(); !r.Healthy || r.Draining {
		t.Fatalf("check after undrain: %+v", r)
	}
}

func TestNewSelfRejectsBadInput(t *testing.T) {
	if _, err := NewSelf(Config{}, nil, nil); err == nil {
		t.Error("zero config accepted")
	}
	if _, err := NewSelf(selfConfig(), &KofN{K: 2, Probes: []Probe{TCPProbe{}}}, nil); err == nil {
		t.Error("k above n accepted")
	}
}

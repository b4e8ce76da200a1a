package health

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Verifier checks the data plane (sysctls, iptables chains, routes). Findings are problems
// found; any finding, or an error, makes the instance unhealthy.
type Verifier interface {
	Verify(ctx context.Context) ([]string, error)
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context) ([]string, error)

func (f VerifierFunc) Verify(ctx context.Context) ([]string, error) { return f(ctx) }

// SelfResult is the outcome of one Self.Check.
type SelfResult struct {
	Healthy  bool      // after rise/fall, and false while draining or held
	Passing  bool      // the rise/fall verdict alone, draining and holds aside
	Decided  bool      // rise/fall reached a verdict since the start (false: starting)
	Changed  bool      // Healthy changed with this check
	Since    time.Time // when the current rise/fall verdict began
	Draining bool
	Reasons  []string      // why unhealthy, or "ok"
	Probes   []ProbeResult // egress probe results, in Egress.Probes order
	Findings []string      // data-plane findings of this check
}

// Self combines egress probes, the data-plane verifier and the draining flag into the
// instance's own health. Egress and verifier results go through rise/fall; draining takes
// effect at once, so that a planned hand-off starts on the peers' next probe.
type Self struct {
	timeout  time.Duration
	egress   *KofN    // nil: no egress check
	verifier Verifier // nil: no data-plane check

	mu       sync.Mutex
	rf       *RiseFall
	draining bool
	hold     string // why the instance is kept out of service ("" none)
	last     SelfResult
}

// NewSelf returns a checker that starts unhealthy until cfg.Rise consecutive checks pass.
// egress and verifier may be nil to skip that check.
func NewSelf(cfg Config, egress *KofN, verifier Verifier) (*Self, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if egress != nil {
		if err := egress.Validate(); err != nil {
			return nil, fmt.Errorf("egress probes: %w", err)
		}
	}
	s := &Self{timeout: cfg.Timeout, egress: egress, verifier: verifier, rf: NewRiseFall(cfg.Rise, cfg.Fall)}
	s.last = SelfResult{Reasons: []string{"not checked yet"}}
	return s, nil
}

// SetDraining marks the instance as draining (or not); it shows in the next Check and Last.
func (s *Self) SetDraining(d bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.draining = d
	s.last.Draining = d
	if d {
		s.last.Healthy = false
		if !slices.Contains(s.last.Reasons, "draining") {
			s.last.Reasons = append([]string{"draining"}, s.last.Reasons...)
		}
		return
	}
	// Stay unhealthy until the next Check says otherwise.
	s.last.Reasons = slices.DeleteFunc(slices.Clone(s.last.Reasons), func(r string) bool { return r == "draining" })
	if len(s.last.Reasons) == 0 {
		s.last.Reasons = []string{"not checked since draining ended"}
	}
}

// SetHold keeps the instance unhealthy for peers, whatever its checks say, with the reason
// shown (a launch not completed yet); "" lifts the hold. Passing still reports the checks.
func (s *Self) SetHold(reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold == reason {
		return
	}
	old := s.hold
	s.hold = reason
	rs := slices.DeleteFunc(slices.Clone(s.last.Reasons), func(r string) bool { return r == old && old != "" })
	if reason != "" {
		s.last.Healthy = false
		rs = append([]string{reason}, rs...)
	}
	if len(rs) == 0 {
		rs = []string{"not checked since the hold ended"}
	}
	s.last.Reasons = rs
}

// Draining reports the draining flag.
func (s *Self) Draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// Check runs the egress probes and the verifier concurrently, each bounded by the configured
// timeout, and feeds the combined result observed at now through rise/fall.
func (s *Self) Check(ctx context.Context, now time.Time) SelfResult {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()

	var (
		wg       sync.WaitGroup
		probes   []ProbeResult
		findings []string
		verr     error
	)
	if s.egress != nil {
		wg.Go(func() { probes = s.egress.Run(ctx) })
	}
	if s.verifier != nil {
		wg.Go(func() { findings, verr = s.verifier.Verify(ctx) })
	}
	wg.Wait()

	var failures []string
	if s.egress != nil {
		if err := s.egress.Verdict(probes); err != nil {
			failures = append(failures, "egress: "+err.Error())
		}
	}
	if verr != nil {
		failures = append(failures, "dataplane: verify: "+verr.Error())
	}
	for _, f := range findings {
		failures = append(failures, "dataplane: "+f)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	healthy, changed := s.rf.Observe(len(failures) == 0, now)
	r := SelfResult{
		Healthy:  healthy && !s.draining && s.hold == "",
		Passing:  healthy,
		Changed:  changed,
		Decided:  s.rf.Decided(),
		Since:    s.rf.Since(),
		Draining: s.draining,
		Probes:   probes,
		Findings: findings,
	}
	if s.draining {
		r.Reasons = append(r.Reasons, "draining")
	}
	if s.hold != "" {
		r.Reasons = append(r.Reasons, s.hold)
	}
	r.Reasons = append(r.Reasons, failures...)
	if len(failures) == 0 && !healthy {
		passes, _ := s.rf.Streak()
		r.Reasons = append(r.Reasons, fmt.Sprintf("rising: %d of %d consecutive passes", passes, s.rf.rise))
	}
	if len(r.Reasons) == 0 {
		r.Reasons = []string{"ok"}
	}
	s.last = r
	return r
}

// Last returns the result of the latest Check (reflecting SetDraining since).
func (s *Self) Last() SelfResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.last
	r.Reasons = slices.Clone(r.Reasons)
	return r
}

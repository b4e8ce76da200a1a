package control

import (
	"slices"
	"sync"

	"github.com/headnat/headnat/agent/api"
)

// Fake is an Agent for tests. It drains and undrains the way Agent documents, keeps its state
// in an api.Status, and its held route tables (Self.Tables) go to peers only when told.
type Fake struct {
	mu             sync.Mutex
	st             api.Status
	handOverPerGet int
	err            error
	drains         int
	undrains       int
}

var _ Agent = (*Fake)(nil)

// NewFake returns an in-service agent with the status st.
func NewFake(st api.Status) *Fake {
	if st.Self.Lifecycle == "" {
		st.Self.Lifecycle = api.LifecycleInService
	}
	return &Fake{st: st}
}

// StartDrain starts a drain for reason, as a spot notice or a termination would.
func (f *Fake) StartDrain(reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.startDrain(reason)
}

// HandOver gives n held route tables (all when n < 0) to peers; with none left the instance
// is drained.
func (f *Fake) HandOver(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handOver(n)
}

// HandOverOnStatus makes every Status call while draining hand n tables over first.
func (f *Fake) HandOverOnStatus(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handOverPerGet = n
}

// FailWith makes Drain and Undrain return err (nil: behave again).
func (f *Fake) FailWith(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

// Calls counts the Drain and Undrain calls that changed the state.
func (f *Fake) Calls() (drains, undrains int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.drains, f.undrains
}

func (f *Fake) Drain(note string) (DrainResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return DrainResult{}, f.err
	}
	already := f.st.Self.Draining
	if !already {
		f.drains++
		f.startDrain(OperatorReason(note))
	}
	s := f.st.Self
	return DrainResult{Instance: s.Instance, Already: already, Reason: s.DrainReason, Lifecycle: s.Lifecycle, Tables: slices.Clone(s.Tables)}, nil
}

func (f *Fake) Undrain() (UndrainResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return UndrainResult{}, f.err
	}
	s := &f.st.Self
	if !s.Draining {
		return UndrainResult{}, ErrNotDraining
	}
	if Cause(s.DrainReason) != api.DrainOperator {
		return UndrainResult{}, NotOperatorDrain(s.DrainReason)
	}
	f.undrains++
	res := UndrainResult{Instance: s.Instance, Reason: s.DrainReason, Lifecycle: api.LifecycleInService}
	s.Draining, s.DrainReason, s.Lifecycle = false, "", api.LifecycleInService
	return res, nil
}

func (f *Fake) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.Self.Draining && f.handOverPerGet != 0 {
		f.handOver(f.handOverPerGet)
	}
	st := f.st
	st.Self.Tables = slices.Clone(st.Self.Tables)
	st.Peers = slices.Clone(st.Peers)
	st.Tables = slices.Clone(st.Tables)
	return st
}

func (f *Fake) startDrain(reason string) {
	s := &f.st.Self
	s.Draining, s.DrainReason, s.Lifecycle = true, reason, api.LifecycleDraining
	if len(s.Tables) == 0 {
		s.Lifecycle = api.LifecycleDrained
	}
}

func (f *Fake) handOver(n int) {
	s := &f.st.Self
	if n < 0 || n > len(s.Tables) {
		n = len(s.Tables)
	}
	s.Tables = slices.Clone(s.Tables[n:])
	if s.Draining && len(s.Tables) == 0 {
		s.Lifecycle = api.LifecycleDrained
	}
}

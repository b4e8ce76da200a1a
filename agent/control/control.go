// Package control is the agent's root-only control socket: HTTP over a unix socket that
// `headnat drain`, `headnat undrain` and `headnat status --socket` talk to. The agent
// implements Agent; the server only calls it and maps its errors to HTTP status codes.
package control

import (
	"errors"
	"fmt"
	"strings"

	"github.com/headnat/headnat/agent/api"
)

// HTTP paths served on the control socket (GET api.PathStatus too).
const (
	PathDrain   = "/drain"
	PathUndrain = "/undrain"
)

// MaxNoteLen bounds the operator's note on a drain.
const MaxNoteLen = 200

// Agent is what the control socket drives. Every method must be safe for concurrent use and
// return promptly: Drain starts a drain, it does not wait for the hand-over.
type Agent interface {
	// Drain starts an operator drain; note is the operator's free text ("" allowed), already
	// checked by CheckNote. An instance that is already draining or drained, whatever the
	// cause, keeps that drain and answers Already with the reason that holds.
	Drain(note string) (DrainResult, error)
	// Undrain ends an operator drain and puts the instance back in service. It fails with
	// ErrNotDraining when there is no drain, and with NotOperatorDrain(reason) when the drain
	// was not started by an operator (a spot notice or a termination cannot be undone).
	Undrain() (UndrainResult, error)
	// Status is the agent's whole view, as served on its HTTP /status.
	Status() api.Status
}

// DrainRequest is the body of POST /drain.
type DrainRequest struct {
	Reason string `json:"reason,omitempty"` // the operator's note, e.g. "kernel upgrade"
}

// DrainResult is the answer to POST /drain.
type DrainResult struct {
	Instance string `json:"instance"`
	// Already: the instance was draining or drained before this request; Reason is then the
	// earlier drain's, and the request's note is dropped.
	Already bool `json:"already"`
	// Reason is the drain's api.Healthz.DrainReason, e.g. "operator: kernel upgrade".
	Reason    string   `json:"reason"`
	Lifecycle string   `json:"lifecycle"`        // api.LifecycleDraining or api.LifecycleDrained
	Tables    []string `json:"tables,omitempty"` // route tables that still target the instance
}

// UndrainResult is the answer to POST /undrain.
type UndrainResult struct {
	Instance  string `json:"instance"`
	Reason    string `json:"reason"`    // the drain that was ended
	Lifecycle string `json:"lifecycle"` // now, normally api.LifecycleInService
}

// ErrorResponse is the body of every answer that is not 2xx.
type ErrorResponse struct {
	Error string `json:"error"`
}

var (
	// ErrRefused: the agent's state does not allow the request (HTTP 409).
	ErrRefused = errors.New("refused")
	// ErrInvalid: the request itself is wrong (HTTP 400).
	ErrInvalid = errors.New("invalid request")
	// ErrNotDraining is Undrain's error for an instance that is not draining.
	ErrNotDraining = Refused("not draining: the instance is in service")
)

// Refused returns an error that the server answers with 409 and its message.
func Refused(format string, a ...any) error {
	return &statusError{msg: fmt.Sprintf(format, a...), kind: ErrRefused}
}

// Invalid returns an error that the server answers with 400 and its message.
func Invalid(format string, a ...any) error {
	return &statusError{msg: fmt.Sprintf(format, a...), kind: ErrInvalid}
}

type statusError struct {
	msg  string
	kind error
}

func (e *statusError) Error() string        { return e.msg }
func (e *statusError) Is(target error) bool { return target == e.kind }

// NotOperatorDrain is Undrain's refusal of a drain that an operator did not start; reason is
// the drain's api.Healthz.DrainReason and the message says what started it.
func NotOperatorDrain(reason string) error {
	what := "it was not started by `headnat drain`"
	switch Cause(reason) {
	case api.DrainSpot:
		what = "EC2 is reclaiming this spot instance"
	case api.DrainTerminateHook:
		what = "the Auto Scaling group is terminating this instance"
	case api.DrainTargetState:
		what = "the Auto Scaling group has set this instance's target lifecycle state to terminated"
	case api.DrainRebalance:
		what = "EC2 recommended rebalancing this spot instance"
	case api.DrainSIGTERM:
		what = "the agent is shutting down (SIGTERM)"
	}
	return Refused("cannot undrain: %s (%s); only an operator's drain can be undone", what, reason)
}

// Cause is the first word of a drain reason: "spot-interruption: at 12:02" gives api.DrainSpot.
func Cause(reason string) string {
	c, _, _ := strings.Cut(reason, ":")
	return strings.TrimSpace(c)
}

// OperatorReason is the drain reason for an operator's drain with note.
func OperatorReason(note string) string {
	if note == "" {
		return api.DrainOperator
	}
	return api.DrainOperator + ": " + note
}

// CheckNote rejects an operator note that does not fit on one status line.
func CheckNote(note string) error {
	if len(note) > MaxNoteLen {
		return Invalid("reason is %d bytes long, at most %d allowed", len(note), MaxNoteLen)
	}
	for _, r := range note {
		if r < ' ' || r == 0x7f || r == '\uFFFD' {
			return Invalid("reason %q: control characters or invalid UTF-8 are not allowed", note)
		}
	}
	return nil
}

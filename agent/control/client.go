package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// requestTimeout bounds one request when ctx has no earlier deadline.
const requestTimeout = 5 * time.Second

// Error is an answer from the agent that is not 2xx. errors.Is matches ErrRefused (409),
// ErrInvalid (400) and fs.ErrPermission (403).
type Error struct {
	Code    int
	Message string
}

func (e *Error) Error() string { return e.Message }

func (e *Error) Is(target error) bool {
	switch target {
	case ErrRefused:
		return e.Code == http.StatusConflict
	case ErrInvalid:
		return e.Code == http.StatusBadRequest
	case fs.ErrPermission:
		return e.Code == http.StatusForbidden
	}
	return false
}

// Drain asks the agent behind socket to start an operator drain with the note reason.
func Drain(ctx context.Context, socket, reason string) (DrainResult, error) {
	var res DrainResult
	err := call(ctx, socket, http.MethodPost, PathDrain, DrainRequest{Reason: reason}, &res)
	return res, err
}

// Undrain asks the agent behind socket to end an operator drain.
func Undrain(ctx context.Context, socket string) (UndrainResult, error) {
	var res UndrainResult
	err := call(ctx, socket, http.MethodPost, PathUndrain, struct{}{}, &res)
	return res, err
}

// Status reads the agent's whole view over socket.
func Status(ctx context.Context, socket string) (api.Status, error) {
	var st api.Status
	err := call(ctx, socket, http.MethodGet, api.PathStatus, nil, &st)
	return st, err
}

func call(ctx context.Context, socket, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://headnat"+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}}
	resp, err := client.Do(req)
	if err != nil {
		return dialError(socket, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the agent's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e ErrorResponse
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: HTTP %d", method, path, resp.StatusCode)
		}
		return &Error{Code: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode the agent's answer to %s: %w", path, err)
	}
	return nil
}

// dialError says what an operator should do about a request that got no answer.
func dialError(socket string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return &hintError{"is the agent running? no socket at " + socket, err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &hintError{"is the agent running? nothing listens on " + socket, err}
	case errors.Is(err, fs.ErrPermission):
		return &hintError{"permission denied: run as root (" + socket + ")", err}
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the agent did not answer on %s in time: %w", socket, err)
	}
	return fmt.Errorf("talk to the agent on %s: %w", socket, err)
}

// hintError replaces a dial error's text by what to do about it, and still wraps it.
type hintError struct {
	msg string
	err error
}

func (e *hintError) Error() string { return e.msg }
func (e *hintError) Unwrap() error { return e.err }

package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// maxBody bounds a request body; a drain note is at most MaxNoteLen bytes.
const maxBody = 4 << 10

// Server serves the control endpoints for one Agent.
type Server struct {
	agent Agent
	log   *slog.Logger
	mux   *http.ServeMux
}

// New builds the server; a nil log discards. It panics if a is nil (a wiring bug).
func New(a Agent, log *slog.Logger) *Server {
	if a == nil {
		panic("control.New: nil Agent")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{agent: a, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST "+PathDrain, s.drain)
	s.mux.HandleFunc("POST "+PathUndrain, s.undrain)
	s.mux.HandleFunc("GET "+api.PathStatus, s.status)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathDrain, PathUndrain:
			s.writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s takes POST, not %s", r.URL.Path, r.Method))
		case api.PathStatus:
			s.writeError(w, http.StatusMethodNotAllowed, fmt.Errorf("%s takes GET, not %s", r.URL.Path, r.Method))
		default:
			s.writeError(w, http.StatusNotFound, fmt.Errorf("no endpoint %s", r.URL.Path))
		}
	})
	return s
}

// Listen prepares path for the server: it creates the parent directory (0700) if missing,
// replaces a stale socket file that nobody answers on, listens and makes the socket 0600. A
// socket another agent still listens on is left alone and is an error.
func Listen(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Until the chmod the socket has the umask's mode; the peer uid check covers that window.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	// Serve removes the file itself, and only if it is still this socket.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	return ln, nil
}

// removeStale removes path if it is a socket nothing listens on.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket: %s exists and is not a socket; remove it or set control_socket", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("control socket: another agent is listening on %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("control socket: check whether %s is in use: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket: remove stale %s: %w", path, err)
	}
	return nil
}

type peerKey struct{}

type peer struct {
	uid uint32
	err error
}

// Serve serves on ln (from Listen) until ctx ends, then shuts down (bounded to 2s) and removes
// the socket file if it is still the one ln listens on.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	var sock string
	var sockInfo fs.FileInfo
	if ul, ok := ln.(*net.UnixListener); ok {
		sock = ul.Addr().String()
		sockInfo, _ = os.Stat(sock)
	}
	defer func() {
		if sockInfo == nil {
			return
		}
		if fi, err := os.Stat(sock); err == nil && os.SameFile(fi, sockInfo) {
			if err := os.Remove(sock); err != nil {
				s.log.Warn("remove control socket", "path", sock, "err", err)
			}
		}
	}()
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			uid, err := peerUID(c)
			return context.WithValue(ctx, peerKey{}, peer{uid, err})
		},
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve control socket %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down control socket: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve control socket %s: %w", ln.Addr(), err)
	}
	return nil
}

// ServeHTTP refuses peers that are neither root nor the agent's own user, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p, ok := r.Context().Value(peerKey{}).(peer)
	if !ok {
		p.err = errors.New("no peer credentials")
	}
	if p.err != nil || !peerAllowed(p.uid, os.Getuid()) {
		why := fmt.Sprintf("uid %d", p.uid)
		if p.err != nil {
			why = p.err.Error()
		}
		s.log.Warn("control socket: peer refused", "peer", why, "method", r.Method, "path", r.URL.Path)
		s.writeError(w, http.StatusForbidden, fmt.Errorf("permission denied: run as root (peer %s)", why))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// peerAllowed: root, or the user the agent runs as.
func peerAllowed(uid uint32, self int) bool {
	return uid == 0 || (self >= 0 && uint64(uid) == uint64(self))
}

func (s *Server) drain(w http.ResponseWriter, r *http.Request) {
	var req DrainRequest
	if err := decodeBody(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := CheckNote(req.Reason); err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.agent.Drain(req.Reason)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("control socket: drain", "note", req.Reason, "already", res.Already, "reason", res.Reason, "tables", res.Tables)
	s.writeJSON(w, http.StatusOK, res)
}

func (s *Server) undrain(w http.ResponseWriter, r *http.Request) {
	if err := decodeBody(w, r, &struct{}{}); err != nil {
		s.fail(w, r, err)
		return
	}
	res, err := s.agent.Undrain()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("control socket: undrain", "ended", res.Reason, "lifecycle", res.Lifecycle)
	s.writeJSON(w, http.StatusOK, res)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.agent.Status()
	st.Config.HeadscaleURL = api.SafeURL(st.Config.HeadscaleURL)
	s.writeJSON(w, http.StatusOK, st)
}

// decodeBody reads one JSON object into v; an empty body leaves v as it is.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if errors.As(err, new(*http.MaxBytesError)) {
			return Invalid("request body over %d bytes", maxBody)
		}
		return fmt.Errorf("read request body: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Invalid("bad request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return Invalid("bad request body: more than one JSON value")
	}
	return nil
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrRefused):
		code = http.StatusConflict
	}
	s.log.Warn("control socket: request failed", "method", r.Method, "path", r.URL.Path, "code", code, "err", err)
	s.writeError(w, code, err)
}

func (s *Server) writeError(w http.ResponseWriter, code int, err error) {
	s.writeJSON(w, code, ErrorResponse{Error: err.Error()})
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("control socket: encode response", "err", err)
		code, b = http.StatusInternalServerError, []byte(`{"error":"encode response"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

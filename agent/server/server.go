// Package server is the agent's HTTP face: /healthz (what peers probe), /status (the whole
// view as JSON) and /metrics (Prometheus). It only reads state through Source.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// Source supplies the agent's current state; both methods must be cheap and safe for
// concurrent use (peers call /healthz several times a second).
type Source interface {
	Healthz() api.Healthz
	Status() api.Status
}

// SourceFuncs adapts two functions to Source.
type SourceFuncs struct {
	HealthzFunc func() api.Healthz
	StatusFunc  func() api.Status
}

func (f SourceFuncs) Healthz() api.Healthz { return f.HealthzFunc() }
func (f SourceFuncs) Status() api.Status   { return f.StatusFunc() }

// Options configures New.
type Options struct {
	Source  Source       // required
	Metrics *Metrics     // nil: a fresh NewMetrics with empty build info
	Logger  *slog.Logger // nil: discard
}

// Server serves /healthz, /status and /metrics.
type Server struct {
	src     Source
	metrics *Metrics
	log     *slog.Logger
	mux     *http.ServeMux
}

// New builds the server; it panics if opts.Source is nil (a wiring bug).
func New(opts Options) *Server {
	if opts.Source == nil {
		panic("server.New: nil Source")
	}
	s := &Server{src: opts.Source, metrics: opts.Metrics, log: opts.Logger, mux: http.NewServeMux()}
	if s.metrics == nil {
		s.metrics = NewMetrics(MetricsOptions{})
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.mux.HandleFunc("GET "+api.PathHealthz, s.healthz)
	s.mux.HandleFunc("GET "+api.PathStatus, s.status)
	s.mux.Handle("GET "+api.PathMetrics, s.metrics.Handler())
	return s
}

// Metrics returns the metrics the server exposes.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve serves on ln until ctx is done, then shuts down gracefully (bounded to 2s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 2 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down http server: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http on %s: %w", ln.Addr(), err)
	}
	return nil
}

// healthz answers 200 when healthy, 503 (same JSON) when unhealthy or draining.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	hz := s.src.Healthz()
	if hz.Draining {
		hz.Healthy = false
		if !slices.Contains(hz.Reasons, "draining") {
			hz.Reasons = append([]string{"draining"}, hz.Reasons...)
		}
	}
	if hz.Tables == nil {
		hz.Tables = []string{}
	}
	code := http.StatusOK
	if !hz.Healthy {
		code = http.StatusServiceUnavailable
	}
	s.writeJSON(w, code, hz)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st := s.src.Status()
	if st.Self.Tables == nil {
		st.Self.Tables = []string{}
	}
	st.Peers = nonNil(st.Peers)
	st.Tables = nonNil(st.Tables)
	st.Decisions = nonNil(st.Decisions)
	st.Findings = nonNil(st.Findings)
	st.Config.HeadscaleURL = api.SafeURL(st.Config.HeadscaleURL)
	s.writeJSON(w, http.StatusOK, st)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		s.log.Error("encode response", "err", err)
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

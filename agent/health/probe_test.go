package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// testCtx bounds a probe run; the limit only keeps a broken test from hanging.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// openPort returns a loopback address that accepts connections until the test ends.
func openPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func statusServer(t *testing.T, code int) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestTCPProbe(t *testing.T) {
	if err := (TCPProbe{Addr: openPort(t)}).Probe(testCtx(t)); err != nil {
		t.Fatalf("open port: %v", err)
	}
	addr := closedPort(t)
	err := TCPProbe{Addr: addr}.Probe(testCtx(t))
	if err == nil {
		t.Fatal("closed port passed")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name %s", err, addr)
	}
}

func TestTCPProbeHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := (TCPProbe{Addr: openPort(t)}).Probe(ctx); err == nil {
		t.Fatal("probe with a cancelled context passed")
	}
}

func TestHTTPProbe(t *testing.T) {
	cases := []struct {
		code int
		pass bool
	}{{200, true}, {204, true}, {301, false}, {404, false}, {500, false}, {503, false}}
	for _, tc := range cases {
		s := statusServer(t, tc.code)
		err := HTTPProbe{URL: s.URL + "/"}.Probe(testCtx(t))
		if (err == nil) != tc.pass {
			t.Errorf("status %d: err=%v, want pass=%v", tc.code, err, tc.pass)
		}
	}
	s := statusServer(t, 200)
	if err := (HTTPProbe{URL: s.URL, Client: s.Client()}).Probe(testCtx(t)); err != nil {
		t.Errorf("explicit client: %v", err)
	}
	if err := (HTTPProbe{URL: "http://" + closedPort(t) + "/"}).Probe(testCtx(t)); err == nil {
		t.Error("closed port passed")
	}
	if err := (HTTPProbe{URL: "::bad"}).Probe(testCtx(t)); err == nil {
		t.Error("bad URL passed")
	}
}

func TestKofN(t *testing.T) {
	pass := []Probe{TCPProbe{Addr: openPort(t)}, HTTPProbe{URL: statusServer(t, 200).URL}}
	fail := []Probe{TCPProbe{Addr: closedPort(t)}, HTTPProbe{URL: statusServer(t, 500).URL}}
	all := append(append([]Probe{}, pass...), fail...) // 2 of 4 pass
	cases := []struct {
		k    int
		pass bool
	}{{1, true}, {2, true}, {3, false}, {4, false}}
	for _, tc := range cases {
		err := KofN{K: tc.k, Probes: all}.Probe(testCtx(t))
		if (err == nil) != tc.pass {
			t.Errorf("k=%d: err=%v, want pass=%v", tc.k, err, tc.pass)
		}
		if err != nil {
			for _, p := range fail {
				if !strings.Contains(err.Error(), strings.TrimPrefix(ProbeName(p), "tcp://")) {
					t.Errorf("k=%d: error %q does not list failed probe %s", tc.k, err, ProbeName(p))
				}
			}
			if !strings.Contains(err.Error(), "2 of 4") {
				t.Errorf("k=%d: error %q does not count passes", tc.k, err)
			}
		}
	}

	res := KofN{K: 1, Probes: all}.Run(testCtx(t))
	for i, r := range res {
		if (r.Err == nil) != (i < len(pass)) {
			t.Errorf("result %d (%s): err=%v", i, r.Name, r.Err)
		}
		if r.Name != ProbeName(all[i]) {
			t.Errorf("result %d named %q, want %q", i, r.Name, ProbeName(all[i]))
		}
	}

	for _, bad := range []KofN{{K: 0, Probes: all}, {K: 5, Probes: all}, {K: 1}} {
		if err := bad.Probe(testCtx(t)); err == nil {
			t.Errorf("k=%d of %d accepted", bad.K, len(bad.Probes))
		}
	}
}

package health

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Probe is one check. It must honour ctx's deadline: the caller bounds each run with a timeout.
type Probe interface {
	Probe(ctx context.Context) error
}

// TCPProbe passes when a TCP connection to Addr (host:port) is established.
type TCPProbe struct {
	Addr string
}

func (p TCPProbe) String() string { return "tcp://" + p.Addr }

func (p TCPProbe) Probe(ctx context.Context) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return fmt.Errorf("tcp probe %s: %w", p.Addr, err)
	}
	return c.Close()
}

// NewClient is a probe client: a fresh connection per probe (no keep-alive hides a broken
// path), no proxy from the environment, no redirects, and every dial bounded by dialTimeout.
// The bound matters: net/http completes a dial in the background after the request that
// started it gave up, so an unbounded dial to a silent peer would hold a half-open socket and
// a goroutine for the kernel's whole SYN retry time, one per probe.
func NewClient(dialTimeout time.Duration) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			DialContext:       (&net.Dialer{Timeout: dialTimeout}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

var defaultClient = NewClient(time.Second)

// HTTPProbe passes when a GET of URL answers 2xx. A nil Client uses a client without
// keep-alives, proxies or redirects.
type HTTPProbe struct {
	URL    string
	Client *http.Client
}

func (p HTTPProbe) String() string { return p.URL }

func (p HTTPProbe) Probe(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return fmt.Errorf("http probe %s: %w", p.URL, err)
	}
	c := p.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("http probe: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("http probe %s: status %s", p.URL, resp.Status)
	}
	return nil
}

// ProbeName names a probe for logs and metrics: its String() if it has one.
func ProbeName(p Probe) string {
	if s, ok := p.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", p)
}

// ProbeResult is the outcome of one probe of a KofN run.
type ProbeResult struct {
	Name string
	Err  error
}

// KofN passes when at least K of Probes pass. All probes run concurrently and are all awaited.
type KofN struct {
	K      int
	Probes []Probe
}

// Validate rejects K outside 1..len(Probes).
func (k KofN) Validate() error {
	if len(k.Probes) == 0 {
		return fmt.Errorf("k-of-n: no probes")
	}
	if k.K < 1 || k.K > len(k.Probes) {
		return fmt.Errorf("k-of-n: k must be between 1 and %d, got %d", len(k.Probes), k.K)
	}
	return nil
}

// Run runs every probe concurrently and returns their results in Probes order.
func (k KofN) Run(ctx context.Context) []ProbeResult {
	res := make([]ProbeResult, len(k.Probes))
	var wg sync.WaitGroup
	for i, p := range k.Probes {
		wg.Go(func() {
			res[i] = ProbeResult{Name: ProbeName(p), Err: p.Probe(ctx)}
		})
	}
	wg.Wait()
	return res
}

// Probe runs all probes and fails unless at least K passed; the error lists the failures.
func (k KofN) Probe(ctx context.Context) error {
	if err := k.Validate(); err != nil {
		return err
	}
	return k.Verdict(k.Run(ctx))
}

// Verdict turns the results of Run into Probe's answer.
func (k KofN) Verdict(res []ProbeResult) error {
	passed := 0
	var failed []string
	for _, r := range res {
		if r.Err == nil {
			passed++
		} else {
			failed = append(failed, r.Err.Error())
		}
	}
	if passed >= k.K {
		return nil
	}
	return fmt.Errorf("%d of %d probes passed, need %d: %s", passed, len(res), k.K, strings.Join(failed, "; "))
}

package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
)

// Client returns an HTTP client whose connections start inside the named namespace, one fresh
// connection per request (so every request takes the current route).
func (l *Lab) Client(nsName string, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       DialerIn(nsName),
			DisableKeepAlives: true,
			Proxy:             nil,
		},
	}
}

// Echo makes one request from the site's private host to the echo server and returns the
// address the server saw (the EIP of the NAT the traffic left through).
func (l *Lab) Echo(ctx context.Context, site *Site, timeout time.Duration) (string, error) {
	return l.get(ctx, site.Host.Name, EchoURL(), timeout, 256)
}

// get makes one GET from inside a namespace on a fresh connection bounded by timeout and
// returns at most limit bytes of the body, without surrounding space; not 200 is an error.
func (l *Lab) get(ctx context.Context, nsName, url string, timeout time.Duration, limit int64) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := l.Client(nsName, timeout).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// SiteByEIP returns the NAT instance whose EIP is ip: the live one, else the terminated one
// that had it last; nil if none.
func (l *Lab) SiteByEIP(ip string) *Site {
	return l.findSite(func(s *Site) bool { return s.EIP == ip })
}

// WaitEgress polls from host's site until the echo server sees via's EIP, bounded by timeout.
func (l *Lab) WaitEgress(ctx context.Context, host, via *Site, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	var lastErr error
	for {
		got, err := l.Echo(ctx, host, time.Second)
		if err == nil && got == via.EIP {
			return nil
		}
		last, lastErr = got, err
		if time.Now().After(deadline) {
			return fmt.Errorf("host-%s did not egress through nat-%s (%s) within %s: last saw %q, err %v",
				host.Name, via.Name, via.EIP, timeout, last, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitHome waits until every private host egresses through its own AZ's NAT.
func (l *Lab) WaitHome(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for _, s := range l.Sites() {
		if err := l.WaitEgress(ctx, s, s, time.Until(deadline)); err != nil {
			return err
		}
	}
	return nil
}

// agentGet fetches a path from a site's agent, from inside its own namespace (so it works even
// when the instance's links are down).
func (l *Lab) agentGet(ctx context.Context, s *Site, path string, into any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", AgentPort, path), nil)
	if err != nil {
		return 0, err
	}
	resp, err := l.Client(s.NAT.Name, 2*time.Second).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(into); err != nil {
		return resp.StatusCode, fmt.Errorf("decode %s: %w", path, err)
	}
	return resp.StatusCode, nil
}

// Healthz fetches the site's agent /healthz; code is the HTTP status (200 healthy, 503 not).
func (l *Lab) Healthz(ctx context.Context, site string) (api.Healthz, int, error) {
	s, err := l.Site(site)
	if err != nil {
		return api.Healthz{}, 0, err
	}
	var hz api.Healthz
	code, err := l.agentGet(ctx, s, api.PathHealthz, &hz)
	return hz, code, err
}

// AgentStatus fetches the site's agent /status.
func (l *Lab) AgentStatus(ctx context.Context, site string) (api.Status, error) {
	s, err := l.Site(site)
	if err != nil {
		return api.Status{}, err
	}
	var st api.Status
	_, err = l.agentGet(ctx, s, api.PathStatus, &st)
	return st, err
}

// WaitHealthz polls a site's /healthz until want reports true, bounded by timeout.
func (l *Lab) WaitHealthz(ctx context.Context, site string, timeout time.Duration, want func(api.Healthz, int) bool) error {
	deadline := time.Now().Add(timeout)
	var lastErr error
	var last api.Healthz
	var lastCode int
	for {
		hz, code, err := l.Healthz(ctx, site)
		if err == nil && want(hz, code) {
			return nil
		}
		last, lastCode, lastErr = hz, code, err
		if time.Now().After(deadline) {
			return fmt.Errorf("agent %s /healthz: condition not met within %s (last: %d %+v, err %v)", site, timeout, lastCode, last, lastErr)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Sample is one request of a traffic loop.
type Sample struct {
	Time time.Time // when the request started
	End  time.Time // when it ended (answered or failed)
	Site string    // the private host's site (AdminHostname for AdminTraffic)
	Via  string    // site whose EIP the echo server saw (AdminTraffic: whose VPC address); "" on error or unknown address
	Seen string    // the address the echo server (AdminTraffic: the private host's service) saw
	Err  error
}

// Traffic starts one request every interval from every private host, each with its own
// timeout (so that a lost request does not delay the next), until ctx ends or max requests per
// host were started. fn gets every sample in start order per host (one goroutine per host);
// requests cut short by ctx are not reported.
func (l *Lab) Traffic(ctx context.Context, interval time.Duration, max int, fn func(Sample)) error {
	if interval <= 0 || max <= 0 {
		return errors.New("traffic: interval and max must be positive")
	}
	timeout := 900 * time.Millisecond
	var wg sync.WaitGroup
	for _, s := range l.Sites() {
		wg.Go(func() {
			requestLoop(ctx, interval, max, fn, func() Sample {
				seen, err := l.Echo(ctx, s, timeout)
				smp := Sample{Site: s.Name, Seen: seen, Err: err}
				if v := l.SiteByEIP(seen); v != nil && err == nil {
					smp.Via = v.Name
				}
				return smp
			})
		})
	}
	wg.Wait()
	return nil
}

// AdminTraffic is Traffic from the admin node: one GET of url every interval through the
// tailnet, each bounded by timeout, until ctx ends or max requests were started. A sample's
// Site is AdminHostname; Via is the NAT whose VPC address the answer names (a private host's
// ServiceURL answers with the address it saw: the NAT that routed the request).
func (l *Lab) AdminTraffic(ctx context.Context, url string, interval, timeout time.Duration, max int, fn func(Sample)) error {
	if l.Admin == nil {
		return errNoTailnet
	}
	if interval <= 0 || timeout <= 0 || max <= 0 {
		return errors.New("admin traffic: interval, timeout and max must be positive")
	}
	requestLoop(ctx, interval, max, fn, func() Sample {
		seen, err := l.AdminCurl(ctx, url, timeout)
		smp := Sample{Site: AdminHostname, Seen: seen, Err: err}
		if v := l.SiteByIP(seen); v != nil && err == nil {
			smp.Via = v.Name
		}
		return smp
	})
	return nil
}

// requestLoop starts do every interval, each in its own goroutine, until ctx ends or max were
// started, and hands fn the samples in start order; samples cut short by ctx are dropped.
func requestLoop(ctx context.Context, interval time.Duration, max int, fn func(Sample), do func() Sample) {
	ordered := make(chan chan *Sample, max)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for ch := range ordered {
			if smp := <-ch; smp != nil {
				fn(*smp)
			}
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
loop:
	for i := 0; i < max; i++ {
		ch := make(chan *Sample, 1)
		ordered <- ch
		go func() {
			start := time.Now()
			smp := do()
			if ctx.Err() != nil {
				ch <- nil
				return
			}
			smp.Time, smp.End = start, time.Now()
			ch <- &smp
		}()
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
	}
	close(ordered)
	<-collected
}

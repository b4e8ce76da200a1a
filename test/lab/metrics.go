package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Metrics is one scrape of an agent's /metrics: every sample by its series as exposed, e.g.
// `go_goroutines` or `headnat_peer_probe_round_gap_seconds_bucket{le="1"}`.
type Metrics map[string]float64

// AgentMetrics scrapes a site's agent /metrics from inside its namespace.
func (l *Lab) AgentMetrics(ctx context.Context, site string) (Metrics, error) {
	s, err := l.Site(site)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/metrics", AgentPort), nil)
	if err != nil {
		return nil, err
	}
	resp, err := l.Client(s.NAT.Name, 2*time.Second).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("agent %s /metrics: %s", site, resp.Status)
	}
	return ParseMetrics(io.LimitReader(resp.Body, 4<<20))
}

// ParseMetrics reads the Prometheus text exposition format (comments skipped, timestamps
// ignored).
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		series, rest := line, ""
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			series, rest = line[:i+1], line[i+1:]
		} else if f := strings.Fields(line); len(f) >= 2 {
			series, rest = f[0], strings.Join(f[1:], " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: value of %q: %w", line, err)
		}
		m[series] = v
	}
	return m, sc.Err()
}

// Value returns the sample of a series without labels.
func (m Metrics) Value(name string) (float64, error) {
	v, ok := m[name]
	if !ok {
		return 0, fmt.Errorf("metric %s not exposed", name)
	}
	return v, nil
}

// Bucket returns a histogram's cumulative count of observations <= le (the histogram has no
// labels besides le).
func (m Metrics) Bucket(histogram string, le float64) (float64, error) {
	prefix := histogram + `_bucket{le="`
	for k, v := range m {
		bound, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		b, err := strconv.ParseFloat(strings.TrimSuffix(bound, `"}`), 64)
		if err == nil && b == le {
			return v, nil
		}
	}
	return 0, fmt.Errorf("histogram %s has no bucket le=%g", histogram, le)
}

// SynSent counts the TCP sockets in SYN-SENT in a site's NAT namespace towards ip:port:
// connections started and never answered.
func (l *Lab) SynSent(site, ip string, port int) (int, error) {
	s, err := l.Site(site)
	if err != nil {
		return 0, err
	}
	out, err := s.NAT.Run("ss", "-Htn", "state", "syn-sent", "dst", fmt.Sprintf("%s:%d", ip, port))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) != "" {
			n++
		}
	}
	return n, nil
}

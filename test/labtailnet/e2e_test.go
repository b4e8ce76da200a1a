package labtailnet

// End-to-end tests of the NATs as subnet routers, each in a lab of its own and in parallel
// (`go test` runs GOMAXPROCS of them at once). The 5-minute partition comes first in this file
// so that it starts first and the shorter tests run beside it.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/lab"
)

// partitionFor is how long the VPC-only partition lasts.
const partitionFor = 5 * time.Minute

// A VPC-only partition (the NATs cannot reach each other over the VPC, everything else works)
// moves no route table in 5 minutes, nor after it heals: each agent finds its peer unhealthy
// over the VPC but answering over the tailnet, so it calls the peer partitioned and leaves its
// tables alone; every private host keeps leaving through its own AZ's NAT.
//
// This holds because the agent drops tailscaled's UDP to and from VPC addresses: the two NATs'
// tailscaleds talk over DERP (headscale in inet) or their public addresses, which the
// partition (a drop of NAT VPC address <-> NAT VPC address in the router) does not cut. With
// tailscaled allowed to go direct over the VPC, the tailnet path would share the fate of the
// VPC path: when the partition starts, tailscaled keeps sending to the dead VPC endpoint for
// seconds before it falls back to DERP, the tailnet probes fail with the VPC probes, the peer
// looks dead, and its tables move.
func TestVPCPartitionMovesNothing(t *testing.T) {
	t.Parallel()
	l := tailnetLab(t)
	ctx := context.Background()
	start := time.Now()
	if err := l.Partition(); err != nil {
		t.Fatal(err)
	}
	t.Logf("NATs partitioned over the VPC; watching for %s", partitionFor)

	// Every 2s (bounded in count too): no route move, every agent healthy, every private host
	// out through its own NAT, and, once seen, each agent's peer partitioned.
	partitioned := map[string]time.Duration{} // NAT -> when its agent first called the peer partitioned
	lastVerdict := map[string]string{}
	end := start.Add(partitionFor)
	for i := 0; i < int(partitionFor/(2*time.Second))+10 && time.Now().Before(end); i++ {
		if err := lab.Sleep(ctx, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if ms := l.MovesSince(start); len(ms) > 0 {
			t.Fatalf("route moved %s into the partition: %+v", time.Since(start).Round(time.Second), ms)
		}
		for _, s := range l.Sites() {
			if seen, err := l.Echo(ctx, s, 3*time.Second); err != nil || seen != s.EIP {
				t.Fatalf("%s into the partition: host-%s egress saw %q (err %v), want its own nat-%s (%s)",
					time.Since(start).Round(time.Second), s.AZ, seen, err, s.Name, s.EIP)
			}
		}
		for _, s := range l.NATs() {
			st, err := l.AgentStatus(ctx, s.Name)
			if err != nil {
				t.Fatalf("agent %s /status: %v", s.Name, err)
			}
			if !st.Self.Healthy {
				t.Fatalf("%s into the partition: agent %s unhealthy: %v", time.Since(start).Round(time.Second), s.Name, st.Self.Reasons)
			}
			p, ok := peerOf(st)
			if !ok {
				t.Fatalf("agent %s lists no peer: %+v", s.Name, st.Peers)
			}
			lastVerdict[s.Name] = fmt.Sprintf("healthy %v, via %s, tailnet_reachable %v, presumed_alive %q",
				p.Healthy, p.Via, p.TailnetReachable, p.PresumedAlive)
			if _, seen := partitioned[s.Name]; !seen && isPartitioned(p) {
				partitioned[s.Name] = time.Since(start)
				t.Logf("agent %s calls its peer partitioned %s into the partition: %s", s.Name, time.Since(start).Round(100*time.Millisecond), lastVerdict[s.Name])
			}
			if _, seen := partitioned[s.Name]; !seen && time.Since(start) > 30*time.Second {
				t.Fatalf("agent %s does not call its peer partitioned 30s into the partition: %s", s.Name, lastVerdict[s.Name])
			}
		}
	}
	if time.Now().Before(end) {
		t.Fatalf("watch loop ended early")
	}
	// At the end still partitioned: the verdict held through the 5 minutes.
	for _, s := range l.NATs() {
		st, err := l.AgentStatus(ctx, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if p, _ := peerOf(st); !isPartitioned(p) {
			t.Errorf("agent %s after %s of partition: peer %+v, want partitioned", s.Name, partitionFor, p)
		}
	}

	healed := time.Now()
	if err := l.Heal(); err != nil {
		t.Fatal(err)
	}
	// After the heal: the peers are healthy over the VPC again, and nothing moves.
	for _, s := range l.NATs() {
		var last api.PeerStatus
		ok, err := lab.Poll(ctx, 30*time.Second, 250*time.Millisecond, func() bool {
			st, err := l.AgentStatus(ctx, s.Name)
			if err != nil {
				return false
			}
			last, _ = peerOf(st)
			return last.Healthy && last.Via == api.ViaVPC && last.PresumedAlive == ""
		})
		if err != nil || !ok {
			t.Fatalf("agent %s: peer not healthy over the VPC within 30s of the heal: %+v", s.Name, last)
		}
	}
	if err := lab.Sleep(ctx, 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if ms := l.MovesSince(start); len(ms) > 0 {
		t.Fatalf("route moves after the heal: %+v", ms)
	}
	for _, s := range l.Sites() {
		if err := l.WaitEgress(ctx, s, s, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("0 route moves in %s of VPC partition and %s after the heal", partitionFor, time.Since(healed).Round(time.Second))
}

// peerOf returns the one peer of a two-NAT lab's agent.
func peerOf(st api.Status) (api.PeerStatus, bool) {
	if len(st.Peers) != 1 {
		return api.PeerStatus{}, false
	}
	return st.Peers[0], true
}

func isPartitioned(p api.PeerStatus) bool {
	return !p.Healthy && strings.Contains(p.PresumedAlive, "partitioned")
}

// A planned drain (SIGTERM to the primary router's agent) gives up the tailnet routes first:
// /healthz says withdrawn while the agent still runs, its tailscaled stops advertising, the
// other NAT becomes the primary, and the admin, asking a private host every 100ms, loses at
// most a short blip; then the route tables are handed over and the agent exits.
func TestDrainWithdrawsTailnetRoutesFirst(t *testing.T) {
	t.Parallel()
	l := tailnetLab(t)
	ctx := context.Background()
	primary, err := l.PrimaryRouter(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := l.MustSite(primary)
	other := l.Other(p)
	url := l.Sites()[0].ServiceURL()

	col := &lab.Samples{}
	tctx, stopTraffic := context.WithTimeout(ctx, 90*time.Second)
	defer stopTraffic()
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.AdminTraffic(tctx, url, 100*time.Millisecond, 500*time.Millisecond, 900, col.Add) })
	defer wg.Wait()
	if err := lab.Sleep(ctx, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if n, failed := col.Count(); failed > 0 || n == 0 {
		t.Fatalf("before the drain: %d of %d admin requests failed", failed, n)
	}

	// Watch the draining agent's /healthz until it exits.
	var withdrawnAt time.Time
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for i := 0; i < 2000 && wctx.Err() == nil; i++ {
			hz, _, err := l.Healthz(wctx, p.Name)
			if err == nil && hz.Tailnet != nil && hz.Tailnet.Withdrawn {
				withdrawnAt = time.Now()
				return
			}
			_ = lab.Sleep(wctx, 20*time.Millisecond)
		}
	}()
	sigterm := time.Now()
	if err := l.StopAgent(p.Name, syscall.SIGTERM, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	exited := time.Since(sigterm)
	stopWatch()
	<-watched
	t.Logf("nat-%s's agent exited %s after SIGTERM", p.Name, exited.Round(time.Millisecond))
	if withdrawnAt.IsZero() {
		t.Fatalf("nat-%s's /healthz never said tailnet withdrawn before its agent exited", p.Name)
	}
	t.Logf("its /healthz said tailnet withdrawn %s after SIGTERM", withdrawnAt.Sub(sigterm).Round(time.Millisecond))

	// The agent's log: the routes withdrawn, then the route tables handed over, then the exit.
	b, err := os.ReadFile(l.AgentLog(p.Name))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	withdrew := strings.LastIndex(log, "draining: tailnet routes withdrawn")
	handover := strings.LastIndex(log, "draining: waiting for peers to take the route tables")
	switch {
	case withdrew < 0:
		t.Fatalf("nat-%s's agent did not log the withdrawal of its tailnet routes", p.Name)
	case handover >= 0 && handover < withdrew:
		t.Fatalf("nat-%s's agent handed over its route tables before it withdrew its tailnet routes", p.Name)
	}
	if _, err := l.WaitMove(ctx, p.RouteTable, other.Name, sigterm, 15*time.Second); err != nil {
		t.Fatal(err)
	}

	// headscale: the drained NAT advertises nothing, the other is the primary router.
	var hsPrimary string
	ok, err := lab.Poll(ctx, 15*time.Second, 200*time.Millisecond, func() bool {
		n, err := l.Headscale().Node(ctx, p.TailnetHostname())
		hsPrimary, _ = l.PrimaryRouter(ctx)
		return err == nil && !slices.Contains(n.Available, vpc) && hsPrimary == other.Name
	})
	if err != nil || !ok {
		t.Fatalf("headscale: after the drain the primary router is %q, want nat-%s, with nat-%s advertising nothing", hsPrimary, other.Name, p.Name)
	}

	// The admin's requests go through the other NAT; the blip is short.
	ok, err = lab.Poll(ctx, 20*time.Second, 100*time.Millisecond, func() bool {
		last := col.Last(10)
		return len(last) == 10 && !slices.ContainsFunc(last, func(s lab.Sample) bool { return s.Err != nil || s.Via != other.Name })
	})
	if err != nil || !ok {
		t.Fatalf("the admin's last requests did not all go through nat-%s: %+v", other.Name, col.Last(10))
	}
	stopTraffic()
	wg.Wait()
	o := lab.OutageOf(col.Since(sigterm.Add(-time.Second)))
	t.Logf("admin -> %s every 100ms (500ms timeout) across the drain: %d of %d requests failed, longest gap %s; first answer through nat-%s %s after SIGTERM",
		url, o.Failed, o.Requests, o.Longest.Round(time.Millisecond), other.Name, col.FirstVia(other.Name, sigterm).Round(time.Millisecond))
	if o.Longest > 5*time.Second {
		t.Errorf("the admin lost access for %s across a planned drain, want at most a short blip (bound 5s)", o.Longest)
	}
}

// headscale down: NAT and failover do not depend on it. Both private hosts keep egress, no
// route moves, the agents stay healthy and say the tailnet is degraded, with why; when
// headscale is back, the tailnet recovers (routes approved, one primary, the admin gets in).
func TestHeadscaleDownLeavesNATAlone(t *testing.T) {
	t.Parallel()
	l := tailnetLab(t)
	ctx := context.Background()
	start := time.Now()
	if err := l.StopHeadscale(); err != nil {
		t.Fatal(err)
	}
	degraded := map[string]string{}
	failed, requests := 0, 0
	for i := 0; i < 60 && time.Since(start) < 30*time.Second; i++ {
		for _, s := range l.Sites() {
			requests++
			if seen, err := l.Echo(ctx, s, 3*time.Second); err != nil || seen != s.EIP {
				failed++
				t.Errorf("headscale down %s: host-%s egress saw %q (err %v), want nat-%s (%s)", time.Since(start).Round(time.Second), s.AZ, seen, err, s.Name, s.EIP)
			}
		}
		for _, s := range l.NATs() {
			hz, code, err := l.Healthz(ctx, s.Name)
			if err != nil || code != http.StatusOK {
				t.Fatalf("headscale down %s: agent %s /healthz %d %v: %+v", time.Since(start).Round(time.Second), s.Name, code, err, hz)
			}
			if _, ok := degraded[s.Name]; !ok && hz.Tailnet != nil && hz.Tailnet.Degraded && hz.Tailnet.Error != "" {
				degraded[s.Name] = hz.Tailnet.Error
				t.Logf("agent %s: tailnet degraded %s after headscale stopped: %s", s.Name, time.Since(start).Round(100*time.Millisecond), hz.Tailnet.Error)
			}
		}
		if ms := l.MovesSince(start); len(ms) > 0 {
			t.Fatalf("route moves with headscale down: %+v", ms)
		}
		if err := lab.Sleep(ctx, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range l.NATs() {
		if _, ok := degraded[s.Name]; !ok {
			t.Errorf("agent %s never said the tailnet is degraded in 30s without headscale", s.Name)
		}
		// /status says it too.
		st, err := l.AgentStatus(ctx, s.Name)
		if err != nil {
			t.Fatal(err)
		}
		if tn := st.Self.Tailnet; tn == nil || !tn.Degraded || tn.Error == "" {
			t.Errorf("agent %s /status with headscale down: tailnet %+v, want degraded with an error", s.Name, tn)
		}
	}
	t.Logf("headscale down for %s: %d of %d egress requests failed, 0 route moves, agents healthy", time.Since(start).Round(time.Second), failed, requests)

	restarted := time.Now()
	if err := l.StartHeadscale(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitTailnet(ctx, 60*time.Second); err != nil {
		t.Fatalf("tailnet after headscale came back: %v", err)
	}
	for _, s := range l.NATs() {
		if err := l.WaitHealthz(ctx, s.Name, 30*time.Second, func(hz api.Healthz, code int) bool {
			return code == http.StatusOK && hz.Tailnet != nil && !hz.Tailnet.Degraded && hz.Tailnet.Approved
		}); err != nil {
			t.Fatal(err)
		}
	}
	if ms := l.MovesSince(start); len(ms) > 0 {
		t.Fatalf("route moves: %+v", ms)
	}
	t.Logf("tailnet whole again %s after headscale restarted (routes approved, one primary, admin reaches both hosts)", time.Since(restarted).Round(100*time.Millisecond))
}

// wrongKey is a well-formed headscale pre-auth key that headscale never issued. Its secret
// part must show up nowhere: not in a file of the lab, not in /healthz, /status or /metrics,
// not in this test's output.
const wrongKey = "hskey-auth-wrongKey0lab-" + "NotIssuedByHeadscaleNotIssuedByHeadscaleNotIssuedByHeadscale0123"

// wrongKeyChild is set in the environment of the process that runs the wrong-key lab.
const wrongKeyChild = "HEADNAT_LABTAILNET_WRONG_KEY_CHILD"

// A wrong key in SSM: each agent logs one clear degraded line for the tailnet (not one per
// refresh), NAT works, /status says degraded and why, and the key's secret is nowhere. The lab
// runs in a child process (this test binary again) so that its whole output can be searched
// for the secret before any of it is shown.
func TestWrongAuthKey(t *testing.T) {
	if os.Getenv(wrongKeyChild) != "" {
		wrongKeyLab(t)
		return
	}
	t.Parallel()
	secret := keySecret(wrongKey)
	if len(secret) != 64 {
		t.Fatalf("wrongKey is not well-formed (secret of %d characters)", len(secret))
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestWrongAuthKey$", "-test.v", "-test.count=1", "-test.timeout=4m")
	cmd.Env = append(os.Environ(), wrongKeyChild+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	text := string(out)
	if strings.Contains(text, secret) {
		t.Errorf("the wrong key's secret appears in the test's output")
		text = redactKey(text, wrongKey)
	}
	t.Logf("the lab's test process (its output searched for the key's secret: %v):\n%s", !strings.Contains(string(out), secret), text)
	if err != nil {
		t.Fatalf("the wrong-key lab failed: %v", err)
	}
}

// wrongKeyLab is TestWrongAuthKey's lab, in the child process.
func wrongKeyLab(t *testing.T) {
	l := tailnetLab(t, func(o *lab.Options) { o.TailnetAuthKey = wrongKey })
	ctx := context.Background()
	secret := keySecret(wrongKey)

	// Both agents say degraded, with a reason.
	since := time.Now()
	for _, s := range l.NATs() {
		var last api.Healthz
		if err := l.WaitHealthz(ctx, s.Name, 60*time.Second, func(hz api.Healthz, code int) bool {
			last = hz
			return code == http.StatusOK && hz.Tailnet != nil && hz.Tailnet.Degraded && hz.Tailnet.Error != ""
		}); err != nil {
			t.Fatal(redactKey(err.Error(), wrongKey))
		}
		t.Logf("agent %s: healthy, tailnet degraded: %s", s.Name, redactKey(last.Tailnet.Error, wrongKey))
	}
	// 40s more: the agents refresh every 2s and try the login again after 30s, and log the
	// degraded tailnet once.
	if err := lab.Sleep(ctx, 40*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, s := range l.NATs() {
		b, err := os.ReadFile(l.AgentLog(s.Name))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		logins := 0
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "tailnet: degraded") {
				lines = append(lines, line)
			}
			if strings.Contains(line, "tailnet: logging in") {
				logins++
			}
		}
		t.Logf("agent %s tried %d logins in %s", s.Name, logins, time.Since(since).Round(time.Second))
		if len(lines) != 1 {
			t.Errorf("agent %s logged %d 'tailnet: degraded' lines in %s, want exactly 1:\n%s", s.Name, len(lines),
				time.Since(since).Round(time.Second), redactKey(strings.Join(lines, "\n"), wrongKey))
			continue
		}
		t.Logf("agent %s's one degraded line: %s", s.Name, redactKey(lines[0], wrongKey))
		if !strings.Contains(lines[0], "login failed") && !strings.Contains(lines[0], "login did not complete") {
			t.Errorf("agent %s's degraded line does not say the login failed", s.Name)
		}
	}
	// NAT works.
	for _, s := range l.Sites() {
		if seen, err := l.Echo(ctx, s, 3*time.Second); err != nil || seen != s.EIP {
			t.Errorf("host-%s egress saw %q (err %v), want nat-%s (%s)", s.AZ, seen, err, s.Name, s.EIP)
		}
	}
	// Not in what the agents serve.
	for _, s := range l.NATs() {
		for _, path := range []string{api.PathHealthz, api.PathStatus, api.PathMetrics} {
			body, err := agentRaw(ctx, l, s, path)
			if err != nil {
				t.Fatalf("agent %s %s: %v", s.Name, path, err)
			}
			if strings.Contains(body, secret) {
				t.Errorf("agent %s serves the wrong key's secret on %s", s.Name, path)
			}
			if path == api.PathStatus {
				var st api.Status
				if err := json.Unmarshal([]byte(body), &st); err != nil {
					t.Fatal(err)
				}
				if tn := st.Self.Tailnet; tn == nil || !tn.Degraded || tn.Error == "" {
					t.Errorf("agent %s /status: tailnet %+v, want degraded with an error", s.Name, tn)
				}
			}
		}
	}
	// Not in any file of the lab's directory: logs (lab, agents, tailscaled, forwarders, IMDS,
	// headscale), state, databases.
	var files []string
	err := filepath.WalkDir(l.Dir(), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files = append(files, path)
		if strings.Contains(string(b), secret) {
			rel, _ := filepath.Rel(l.Dir(), path)
			t.Errorf("%s holds the wrong key's secret", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the key's secret is in none of the %d files under the lab's directory (headscale's log and database included), nor on /healthz, /status, /metrics", len(files))
}

// agentRaw GETs a path of a NAT's agent from inside its namespace and returns the body.
func agentRaw(ctx context.Context, l *lab.Lab, s *lab.Site, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", lab.AgentPort, path), nil)
	if err != nil {
		return "", err
	}
	resp, err := l.Client(s.NAT.Name, 5*time.Second).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return string(b), err
}

// The admin reaches every NAT's agent over the tailnet, at the NAT's tailnet address: the
// policy gives admins the agent port.
func TestAdminReachesAgentsOverTailnet(t *testing.T) {
	t.Parallel()
	l := tailnetLab(t)
	ctx := context.Background()
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range l.NATs() {
		i := slices.IndexFunc(nodes, func(n lab.TailnetNode) bool { return n.Name == s.Name })
		if i < 0 || nodes[i].IP == "" {
			t.Fatalf("nat-%s has no tailnet address: %+v", s.Name, nodes)
		}
		url := fmt.Sprintf("http://%s:%d%s", nodes[i].IP, lab.AgentPort, api.PathStatus)
		body, err := l.AdminCurl(ctx, url, 5*time.Second)
		if err != nil {
			t.Fatalf("admin GET %s: %v", url, err)
		}
		var st api.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("admin GET %s: not /status JSON (%v): %.200q", url, err, body)
		}
		if st.Self.Instance != s.InstanceID || st.Self.Tailnet == nil || st.Self.Tailnet.IP != nodes[i].IP {
			t.Fatalf("admin GET %s: instance %q tailnet %+v, want nat-%s's (%s)", url, st.Self.Instance, st.Self.Tailnet, s.Name, s.InstanceID)
		}
		t.Logf("admin GET %s: nat-%s's /status (instance %s, healthy %v)", url, s.Name, st.Self.Instance, st.Self.Healthy)
	}
}

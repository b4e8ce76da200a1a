package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/lab"
)

// demo runs the whole story in this process: up, traffic from every private host, one NAT
// killed (failover, with the outage measured), revived (fail-back after failback_after); then,
// with the tailnet, the admin reaching a private host through the primary router, that NAT
// killed (the admin's outage measured) and revived; down.
// The lab is torn down on every way out, signals included.
func demo(ctx context.Context, o *options, log *slog.Logger) error {
	name := o.Name
	if name == "lab" {
		name = "demo"
	}
	dir := filepath.Join(lab.RunDir, name)
	if st, err := lab.ReadState(dir); err == nil {
		if labProcess(st.Pid) {
			return fmt.Errorf("a demo is already running (pid %d)", st.Pid)
		}
		_ = lab.Remove(dir)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	out := &printer{w: o, start: start}

	counts, err := o.labOptions(dir, log).NATCounts()
	if err != nil {
		return err
	}
	var per []string
	for _, az := range lab.AZs {
		per = append(per, fmt.Sprintf("%d in AZ %s", counts[az], az))
	}
	what := ""
	if !o.NoTailnet {
		what = "; headscale in the internet, a tailscaled on every NAT, an admin node outside the VPC"
	}
	out.say("building the lab: internet, VPC router + IGW, two AZs each with a private host, NAT instances (%s), each running the real headnat agent with its own IMDS%s ...", strings.Join(per, ", "), what)
	l, err := lab.Up(ctx, o.labOptions(dir, log))
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	defer func() {
		out.say("tearing the lab down ...")
		l.Close()
		_ = os.RemoveAll(dir)
		out.say("done.")
	}()
	out.say("lab up in %s", time.Since(start).Round(100*time.Millisecond))
	lab.WriteStatus(o.stdout, l.Status(ctx))
	fmt.Fprintln(o.stdout)

	a := l.Sites()[0]
	tr := newTracker(l, out)
	tctx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = l.Traffic(tctx, 100*time.Millisecond, 3000, tr.sample)
	}()
	defer func() { stopTraffic(); wg.Wait() }()

	out.say("traffic: every private host sends a request every 100ms to the echo server at %s", lab.EchoAddr)
	if err := lab.Sleep(ctx, 4*time.Second); err != nil {
		return err
	}
	tr.summary()

	// Failover.
	out.say(">>> killing nat-%s (%s): its link goes down and its agent dies; EC2 still says running", a.Name, a.InstanceID)
	killed := time.Now()
	tr.resetOutage()
	if err := l.Kill(a.Name); err != nil {
		return err
	}
	// Another NAT of AZ a if there is one, else nat-b.
	var taker string
	if err := waitUntil(ctx, 30*time.Second, func() bool {
		taker, _ = l.Target(a.RouteTable)
		return taker != "" && taker != a.Name && tr.recovered(a.Name, taker)
	}); err != nil {
		return fmt.Errorf("failover did not happen: %w", err)
	}
	if err := lab.Sleep(ctx, 2*time.Second); err != nil {
		return err
	}
	for _, m := range l.MovesSince(killed) {
		out.say("route move: %s private-%s -> nat-%s, %s after the kill", m.Action, m.TableAZ, m.TargetAZ, m.Time.Sub(killed).Round(time.Millisecond))
	}
	out.decisions(ctx, l, taker, killed)
	tr.report("failover")
	tr.summary()

	if l.MustSite(taker).AZ == a.AZ {
		// Fail-back only moves a table into its home AZ, and the taker is there already.
		out.say(">>> reviving nat-%s: link up, agent restarted; private-%s stays with nat-%s, in its home AZ too (fail-back only moves tables into their home AZ)", a.Name, a.AZ, taker)
		revived := time.Now()
		if err := l.Revive(a.Name); err != nil {
			return err
		}
		tr.resetOutage()
		if err := l.WaitHealthz(ctx, a.Name, 30*time.Second, func(_ api.Healthz, code int) bool { return code == 200 }); err != nil {
			return err
		}
		if err := lab.Sleep(ctx, o.FailbackAfter+2*time.Second); err != nil {
			return err
		}
		if ms := l.MovesSince(revived); len(ms) > 0 {
			return fmt.Errorf("route moves after nat-%s came back, want none: %+v", a.Name, ms)
		}
		out.say("nat-%s healthy for failback_after=%s and more: no route moved", a.Name, o.FailbackAfter)
		tr.report("revive")
	} else {
		out.say(">>> reviving nat-%s: link up, agent restarted; it takes its table back only after failback_after=%s of health", a.Name, o.FailbackAfter)
		revived := time.Now()
		if err := l.Revive(a.Name); err != nil {
			return err
		}
		tr.resetOutage()
		if err := waitUntil(ctx, o.FailbackAfter+45*time.Second, func() bool {
			t, _ := l.Target(a.RouteTable)
			return t == a.Name && tr.recovered(a.Name, a.Name)
		}); err != nil {
			return fmt.Errorf("fail-back did not happen: %w", err)
		}
		for _, m := range l.MovesSince(revived) {
			out.say("route move: %s private-%s -> nat-%s, %s after the revive", m.Action, m.TableAZ, m.TargetAZ, m.Time.Sub(revived).Round(time.Millisecond))
		}
		out.decisions(ctx, l, a.Name, revived)
		if err := lab.Sleep(ctx, 2*time.Second); err != nil {
			return err
		}
		tr.report("fail-back")
	}
	tr.summary()
	stopTraffic()
	wg.Wait()
	if !o.NoTailnet {
		fmt.Fprintln(o.stdout)
		if err := tailnetDemo(ctx, l, out, o.FailbackAfter); err != nil {
			return err
		}
	}
	fmt.Fprintln(o.stdout)
	if err := refreshDemo(ctx, l, out); err != nil {
		return err
	}
	fmt.Fprintln(o.stdout)
	lab.WriteStatus(o.stdout, l.Status(ctx))
	fmt.Fprintln(o.stdout)
	out.say("demo finished in %s", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// refreshDemo replaces every NAT instance one at a time, as an Auto Scaling instance refresh
// does, while every private host sends a request every 100ms, and counts what failed.
func refreshDemo(ctx context.Context, l *lab.Lab, out *printer) error {
	out.say(">>> instance refresh: every NAT instance replaced, one at a time, as an Auto Scaling instance refresh does: a new one waits in the launch hook until its agent says it is a working NAT, then the old one drains through the terminate hook")
	samples := &lab.Samples{}
	tctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = l.Traffic(tctx, 100*time.Millisecond, 3000, samples.Add) })
	defer func() { stop(); wg.Wait() }()
	start := time.Now()
	if _, err := l.RefreshSteps(ctx, 2*time.Minute, func(msg string) { out.say("refresh: %s", msg) }); err != nil {
		return fmt.Errorf("instance refresh: %w", err)
	}
	if err := lab.Sleep(ctx, time.Second); err != nil {
		return err
	}
	stop()
	wg.Wait()
	n, failed := samples.Count()
	out.say("instance refresh done in %s: %d of %d requests failed while the NATs were replaced", time.Since(start).Round(100*time.Millisecond), failed, n)
	if failed > 0 {
		out.say("(a request in flight at the instant its route table moves can break: its connection's state is on the old NAT; new connections go through the new one)")
	}
	return nil
}

type printer struct {
	mu    sync.Mutex
	w     *options
	start time.Time
}

func (p *printer) say(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w.stdout, "[%6.1fs] %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, a...))
}

func (p *printer) decisions(ctx context.Context, l *lab.Lab, site string, since time.Time) {
	st, err := l.AgentStatus(ctx, site)
	if err != nil {
		return
	}
	for _, d := range st.Decisions {
		if d.Time.Before(since) {
			continue
		}
		p.say("agent nat-%s decided: %s %s -> %s because %s [%s]", site, d.Kind, d.Table, d.Target, d.Reason, d.Result)
	}
}

// tracker follows the traffic of every host: which NAT it leaves through, and its outages
// (first failed request to first successful one).
type tracker struct {
	l   *lab.Lab
	out *printer

	mu       sync.Mutex
	last     map[string]string // host site -> last result ("nat-a", "error")
	ok, fail map[string]int
	firstErr map[string]time.Time // current outage start
	outages  map[string][]time.Duration
	lastVia  map[string]string
}

func newTracker(l *lab.Lab, out *printer) *tracker {
	return &tracker{l: l, out: out, last: map[string]string{}, ok: map[string]int{}, fail: map[string]int{},
		firstErr: map[string]time.Time{}, outages: map[string][]time.Duration{}, lastVia: map[string]string{}}
}

func (t *tracker) sample(s lab.Sample) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res := "error"
	if s.Err == nil {
		res = "nat-" + s.Via + " (" + s.Seen + ")"
		if s.Via == "" {
			res = "unknown (" + s.Seen + ")"
		}
		t.ok[s.Site]++
		t.lastVia[s.Site] = s.Via
		if st, ok := t.firstErr[s.Site]; ok {
			d := s.Time.Sub(st)
			t.outages[s.Site] = append(t.outages[s.Site], d)
			delete(t.firstErr, s.Site)
			t.out.say("host-%s: requests succeed again, through %s, after an outage of %s", s.Site, res, d.Round(time.Millisecond))
			t.last[s.Site] = res
		}
	} else {
		t.fail[s.Site]++
		t.lastVia[s.Site] = ""
		if _, ok := t.firstErr[s.Site]; !ok {
			t.firstErr[s.Site] = s.Time
			t.out.say("host-%s: request failed: %s", s.Site, shortErr(s.Err))
		}
	}
	if t.last[s.Site] != res {
		if t.last[s.Site] != "" && s.Err == nil {
			t.out.say("host-%s: the echo server now sees %s", s.Site, res)
		}
		t.last[s.Site] = res
	}
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i < 60 {
		return s[i+2:]
	}
	return s
}

// recovered reports whether host's last request succeeded through via.
func (t *tracker) recovered(host, via string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, inOutage := t.firstErr[host]
	return !inOutage && t.lastVia[host] == via
}

func (t *tracker) resetOutage() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.outages = map[string][]time.Duration{}
}

func (t *tracker) report(what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.l.Sites() {
		ds := t.outages[s.Name]
		if len(ds) == 0 {
			t.out.say("%s: host-%s lost no request", what, s.Name)
			continue
		}
		var total time.Duration
		for _, d := range ds {
			total += d
		}
		t.out.say("%s: host-%s outage %s (first failed -> first successful request)", what, s.Name, total.Round(time.Millisecond))
	}
}

func (t *tracker) summary() {
	t.mu.Lock()
	defer t.mu.Unlock()
	var parts []string
	for _, s := range t.l.Sites() {
		parts = append(parts, fmt.Sprintf("host-%s: %d ok, %d failed, now via %s", s.Name, t.ok[s.Name], t.fail[s.Name], t.last[s.Name]))
	}
	t.out.say("traffic so far: %s", strings.Join(parts, "; "))
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ok, err := lab.Poll(ctx, timeout, 100*time.Millisecond, cond)
	if err == nil && !ok {
		err = fmt.Errorf("not within %s", timeout)
	}
	return err
}

// Bounds of the admin's polling while the primary router is dead: a request every
// adminEvery, each cut after adminTimeout, for adminRecovery at most.
const (
	adminEvery    = 200 * time.Millisecond
	adminTimeout  = 500 * time.Millisecond
	adminRecovery = 45 * time.Second
)

// tailnetDemo shows the admin reaching a private host's service through the tailnet, kills the
// NAT that is the primary router, measures how long the admin goes without an answer, revives
// that NAT and waits for its route table to come home.
func tailnetDemo(ctx context.Context, l *lab.Lab, out *printer, failbackAfter time.Duration) error {
	out.say("--- the tailnet. Each NAT's agent logged its tailscaled in to headscale (%s, namespace inet) as a subnet router for the VPC %s; the policy approves NAT routes, and headscale sends the admin's VPC traffic through one of them, the primary router:", lab.HeadscaleURL(), lab.VPCCIDR)
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		role := "an admin (user " + lab.AdminUser + ", in the policy's admins group), accepts the routes"
		switch {
		case n.Name != lab.AdminHostname && n.Primary:
			role = "route " + lab.VPCCIDR + " approved, PRIMARY router"
		case n.Name != lab.AdminHostname && n.Approved:
			role = "route " + lab.VPCCIDR + " approved, standby"
		case n.Name != lab.AdminHostname:
			role = "route not approved"
		}
		name := n.Name
		if name != lab.AdminHostname {
			name = "nat-" + name
		}
		out.say("  %-6s %-36s %-11s %s", name, n.Hostname, n.IP, role)
	}
	primary, err := l.PrimaryRouter(ctx)
	if err != nil {
		return err
	}
	p := l.MustSite(primary)
	host := l.Sites()[0]
	url := host.ServiceURL()
	seen, err := l.AdminCurl(ctx, url, 3*time.Second)
	if err != nil {
		return fmt.Errorf("the admin cannot reach %s through the tailnet: %w", url, err)
	}
	out.say("admin (%s, namespace admin, outside the VPC): curl %s -> host-%s's service saw %s, %s (a NAT masquerades what it forwards from the tailnet): admin -> tailnet -> nat-%s -> host-%s",
		lab.AdminAddr, url, host.AZ, seen, natOf(l, seen), p.Name, host.AZ)
	if err := sshDemo(ctx, l, out, p); err != nil {
		return err
	}

	out.say(">>> killing nat-%s, the primary router: link down, agent dead; its tailscaled keeps running but reaches nothing, like a powered-off host's. The admin keeps curling %s (a request every %s, each cut after %s)",
		p.Name, url, adminEvery, adminTimeout)
	killed := time.Now()
	if err := l.Kill(p.Name); err != nil {
		return err
	}
	failed := 0
	for i := 0; ; i++ {
		start := time.Now()
		seen, err := l.AdminCurl(ctx, url, adminTimeout)
		if s := l.SiteByIP(seen); err == nil && s != nil && s != p {
			out.say("admin reaches host-%s's service again %s after the kill, through nat-%s (the service sees %s); %d requests failed meanwhile",
				host.AZ, time.Since(killed).Round(10*time.Millisecond), s.Name, seen, failed)
			break
		}
		failed++
		if time.Since(killed) > adminRecovery || i >= int(adminRecovery/adminEvery) {
			return fmt.Errorf("the admin did not reach %s again within %s of the kill (last: %q, %v)", url, adminRecovery, seen, err)
		}
		if err := lab.Sleep(ctx, time.Until(start.Add(adminEvery))); err != nil {
			return err
		}
	}
	if now, err := l.PrimaryRouter(ctx); err == nil {
		out.say("headscale's HA prober (a ping every 2s, 1s timeout) found nat-%s unreachable and made nat-%s the primary router; the NAT side meanwhile moves private-%s's route table as before", p.Name, now, p.AZ)
	}

	out.say(">>> reviving nat-%s: link up, agent started, its tailscaled started afresh as on a reboot; it becomes a standby router (headscale does not fail back)", p.Name)
	revived := time.Now()
	if err := l.Revive(p.Name); err != nil {
		return err
	}
	if err := l.WaitHealthz(ctx, p.Name, 30*time.Second, func(hz api.Healthz, _ int) bool {
		return hz.Tailnet != nil && hz.Tailnet.Backend == "Running" && hz.Tailnet.Approved
	}); err != nil {
		return err
	}
	now, _ := l.PrimaryRouter(ctx)
	out.say("nat-%s's agent reports its tailnet route approved again %s after the revive; the primary router is nat-%s", p.Name, time.Since(revived).Round(100*time.Millisecond), now)
	// The NAT side: the route table comes back into its home AZ after failback_after.
	if err := waitUntil(ctx, failbackAfter+45*time.Second, func() bool {
		t, _ := l.Target(p.RouteTable)
		s, err := l.Site(t)
		return err == nil && s.AZ == p.AZ
	}); err != nil {
		return fmt.Errorf("private-%s did not come back into its AZ: %w", p.AZ, err)
	}
	for _, m := range l.MovesSince(revived) {
		out.say("route move: %s private-%s -> nat-%s, %s after the revive (failback_after=%s)", m.Action, m.TableAZ, m.TargetAZ, m.Time.Sub(revived).Round(time.Millisecond), failbackAfter)
	}
	return nil
}

// sshDemo runs one command on nat p as root with the OpenSSH client from the admin's
// namespace, over the tailnet (tailscale SSH, no key). The first try may come before the NAT's
// SSH host keys exist: up to 30 s of tries.
func sshDemo(ctx context.Context, l *lab.Lab, out *printer, p *lab.Site) error {
	ip, err := l.TailnetIP(ctx, p.Name)
	if err != nil {
		return err
	}
	const command = "ip -4 -br addr show dev eth0"
	var got string
	ok, perr := lab.Poll(ctx, 30*time.Second, time.Second, func() bool {
		got, err = l.SSH(ctx, l.Admin.Name, ip, command, 15*time.Second)
		return err == nil && strings.Contains(got, p.NATIP+"/")
	})
	if perr != nil {
		return perr
	}
	if !ok {
		return fmt.Errorf("the admin cannot ssh to nat-%s over the tailnet: %q, %v", p.Name, got, err)
	}
	out.say("admin: ssh root@%s '%s' -> %s (tailscale SSH on nat-%s: admins only, as root, no key)",
		ip, command, strings.Join(strings.Fields(got), " "), p.Name)
	return nil
}

// natOf names the NAT whose VPC address ip is, for people.
func natOf(l *lab.Lab, ip string) string {
	if s := l.SiteByIP(ip); s != nil {
		return "nat-" + s.Name + "'s VPC address"
	}
	return "no NAT's address"
}

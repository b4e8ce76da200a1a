package labtailnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/tailnetlab"
)

// sshCommand runs on a NAT over SSH: its output names the NAT's VPC address (eth0 of its
// namespace, not the caller's) and says IP forwarding is on.
const sshCommand = "id -un; cat /proc/sys/net/ipv4/ip_forward; ip -4 -br addr show dev eth0"

// ranOn reports whether out is sshCommand's output on the NAT s.
func ranOn(out string, s *lab.Site) bool {
	l := strings.Split(out, "\n")
	return len(l) == 3 && l[0] == "root" && l[1] == "1" && strings.Contains(l[2], " "+s.NATIP+"/")
}

// tailnetIP returns a NAT's tailnet address.
func tailnetIP(ctx context.Context, t *testing.T, l *lab.Lab, s *lab.Site) netip.Addr {
	t.Helper()
	ip, err := l.TailnetIP(ctx, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	return ip
}

// runSSH reads tailscaled's RunSSH pref with `tailscale debug prefs`.
func runSSH(ctx context.Context, ts *tailnetlab.Tailscaled) (bool, error) {
	out, err := ts.CLI(ctx, "debug", "prefs")
	switch {
	case err != nil:
		return false, err
	case strings.Contains(out, `"RunSSH": true`):
		return true, nil
	case strings.Contains(out, `"RunSSH": false`):
		return false, nil
	}
	return false, fmt.Errorf("no RunSSH in tailscale debug prefs: %.300s", out)
}

// waitSSH retries sshCommand from ns until it runs on s (want) or keeps failing (!want: every try
// for 10 s refused, after the first refusal), bounded by timeout.
func waitSSH(ctx context.Context, t *testing.T, l *lab.Lab, ns string, ip netip.Addr, s *lab.Site, want bool, timeout time.Duration) string {
	t.Helper()
	var out string
	var err error
	var refusedSince time.Time
	ok, perr := lab.Poll(ctx, timeout, time.Second, func() bool {
		out, err = l.SSH(ctx, ns, ip, sshCommand, 15*time.Second)
		ran := err == nil && ranOn(out, s)
		switch {
		case want:
			return ran
		case err == nil:
			t.Fatalf("ssh root@%s (nat-%s) from %s succeeded: %q", ip, s.Name, ns, out)
		case refusedSince.IsZero():
			refusedSince = time.Now()
		}
		return time.Since(refusedSince) >= 10*time.Second
	})
	if perr != nil || !ok {
		t.Fatalf("ssh root@%s (nat-%s) from %s: want ran=%v within %s; last %v: %q", ip, s.Name, ns, want, timeout, err, out)
	}
	return out
}

// Admins get a root shell on every NAT with the real OpenSSH client over the tailnet (tailscale
// SSH, no key); a NAT, a tailnet node that is no admin, is refused though it reaches the
// other NAT's agent port; so is a user-owned node outside the admins group. With
// tailnet.ssh: false the agent turns tailscaled's SSH server off and the admin is refused; a
// NAT whose SSH server is turned off by hand gets it back from its agent.
func TestAdminSSHToNATs(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatalf("the OpenSSH client is missing (`make deps` installs openssh-client): %v", err)
	}
	l := tailnetLab(t)
	ctx := context.Background()
	admin := l.Admin.Name
	a, b := l.MustSite("a"), l.MustSite("b")
	ipA, ipB := tailnetIP(ctx, t, l, a), tailnetIP(ctx, t, l, b)

	// The agents turned SSH on (tailnet.ssh defaults to true).
	for _, s := range []*lab.Site{a, b} {
		if on, err := runSSH(ctx, l.Tailscaled(s.Name)); err != nil || !on {
			t.Fatalf("nat-%s: RunSSH %v, %v; want on", s.Name, on, err)
		}
	}
	t0 := time.Now()
	for _, c := range []struct {
		s  *lab.Site
		ip netip.Addr
	}{{a, ipA}, {b, ipB}} {
		out := waitSSH(ctx, t, l, admin, c.ip, c.s, true, 60*time.Second)
		t.Logf("admin: ssh root@%s (nat-%s) %q -> %q", c.ip, c.s.Name, sshCommand, out)
	}
	t.Logf("admin SSH to both NATs worked %s after the lab was up", time.Since(t0).Round(100*time.Millisecond))
	if st, err := l.AgentStatus(ctx, a.Name); err != nil || st.Self.Tailnet == nil || !st.Self.Tailnet.SSH {
		t.Errorf("agent a's /status tailnet: %+v, %v; want ssh true", st.Self.Tailnet, err)
	}

	// NAT b is on the tailnet and reaches NAT a's agent port there, but may not SSH to it.
	resp, err := l.Client(b.NAT.Name, 5*time.Second).Get("http://" + net.JoinHostPort(ipA.String(), strconv.Itoa(lab.AgentPort)) + "/healthz")
	if err != nil {
		t.Fatalf("nat-b -> nat-a's agent port over the tailnet: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	out := waitSSH(ctx, t, l, b.NAT.Name, ipA, a, false, 60*time.Second)
	t.Logf("nat-b: ssh root@%s (nat-a) refused: %q", ipA, out)

	// A user-owned node outside the admins group is refused.
	stranger := strangerNode(ctx, t, l)
	if st, err := stranger.Status(ctx); err != nil || st.BackendState != "Running" || st.Self == nil || !st.Self.Online {
		t.Fatalf("stranger not online on the tailnet: %+v, %v", st, err)
	}
	out = waitSSH(ctx, t, l, stranger.NS.Name, ipA, a, false, 60*time.Second)
	t.Logf("stranger: ssh root@%s (nat-a) refused: %q", ipA, out)

	// tailnet.ssh: false on NAT b's agent: RunSSH goes off, the admin is refused there.
	if err := l.StopAgent(b.Name, syscall.SIGKILL, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := l.StartAgent(b.Name, "HEADNAT_TAILNET_SSH=false"); err != nil {
		t.Fatal(err)
	}
	waitRunSSH(ctx, t, l, b, false)
	out = waitSSH(ctx, t, l, admin, ipB, b, false, 60*time.Second)
	t.Logf("admin: ssh root@%s (nat-b, tailnet.ssh false) refused: %q", ipB, out)

	// SSH turned off by hand on NAT a: its agent turns it back on, the admin gets in again.
	turnedOn := func() int {
		log, err := os.ReadFile(l.AgentLog(a.Name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.Count(string(log), "tailnet: SSH server turned on")
	}
	before := turnedOn()
	if _, err := l.Tailscaled(a.Name).CLI(ctx, "set", "--ssh=false"); err != nil {
		t.Fatal(err)
	}
	waitRunSSH(ctx, t, l, a, true)
	waitSSH(ctx, t, l, admin, ipA, a, true, 60*time.Second)
	if n := turnedOn(); n != before+1 {
		t.Errorf("agent a logged turning SSH on %d times after the hand edit, want once", n-before)
	}
}

// waitRunSSH waits, up to 30 s, for the NAT's tailscaled to have RunSSH == want.
func waitRunSSH(ctx context.Context, t *testing.T, l *lab.Lab, s *lab.Site, want bool) {
	t.Helper()
	var on bool
	var err error
	ok, perr := lab.Poll(ctx, 30*time.Second, 250*time.Millisecond, func() bool {
		on, err = runSSH(ctx, l.Tailscaled(s.Name))
		return err == nil && on == want
	})
	if perr != nil || !ok {
		t.Fatalf("nat-%s: RunSSH %v (%v) after 30s, want %v", s.Name, on, err, want)
	}
}

// The stranger's network: a leg of its own on inet, in the test ranges, apart from the lab's.
const (
	strangerInet = "198.19.77.1"
	strangerAddr = "198.19.77.2"
	strangerNet  = "/30"
)

// strangerNode puts a user-owned node that is not in the admins group on the lab's tailnet: a
// namespace linked to inet, its own forwarder to headscale, tailscaled, logged in as user
// "stranger". Everything goes when the test ends.
func strangerNode(ctx context.Context, t *testing.T, l *lab.Lab) *tailnetlab.Tailscaled {
	t.Helper()
	ns := netns.New(t, "stranger")
	netns.MustVeth(t, ns, "eth0", l.Inet, "stranger")
	l.Inet.MustRun(t, "ip", "addr", "add", strangerInet+strangerNet, "dev", "stranger")
	ns.MustRun(t, "ip", "addr", "add", strangerAddr+strangerNet, "dev", "eth0")
	ns.MustRun(t, "ip", "route", "add", "default", "via", strangerInet)
	tailnetlab.MustForward(t, ns, lab.HeadscalePort, net.JoinHostPort(lab.HeadscaleAddr, strconv.Itoa(lab.HeadscalePort)))
	ts := tailnetlab.MustStartTailscaled(t, ns, tailnetlab.TailscaledOptions{Port: lab.TailnetUDPPort})
	hs := l.Headscale()
	if _, err := hs.CreateUser(ctx, "stranger"); err != nil {
		t.Fatal(err)
	}
	key, err := hs.PreAuthKey(ctx, "stranger", nil, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	login := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(lab.HeadscalePort))
	if err := ts.UpWith(ctx, tailnetlab.UpOptions{LoginURL: login, Key: key, Hostname: "stranger", AcceptRoutes: true}); err != nil {
		t.Fatalf("stranger's login: %s", redactKey(err.Error(), key))
	}
	return ts
}

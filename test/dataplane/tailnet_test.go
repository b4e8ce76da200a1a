package dataplane_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
)

const (
	adminPort = 7010  // a server on the admin's tailnet address
	wgPort    = 41641 // tailscaled's port
)

// withTailnet is the tailnet flags the agent would pass: tailscaled's device, the defaults
// for the rest.
var withTailnet = []string{"--tailnet-interface", topo.TailnetIface}

func newTailnetLab(t *testing.T) *lab {
	t.Helper()
	l := newLab(t, topo.ModeNAT)
	if err := l.AddAdmin(); err != nil {
		t.Fatal(err)
	}
	return l
}

func TestTailnetReachesTheVPCOnlyMasqueraded(t *testing.T) {
	l := newTailnetLab(t)
	l.echo(t)
	if err := topo.StartEcho(l.Priv, topo.PrivAddr, inboundPort); err != nil {
		t.Fatal(err)
	}
	if err := topo.StartEcho(l.Admin, topo.AdminAddr, adminPort); err != nil {
		t.Fatal(err)
	}
	toPriv := func() (string, error) { return topo.Dial(l.Admin, topo.PrivAddr, inboundPort, dialTimeout) }
	toInet := func() (string, error) { return topo.Dial(l.Admin, topo.InetAddr, echoPort, dialTimeout) }
	intoTailnet := func(from *netns.NS) (string, error) { return topo.Dial(from, topo.AdminAddr, adminPort, dialTimeout) }

	// Baselines, so that each check below can fail. Plain forwarding opens the tailnet to
	// the VPC and the internet...
	l.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	for _, from := range []*netns.NS{l.Priv, l.Inet} {
		if got, err := intoTailnet(from); err != nil {
			t.Fatalf("baseline: [%s] -> admin with plain forwarding: %q, %v", from.Name, got, err)
		}
	}
	// ...and the tailnet listed as an extra source gets out to the internet, and reaches the
	// VPC unmasqueraded.
	l.apply(t, "--extra-source-cidr", topo.TailnetCIDR)
	if got, err := toInet(); err != nil || got != topo.EIP {
		t.Fatalf("baseline: admin -> internet as an extra source = %q, %v", got, err)
	}
	if got, err := toPriv(); err != nil || got != topo.AdminAddr {
		t.Fatalf("baseline: admin -> private as an extra source = %q, %v; want it seen as %s", got, err, topo.AdminAddr)
	}

	r := l.apply(t, withTailnet...)
	for _, want := range []string{"chain-create mangle HEADNAT-PATH-IN", "chain-create mangle HEADNAT-PATH-OUT", "masquerade the tailnet to the VPC"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("apply output lacks %q", want)
		}
	}
	if got, err := toPriv(); err != nil || got != topo.NATAddr {
		t.Errorf("admin -> private = %q, %v; want it answered and seen from the NAT's VPC address %s", got, err, topo.NATAddr)
	}
	if got, err := toInet(); err == nil {
		t.Errorf("admin -> internet went through (server saw %q): the tailnet is not to use the NAT as an exit", got)
	}
	for _, from := range []*netns.NS{l.Priv, l.Inet} {
		if got, err := intoTailnet(from); err == nil {
			t.Errorf("[%s] opened a connection into the tailnet (admin saw %q)", from.Name, got)
		}
	}
	if got, err := topo.Dial(l.Inet, topo.PrivAddr, inboundPort, dialTimeout); err == nil {
		t.Errorf("internet -> private went through (server saw %q)", got)
	}
	l.mustGetOut(t) // the VPC's NAT to the internet is unchanged
	if v := mustHeadnat(t, l.NAT, l.args("verify", withTailnet...)...); !strings.HasPrefix(v.stdout, "ok") {
		t.Fatalf("verify: %q", v.stdout)
	}
	if v := headnat(t, l.NAT, l.args("verify")...); v.code != 1 || !strings.Contains(v.stdout, "chain-unexpected: mangle HEADNAT-PATH-IN exists") {
		t.Errorf("verify without the tailnet flags: exit %d\n%s", v.code, v.stdout)
	}

	mustHeadnat(t, l.NAT, l.remove()...)
	if s := rules(t, l.NAT); strings.Contains(s, "HEADNAT") {
		t.Fatalf("rules left after remove:\n%s", s)
	}
}

func TestTailnetReachesTheAgentPort(t *testing.T) {
	l := newTailnetLab(t)
	if err := topo.StartEcho(l.NAT, "0.0.0.0", agentPort); err != nil {
		t.Fatal(err)
	}
	l.apply(t)
	if got, err := dialAgent(l.Admin, topo.NATTailnetAddr); err == nil {
		t.Fatalf("baseline: without the tailnet flags the agent port answered the tailnet (%q), so this test could not fail", got)
	}
	l.apply(t, withTailnet...)
	for _, addr := range []string{topo.NATTailnetAddr, topo.NATAddr} {
		if got, err := dialAgent(l.Admin, addr); err != nil || got != topo.AdminAddr {
			t.Errorf("admin -> %s:%d = %q, %v; want an answer seeing %s", addr, agentPort, got, err, topo.AdminAddr)
		}
	}
	if got, err := dialAgent(l.Priv, topo.NATAddr); err != nil || got != topo.PrivAddr {
		t.Errorf("private host -> NAT:%d = %q, %v", agentPort, got, err)
	}
	if got, err := dialAgent(l.Inet, topo.EIP); err == nil {
		t.Errorf("internet -> EIP:%d answered (%q), want it dropped", agentPort, got)
	}
	mustHeadnat(t, l.NAT, l.args("verify", withTailnet...)...)
}

// udpListen starts a UDP receiver on port in ns that appends each datagram to a file, and
// returns a function reporting whether a datagram with payload arrived within wait.
func udpListen(t *testing.T, ns *netns.NS, port int) func(payload string, wait time.Duration) bool {
	t.Helper()
	file := filepath.Join(t.TempDir(), "udp-"+strconv.Itoa(port))
	ns.MustStart(t, exec.Command("socat", "-u", fmt.Sprintf("UDP4-RECV:%d", port), "OPEN:"+file+",creat,append"))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(ns.MustRun(t, "ss", "-Huln", fmt.Sprintf("sport = :%d", port)), strconv.Itoa(port)) {
		if time.Now().After(deadline) {
			t.Fatalf("[%s] nothing listens on udp %d", ns.Name, port)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func(payload string, wait time.Duration) bool {
		deadline := time.Now().Add(wait)
		for {
			b, _ := os.ReadFile(file)
			if strings.Contains(string(b), payload+"\n") {
				return true
			}
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// sendUDPFrom sends one datagram with payload from ns (from bind, an address or
// address:port) to dst:port, and returns socat's error.
func sendUDPFrom(ns *netns.NS, bind, dst string, port int, payload string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := ns.Cmd(ctx, "socat", "-u", "-", fmt.Sprintf("UDP4-SENDTO:%s:%d,bind=%s", dst, port, bind))
	cmd.Stdin = strings.NewReader(payload + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// tailscaledInput installs what tailscaled v1.102 puts in filter INPUT: its ts-input chain,
// which accepts everything from its device and its own UDP port, jumped to first.
func tailscaledInput(t *testing.T, ns *netns.NS) {
	t.Helper()
	for _, a := range []string{
		"iptables -N ts-input",
		"iptables -A ts-input -i tailscale0 -j ACCEPT",
		"iptables -A ts-input -p udp -m udp --dport 41641 -j ACCEPT",
		"iptables -I INPUT 1 -j ts-input",
	} {
		ns.MustRun(t, strings.Fields(a)...)
	}
}

func TestTailnetPathDiversityDropsTailscaledOverTheVPC(t *testing.T) {
	l := newTailnetLab(t)
	tailscaledInput(t, l.NAT)
	privGot := udpListen(t, l.Priv, udpPort)
	inetGot := udpListen(t, l.Inet, udpPort)
	fromWG := topo.NATAddr + ":" + strconv.Itoa(wgPort)
	direct := append([]string{"--tailnet-allow-vpc-direct"}, withTailnet...)

	// With the drop turned off, tailscaled's port talks to the VPC: the test can fail.
	l.apply(t, direct...)
	if strings.Contains(rules(t, l.NAT), "HEADNAT-PATH") {
		t.Fatalf("path diversity chains with --tailnet-allow-vpc-direct:\n%s", rules(t, l.NAT))
	}
	if err := sendUDPFrom(l.NAT, fromWG, topo.PrivAddr, udpPort, "out-vpc-direct"); err != nil || !privGot("out-vpc-direct", 3*time.Second) {
		t.Fatalf("baseline: NAT:%d -> private host: %v", wgPort, err)
	}

	// OUTPUT: from tailscaled's port to a VPC address is dropped (the send fails with
	// EPERM), to the internet it goes.
	l.apply(t, withTailnet...)
	mustHeadnat(t, l.NAT, l.args("verify", withTailnet...)...)
	if err := sendUDPFrom(l.NAT, fromWG, topo.PrivAddr, udpPort, "out-vpc"); err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Errorf("NAT:%d -> private host: send error %v, want EPERM", wgPort, err)
	}
	if err := sendUDPFrom(l.NAT, fromWG, topo.InetAddr, udpPort, "out-internet"); err != nil || !inetGot("out-internet", 3*time.Second) {
		t.Errorf("NAT:%d -> internet did not arrive: %v", wgPort, err)
	}
	if err := sendUDPFrom(l.NAT, topo.NATAddr, topo.PrivAddr, udpPort, "out-vpc-other-port"); err != nil || !privGot("out-vpc-other-port", 3*time.Second) {
		t.Errorf("NAT (another source port) -> private host did not arrive: %v", err)
	}
	if privGot("out-vpc", 0) {
		t.Error("NAT:41641 -> private host arrived")
	}

	// INPUT: to tailscaled's port from a VPC address is dropped, from the internet (the
	// EIP, mapped by the IGW) accepted, although ts-input accepts the port in filter INPUT.
	natGot := udpListen(t, l.NAT, wgPort)
	if err := sendUDPFrom(l.Inet, topo.InetAddr, topo.EIP, wgPort, "in-internet"); err != nil || !natGot("in-internet", 3*time.Second) {
		t.Errorf("internet -> EIP:%d did not arrive: %v", wgPort, err)
	}
	if err := sendUDPFrom(l.Priv, topo.PrivAddr, topo.NATAddr, wgPort, "in-vpc"); err != nil {
		t.Fatal(err)
	}
	if natGot("in-vpc", 2*time.Second) {
		t.Errorf("private host -> NAT:%d arrived", wgPort)
	}

	// Drift: a missing jump, then a foreign ACCEPT above it, are reported, and they do let
	// the VPC in; apply puts the jump back on top.
	l.NAT.MustRun(t, "iptables", "-t", "mangle", "-D", "OUTPUT", "-m", "comment", "--comment", "headnat", "-j", "HEADNAT-PATH-OUT")
	l.NAT.MustRun(t, "iptables", "-t", "mangle", "-I", "INPUT", "1", "-p", "udp", "-m", "comment", "--comment", "operator", "-j", "ACCEPT")
	v := headnat(t, l.NAT, l.args("verify", withTailnet...)...)
	for _, want := range []string{
		"jump-missing: mangle OUTPUT has no jump to HEADNAT-PATH-OUT",
		`jump-bypassed: in mangle INPUT, a foreign rule above the jump to HEADNAT-PATH-IN accepts traffic headnat never sees: -A INPUT -p udp -m comment --comment operator -j ACCEPT`,
	} {
		if v.code != 1 || !strings.Contains(v.stdout, want) {
			t.Errorf("verify after drift: exit %d, output lacks %q:\n%s", v.code, want, v.stdout)
		}
	}
	if err := sendUDPFrom(l.Priv, topo.PrivAddr, topo.NATAddr, wgPort, "in-vpc-bypassed"); err != nil || !natGot("in-vpc-bypassed", 3*time.Second) {
		t.Errorf("private host -> NAT:%d with the jump bypassed did not arrive: %v", wgPort, err)
	}
	l.apply(t, withTailnet...)
	mustHeadnat(t, l.NAT, l.args("verify", withTailnet...)...)
	if got := l.NAT.MustRun(t, "iptables", "-t", "mangle", "-S", "INPUT"); !strings.Contains(got, "-A INPUT -m comment --comment headnat -j HEADNAT-PATH-IN\n-A INPUT -p udp") {
		t.Errorf("mangle INPUT after apply:\n%s", got)
	}
	if err := sendUDPFrom(l.Priv, topo.PrivAddr, topo.NATAddr, wgPort, "in-vpc-again"); err != nil {
		t.Fatal(err)
	}
	if natGot("in-vpc-again", 2*time.Second) {
		t.Errorf("private host -> NAT:%d arrived after the repair", wgPort)
	}

	// Turned off again, the VPC gets in: it was the drop that stopped it.
	l.apply(t, direct...)
	if err := sendUDPFrom(l.Priv, topo.PrivAddr, topo.NATAddr, wgPort, "in-vpc-direct"); err != nil || !natGot("in-vpc-direct", 3*time.Second) {
		t.Errorf("private host -> NAT:%d with --tailnet-allow-vpc-direct did not arrive: %v", wgPort, err)
	}
	mustHeadnat(t, l.NAT, l.remove()...)
	if s := rules(t, l.NAT); strings.Contains(s, "HEADNAT") || !strings.Contains(s, "-A ts-input -p udp -m udp --dport 41641 -j ACCEPT") {
		t.Fatalf("rules after remove:\n%s", s)
	}
}

package dataplane_test

import (
	"strings"
	"testing"

	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
)

// inbound starts a server on the private host and returns a dial from the internet to it.
func (l *lab) inbound(t *testing.T) func() error {
	t.Helper()
	if err := topo.StartEcho(l.Priv, topo.PrivAddr, inboundPort); err != nil {
		t.Fatal(err)
	}
	return func() error {
		_, err := topo.Dial(l.Inet, topo.PrivAddr, inboundPort, dialTimeout)
		return err
	}
}

// forward is the filter FORWARD chain's rules, without its policy.
func forward(t *testing.T, ns *netns.NS) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(ns.MustRun(t, "iptables", "-S", "FORWARD")), "\n") {
		if strings.HasPrefix(line, "-A ") {
			out = append(out, line)
		}
	}
	return out
}

const (
	headnatJump    = "-A FORWARD -m comment --comment headnat -j HEADNAT-FORWARD"
	operatorAccept = "-A FORWARD -m comment --comment operator -j ACCEPT"
)

func TestForeignAcceptAboveTheJumpIsFoundAndUndone(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	in := l.inbound(t)
	l.apply(t)
	if in() == nil {
		t.Fatal("internet -> private went through headnat's rules")
	}
	l.NAT.MustRun(t, "iptables", "-I", "FORWARD", "1", "-m", "comment", "--comment", "operator", "-j", "ACCEPT")
	if err := in(); err != nil {
		t.Fatalf("baseline: the ACCEPT above headnat's jump did not let the internet in, so this test could not fail: %v", err)
	}
	r := headnat(t, l.NAT, l.args("verify")...)
	want := "jump-bypassed: in filter FORWARD, a foreign rule above the jump to HEADNAT-FORWARD accepts traffic headnat never sees: " + operatorAccept + "\n"
	if r.code != 1 || r.stdout != want {
		t.Fatalf("verify: exit %d\n%s\nwant exit 1 and\n%s", r.code, r.stdout, want)
	}
	l.apply(t)
	if got := forward(t, l.NAT); len(got) != 2 || got[0] != headnatJump || got[1] != operatorAccept {
		t.Fatalf("FORWARD after apply: %q", got)
	}
	if err := in(); err == nil {
		t.Fatal("internet -> private still goes through after apply")
	}
	mustHeadnat(t, l.NAT, l.args("verify")...)
}

func TestDuplicateJumpKeepsTheTopCopy(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	in := l.inbound(t)
	l.apply(t)
	// headnat's jump, the operator's ACCEPT, headnat's jump again.
	l.NAT.MustRun(t, "iptables", "-A", "FORWARD", "-m", "comment", "--comment", "operator", "-j", "ACCEPT")
	l.NAT.MustRun(t, "iptables", "-A", "FORWARD", "-m", "comment", "--comment", "headnat", "-j", "HEADNAT-FORWARD")
	if r := headnat(t, l.NAT, l.args("verify")...); r.code != 1 || !strings.Contains(r.stdout, "jump-duplicate: filter FORWARD jumps to HEADNAT-FORWARD 2 times") {
		t.Fatalf("verify: exit %d\n%s", r.code, r.stdout)
	}
	l.apply(t)
	if got := forward(t, l.NAT); len(got) != 2 || got[0] != headnatJump || got[1] != operatorAccept {
		t.Fatalf("FORWARD after apply: %q", got)
	}
	if in() == nil {
		t.Fatal("internet -> private went through: apply kept the copy below the ACCEPT")
	}
	mustHeadnat(t, l.NAT, l.args("verify")...)
}

func TestKeepJumpPosition(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	in := l.inbound(t)
	l.apply(t)
	l.NAT.MustRun(t, "iptables", "-I", "FORWARD", "1", "-m", "comment", "--comment", "operator", "-j", "ACCEPT")
	before := save(t, l.NAT)
	r := l.apply(t, "--keep-jump-position")
	if r.changes() != "no changes\n" || save(t, l.NAT) != before {
		t.Fatalf("apply --keep-jump-position changed the rules:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "note: filter FORWARD: \""+operatorAccept+"\" stands above headnat's jump") {
		t.Fatalf("no note naming the rule above the jump:\n%s", r.stdout)
	}
	if err := in(); err != nil {
		t.Fatalf("the operator's ACCEPT, kept above the jump, should let the internet in: %v", err)
	}
	mustHeadnat(t, l.NAT, l.args("verify", "--keep-jump-position")...)
	if v := headnat(t, l.NAT, l.args("verify")...); v.code != 1 || !strings.Contains(v.stdout, "jump-bypassed") {
		t.Fatalf("verify without --keep-jump-position: exit %d\n%s", v.code, v.stdout)
	}
}

func TestTailscaledJumpMayStandAbove(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	l.echo(t)
	foreign(t, l.NAT) // tailscaled's ts-forward jump leads FORWARD
	l.apply(t)
	got := forward(t, l.NAT)
	if len(got) < 2 || got[0] != "-A FORWARD -j ts-forward" || got[1] != headnatJump {
		t.Fatalf("FORWARD after apply: %q", got)
	}
	mustHeadnat(t, l.NAT, l.args("verify")...)
	l.mustGetOut(t)
	// tailscaled restarting puts its jump first again wherever headnat's stands: both are fine.
	for _, pos := range []string{"2", "1"} {
		l.NAT.MustRun(t, "iptables", "-D", "FORWARD", "-j", "ts-forward")
		l.NAT.MustRun(t, "iptables", "-I", "FORWARD", pos, "-j", "ts-forward")
		mustHeadnat(t, l.NAT, l.args("verify")...)
		if r := l.apply(t); r.changes() != "no changes\n" {
			t.Fatalf("ts-forward at %s: apply changed:\n%s", pos, r.stdout)
		}
	}
	// A holder jump left by an apply killed mid-move is stale: reported, then deleted.
	l.NAT.MustRun(t, "iptables", "-I", "FORWARD", "1", "-m", "comment", "--comment", "headnat: moving", "-j", "HEADNAT-FORWARD")
	if v := headnat(t, l.NAT, l.args("verify")...); v.code != 1 || !strings.Contains(v.stdout, `rule-unexpected in filter FORWARD: -A FORWARD -m comment --comment "headnat: moving" -j HEADNAT-FORWARD`) {
		t.Fatalf("verify with a leftover holder: exit %d\n%s", v.code, v.stdout)
	}
	l.apply(t)
	mustHeadnat(t, l.NAT, l.args("verify")...)
	l.mustGetOut(t)
}

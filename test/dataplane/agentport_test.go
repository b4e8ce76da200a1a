package dataplane_test

import (
	"strings"
	"testing"

	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
)

const agentPort = 7070

// dialAgent connects from ns to addr's agent port and returns the address the listener saw.
func dialAgent(ns *netns.NS, addr string) (string, error) {
	return topo.Dial(ns, addr, agentPort, dialTimeout)
}

func TestAgentPortOnlyFromVPCAndLoopback(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	if err := topo.StartEcho(l.NAT, "0.0.0.0", agentPort); err != nil {
		t.Fatal(err)
	}
	// Without headnat's INPUT rules the port answers on the public address: the test can fail.
	if got, err := dialAgent(l.Inet, topo.EIP); err != nil || got != topo.InetAddr {
		t.Fatalf("baseline: internet -> EIP:%d = %q, %v; want an answer", agentPort, got, err)
	}

	l.apply(t) // --agent-port defaults to the agent's 7070
	if got, err := dialAgent(l.Priv, topo.NATAddr); err != nil || got != topo.PrivAddr {
		t.Errorf("private host -> NAT:%d = %q, %v; want an answer", agentPort, got, err)
	}
	for _, addr := range []string{"127.0.0.1", topo.NATAddr} {
		if got, err := dialAgent(l.NAT, addr); err != nil {
			t.Errorf("NAT itself -> %s:%d = %q, %v; want an answer", addr, agentPort, got, err)
		}
	}
	if got, err := dialAgent(l.Inet, topo.EIP); err == nil {
		t.Errorf("internet -> EIP:%d answered (listener saw %q), want it dropped", agentPort, got)
	}
	if r := mustHeadnat(t, l.NAT, l.args("verify")...); !strings.HasPrefix(r.stdout, "ok") {
		t.Fatalf("verify: %q", r.stdout)
	}

	// An agent-only source reaches the port, and only the port: it is not forwarded.
	l.apply(t, "--agent-source-cidr", "203.0.113.0/24")
	if _, err := dialAgent(l.Inet, topo.EIP); err != nil {
		t.Errorf("internet as an agent source -> EIP:%d: %v", agentPort, err)
	}
	if _, err := topo.Dial(l.Inet, topo.PrivAddr, inboundPort, dialTimeout); err == nil {
		t.Error("an agent source opened a connection into the VPC")
	}

	// Port 0: headnat's INPUT chain goes, and verify with the default port notices.
	r := l.apply(t, "--agent-port", "0")
	if !strings.Contains(r.stdout, "chain-delete filter HEADNAT-INPUT") {
		t.Fatalf("apply --agent-port 0 did not delete HEADNAT-INPUT:\n%s", r.stdout)
	}
	if strings.Contains(rules(t, l.NAT), "HEADNAT-INPUT") {
		t.Fatal("HEADNAT-INPUT left behind")
	}
	if _, err := dialAgent(l.Inet, topo.EIP); err != nil {
		t.Errorf("internet -> EIP:%d without agent port rules: %v", agentPort, err)
	}
	mustHeadnat(t, l.NAT, l.args("verify", "--agent-port", "0")...)
	v := headnat(t, l.NAT, l.args("verify")...)
	if v.code != 1 || !strings.Contains(v.stdout, "chain-missing: filter HEADNAT-INPUT does not exist") {
		t.Fatalf("verify with the port after --agent-port 0: exit %d\n%s", v.code, v.stdout)
	}
	l.apply(t)
	if _, err := dialAgent(l.Inet, topo.EIP); err == nil {
		t.Error("internet -> EIP answered after the rules came back")
	}
	mustHeadnat(t, l.NAT, l.remove()...)
	if strings.Contains(rules(t, l.NAT), "HEADNAT") {
		t.Fatalf("rules left after remove:\n%s", rules(t, l.NAT))
	}
}

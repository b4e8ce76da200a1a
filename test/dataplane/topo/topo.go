// Package topo builds the data-plane lab: a private host behind a VPC router whose private
// route table sends internet-bound traffic to a single-interface NAT instance that hairpins
// (in and out of eth0), an IGW that maps the NAT's private address to its public one (both
// ways), and an internet host. Tests and benchmarks of the NAT data plane share it.
// TwoInterface builds the other shape: a NAT with an inside and an egress interface.
//
//	[inet] 203.0.113.1 ----- igw 203.0.113.254 (+ EIP 203.0.113.10)
//	                         [router]  ip rule iif prv -> table 110: throw 198.18.0.0/15,
//	                                   default via the NAT; iif igw to 198.18.10.0/24 ->
//	                                   table 120: default via the NAT
//	[nat] eth0 198.18.0.10 - pub 198.18.0.1
//	[priv] 198.18.10.2 ----- prv 198.18.10.1
package topo

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// Addresses of the lab (test ranges only).
const (
	VPCCIDR    = "198.18.0.0/16"
	PrivAddr   = "198.18.10.2"
	PrivSubnet = "198.18.10.0/24"
	PrivGW     = "198.18.10.1"
	NATAddr    = "198.18.0.10"
	PubGW      = "198.18.0.1"
	EIP        = "203.0.113.10"
	IGWAddr    = "203.0.113.254"
	InetAddr   = "203.0.113.1"
)

// Mode is what lets private traffic out to the internet.
type Mode int

const (
	// ModeNAT is the real shape: the IGW lets out only the NAT's own address (mapped to its
	// EIP), so private hosts get out only when the NAT instance masquerades them. The NAT
	// instance starts with forwarding off and no rules.
	ModeNAT Mode = iota
	// ModeRouted is the baseline: the same paths, but the IGW also lets the private subnet
	// out unmapped (the internet host routes it back), and the NAT instance forwards with no
	// rules at all: plain routing, no NAT, no conntrack on the NAT instance.
	ModeRouted
)

// Topology is a built lab. Close removes it with everything started in it.
type Topology struct {
	Priv, Router, NAT, Inet *netns.NS
	Admin                   *netns.NS // after AddAdmin
}

// Build creates the namespaces, links and routes.
func Build(mode Mode) (_ *Topology, err error) {
	t := &Topology{}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	for _, p := range []struct {
		ns   **netns.NS
		role string
	}{{&t.Priv, "priv"}, {&t.Router, "router"}, {&t.NAT, "nat"}, {&t.Inet, "inet"}} {
		if *p.ns, err = netns.Add(p.role); err != nil {
			return nil, err
		}
	}
	for _, v := range []struct {
		a     *netns.NS
		aIf   string
		b     *netns.NS
		bIf   string
		aAddr string
		bAddr string
	}{
		{t.Priv, "eth0", t.Router, "prv", PrivAddr + "/24", PrivGW + "/24"},
		{t.NAT, "eth0", t.Router, "pub", NATAddr + "/24", PubGW + "/24"},
		{t.Inet, "eth0", t.Router, "igw", InetAddr + "/24", IGWAddr + "/24"},
	} {
		if err := netns.Veth(v.a, v.aIf, v.b, v.bIf); err != nil {
			return nil, err
		}
		if _, err := v.a.Run("ip", "addr", "add", v.aAddr, "dev", v.aIf); err != nil {
			return nil, err
		}
		if _, err := v.b.Run("ip", "addr", "add", v.bAddr, "dev", v.bIf); err != nil {
			return nil, err
		}
	}
	type step struct {
		ns   *netns.NS
		args string
	}
	steps := []step{
		{t.Priv, "ip route add default via " + PrivGW},
		{t.Inet, "ip route add 198.18.0.0/15 via " + IGWAddr},

		{t.Router, "sysctl -qw net.ipv4.ip_forward=1"},
		{t.Router, "ip addr add " + EIP + "/32 dev igw"},
		// The private subnet's route table.
		{t.Router, "ip rule add iif prv lookup 110 pref 1000"},
		{t.Router, "ip route add throw 198.18.0.0/15 table 110"},
		{t.Router, "ip route add default via " + NATAddr + " table 110"},
		// Inbound towards the private subnet lands on the NAT (what an open relay would
		// forward), and so do the replies of routed-mode flows.
		{t.Router, "ip rule add iif igw to " + PrivSubnet + " lookup 120 pref 1010"},
		{t.Router, "ip route add default via " + NATAddr + " table 120"},
		// The IGW: the NAT's private address is mapped to its EIP both ways; nothing else
		// starts a flow outwards.
		{t.Router, "iptables -t nat -A POSTROUTING -o igw -s " + NATAddr + "/32 -j SNAT --to-source " + EIP},
		{t.Router, "iptables -t nat -A PREROUTING -i igw -d " + EIP + "/32 -j DNAT --to-destination " + NATAddr},
		{t.Router, "iptables -A FORWARD -o igw -s " + NATAddr + "/32 -j ACCEPT"},

		{t.NAT, "ip route add default via " + PubGW},
		{t.NAT, "sysctl -qw net.ipv4.conf.all.send_redirects=0"},
		{t.NAT, "sysctl -qw net.ipv4.conf.eth0.send_redirects=0"},
	}
	if mode == ModeRouted {
		steps = append(steps,
			step{t.Router, "iptables -A FORWARD -o igw -s " + PrivSubnet + " -j ACCEPT"},
			step{t.NAT, "sysctl -qw net.ipv4.ip_forward=1"},
		)
	}
	steps = append(steps, step{t.Router, "iptables -A FORWARD -o igw -m conntrack --ctstate NEW -j DROP"})
	for _, s := range steps {
		if _, err := s.ns.Run(strings.Fields(s.args)...); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// New builds a topology for a test and removes it when the test ends.
func New(tb testing.TB, mode Mode) *Topology {
	tb.Helper()
	netns.RequireRoot(tb)
	t, err := Build(mode)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := t.Close(); err != nil {
			tb.Errorf("cleanup: %v", err)
		}
	})
	return t
}

// Close kills everything started in the namespaces and deletes them.
func (t *Topology) Close() error {
	var errs []error
	for _, n := range []*netns.NS{t.Admin, t.Inet, t.NAT, t.Router, t.Priv} {
		if n != nil {
			errs = append(errs, n.Delete())
		}
	}
	return errors.Join(errs...)
}

// Addresses of the tailnet stand-in. 100.64.0.0/10 is used only inside the namespaces the
// lab creates.
const (
	TailnetIface   = "tailscale0"
	TailnetCIDR    = "100.64.0.0/10"
	NATTailnetAddr = "100.64.0.1" // the NAT's address on its tailscale0
	AdminAddr      = "100.64.0.2" // an admin's tailnet address
)

// AddAdmin adds an admin on the tailnet: a veth named tailscale0 in the NAT namespace stands
// in for tailscaled's TUN device, and its other end is the admin namespace, whose traffic all
// goes through the NAT (as the admin's subnet routes would send it). The router routes the
// tailnet range to the NAT (as a VPC route table entry would), so the private host and the
// internet can try to open connections into the tailnet.
//
//	[admin] 100.64.0.2 ----- tailscale0 100.64.0.1 [nat]
func (t *Topology) AddAdmin() error {
	var err error
	if t.Admin, err = netns.Add("admin"); err != nil {
		return err
	}
	if err := netns.Veth(t.Admin, "eth0", t.NAT, TailnetIface); err != nil {
		return err
	}
	for _, s := range []struct {
		ns   *netns.NS
		args string
	}{
		{t.Admin, "ip addr add " + AdminAddr + "/24 dev eth0"},
		{t.Admin, "ip route add default via " + NATTailnetAddr},
		{t.NAT, "ip addr add " + NATTailnetAddr + "/24 dev " + TailnetIface},
		{t.Router, "ip route add " + TailnetCIDR + " via " + NATAddr},
		{t.Inet, "ip route add " + TailnetCIDR + " via " + IGWAddr},
	} {
		if _, err := s.ns.Run(strings.Fields(s.args)...); err != nil {
			return err
		}
	}
	return nil
}

// StartEcho starts a TCP server on addr:port in ns that answers every connection with the
// client's address as it sees it, then closes. It waits until the port listens (at most 5 s).
func StartEcho(ns *netns.NS, addr string, port int) error {
	cmd := exec.Command("socat", fmt.Sprintf("TCP-LISTEN:%d,bind=%s,fork,reuseaddr", port, addr), "SYSTEM:echo $SOCAT_PEERADDR")
	if err := ns.Start(cmd); err != nil {
		return err
	}
	return WaitListen(ns, port, 5*time.Second)
}

// WaitListen waits until a TCP socket listens on port in ns.
func WaitListen(ns *netns.NS, port int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		out, err := ns.Run("ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if err == nil && strings.TrimSpace(out) != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("[%s] nothing listens on port %d after %s", ns.Name, port, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Dial connects from ns to addr:port (giving up after timeout) and returns what the server
// sent, trimmed.
func Dial(ns *netns.NS, addr string, port int, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout+5*time.Second)
	defer cancel()
	secs := fmt.Sprintf("%.1f", timeout.Seconds())
	cmd := ns.Cmd(ctx, "socat", "-T", secs, "-u", fmt.Sprintf("TCP:%s:%d,connect-timeout=%s", addr, port, secs), "-")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("[%s] connect %s:%d: %w: %s", ns.Name, addr, port, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Addresses of the two-interface lab.
const (
	TwoPrivAddr   = "198.18.20.2"   // the private host, behind the NAT's inside interface
	TwoInsideAddr = "198.18.20.1"   // the NAT's eth1
	TwoNATAddr    = "198.18.0.10"   // the NAT's eth0, its egress
	TwoWANAddr    = "198.18.0.1"    // the upstream router on the NAT's side
	TwoInetAddr   = "203.0.113.1"   // the internet host
	TwoInetGW     = "203.0.113.254" // the upstream router on the internet host's side
	TwoAtkAddr    = "198.51.100.2"  // a host on the internet that forges packets
	TwoAtkGW      = "198.51.100.1"  // the upstream router on the attacker's side
	TwoVPCCIDR    = "198.18.0.0/16" // both NAT interfaces are in the VPC
)

// TwoInterface is a NAT instance with two interfaces: private traffic arrives on eth1 and
// leaves, masqueraded, by eth0 (the egress). The upstream router sends whatever arrives
// from the attacker's link to the NAT's eth0, so a packet the attacker forges with a
// private source reaches the NAT from the egress side, as from the internet.
//
//	[priv] 198.18.20.2 -- eth1 198.18.20.1 [nat] eth0 198.18.0.10 -- 198.18.0.1 [wan] 203.0.113.254 -- 203.0.113.1 [inet]
//	                                                                     198.51.100.1 -- 198.51.100.2 [atk]
type TwoInterface struct {
	Priv, NAT, WAN, Inet, Atk *netns.NS
}

// NewTwoInterface builds the two-interface lab for a test and removes it when the test ends.
func NewTwoInterface(tb testing.TB) *TwoInterface {
	tb.Helper()
	netns.RequireRoot(tb)
	t := &TwoInterface{}
	tb.Cleanup(func() {
		for _, n := range []*netns.NS{t.Atk, t.Inet, t.WAN, t.NAT, t.Priv} {
			if n != nil {
				if err := n.Delete(); err != nil {
					tb.Errorf("cleanup: %v", err)
				}
			}
		}
	})
	for _, p := range []struct {
		ns   **netns.NS
		role string
	}{{&t.Priv, "priv"}, {&t.NAT, "nat"}, {&t.WAN, "wan"}, {&t.Inet, "inet"}, {&t.Atk, "atk"}} {
		n, err := netns.Add(p.role)
		if err != nil {
			tb.Fatal(err)
		}
		*p.ns = n
	}
	netns.MustVeth(tb, t.Priv, "eth0", t.NAT, "eth1")
	netns.MustVeth(tb, t.NAT, "eth0", t.WAN, "nat")
	netns.MustVeth(tb, t.Inet, "eth0", t.WAN, "inet")
	netns.MustVeth(tb, t.Atk, "eth0", t.WAN, "atk")
	for _, s := range []struct {
		ns   *netns.NS
		args string
	}{
		{t.Priv, "ip addr add " + TwoPrivAddr + "/24 dev eth0"},
		{t.Priv, "ip route add default via " + TwoInsideAddr},
		{t.NAT, "ip addr add " + TwoInsideAddr + "/24 dev eth1"},
		{t.NAT, "ip addr add " + TwoNATAddr + "/24 dev eth0"},
		{t.NAT, "ip route add default via " + TwoWANAddr},
		{t.NAT, "sysctl -qw net.ipv4.conf.all.send_redirects=0"},
		{t.WAN, "ip addr add " + TwoWANAddr + "/24 dev nat"},
		{t.WAN, "ip addr add " + TwoInetGW + "/24 dev inet"},
		{t.WAN, "ip addr add " + TwoAtkGW + "/24 dev atk"},
		{t.WAN, "sysctl -qw net.ipv4.ip_forward=1"},
		{t.WAN, "sysctl -qw net.ipv4.conf.all.rp_filter=0"},
		{t.WAN, "sysctl -qw net.ipv4.conf.atk.rp_filter=0"},
		{t.WAN, "ip rule add iif atk lookup 130 pref 1000"},
		{t.WAN, "ip route add default via " + TwoNATAddr + " table 130"},
		{t.Inet, "ip addr add " + TwoInetAddr + "/24 dev eth0"},
		{t.Inet, "ip route add default via " + TwoInetGW},
		{t.Atk, "ip addr add " + TwoAtkAddr + "/24 dev eth0"},
		{t.Atk, "ip route add default via " + TwoAtkGW},
		// The forged source: the attacker holds the private host's address itself.
		{t.Atk, "ip addr add " + TwoPrivAddr + "/32 dev lo"},
	} {
		s.ns.MustRun(tb, strings.Fields(s.args)...)
	}
	return t
}

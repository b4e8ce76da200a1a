package lab

import (
	"fmt"
	"strconv"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// The lab's fixed addressing (docs/ARCHITECTURE.md "The lab"). Everything lives in test ranges.
const (
	Region     = "us-east-1"
	AccountID  = "123456789012"
	Cluster    = "lab"
	ClusterTag = "headnat:cluster"

	VPCCIDR  = "198.18.0.0/16"
	APIAddr  = "198.18.255.254" // the EC2/AutoScaling endpoint, on the router's lo
	APIPort  = 4566
	EchoAddr = "203.0.113.1" // the "internet" echo server, in inet
	IGWAddr  = "203.0.113.254"
	InetCIDR = "203.0.113.0/24"

	AgentPort = 7070
)

// APIURL is the simulated EC2/AutoScaling endpoint as the agents see it.
func APIURL() string { return "http://" + APIAddr + ":" + strconv.Itoa(APIPort) }

// EchoURL is the echo server's URL.
func EchoURL() string { return "http://" + EchoAddr + "/" }

// Site is one availability zone: its public subnet with a NAT instance and its private subnet
// with a client host, and the IDs the simulator gave them.
type Site struct {
	Name        string // "a", "b"
	Zone        string // "us-east-1a"
	PublicCIDR  string
	PrivateCIDR string
	RouterPub   string // the router's address in the public subnet (NAT's default gateway)
	RouterPrv   string
	NATIP       string
	EIP         string
	HostIP      string
	KernelTable int // the router's kernel table for the private route table
	MAC         string

	// Set by Up.
	NAT, Host                   *netns.NS
	VPCID                       string
	PublicSubnet, PrivateSubnet string
	RouteTable                  string
	InstanceID, ENI             string
	AllocationID                string
	LaunchTime                  time.Time
}

func defaultSites() []*Site {
	mk := func(i int, name string) *Site {
		return &Site{
			Name:        name,
			Zone:        Region + name,
			PublicCIDR:  fmt.Sprintf("198.18.%d.0/24", i),
			PrivateCIDR: fmt.Sprintf("198.18.%d.0/24", 10+i),
			RouterPub:   fmt.Sprintf("198.18.%d.1", i),
			RouterPrv:   fmt.Sprintf("198.18.%d.1", 10+i),
			NATIP:       fmt.Sprintf("198.18.%d.10", i),
			EIP:         fmt.Sprintf("203.0.113.%d", 10+i),
			HostIP:      fmt.Sprintf("198.18.%d.2", 10+i),
			KernelTable: 110 + i,
			MAC:         fmt.Sprintf("02:00:c6:12:%02x:0a", i),
		}
	}
	return []*Site{mk(0, "a"), mk(1, "b")}
}

func (s *Site) pubIf() string { return "pub-" + s.Name }
func (s *Site) prvIf() string { return "prv-" + s.Name }

func prefixLen(cidr string) string {
	for i := len(cidr) - 1; i >= 0; i-- {
		if cidr[i] == '/' {
			return cidr[i:]
		}
	}
	return ""
}

// run runs each command in ns, stopping at the first failure.
func run(ns *netns.NS, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := ns.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

func sysctl(kv string) []string { return []string{"sysctl", "-q", "-w", kv} }

// buildNetwork creates the namespaces and links and configures everything the simulator does
// not own: addresses, connected routes, forwarding in the router, the hosts' and NATs' default
// routes, IMDS and API addresses.
func (l *Lab) buildNetwork() error {
	var err error
	add := func(role string) *netns.NS {
		if err != nil {
			return nil
		}
		var n *netns.NS
		n, err = netns.Add(role)
		if err == nil {
			l.nss = append(l.nss, n)
			l.state.Namespaces[role] = n.Name
			err = l.saveState()
		}
		return n
	}
	l.Inet = add("inet")
	l.Router = add("router")
	for _, s := range l.Sites {
		s.NAT = add("nat-" + s.Name)
		s.Host = add("host-" + s.Name)
	}
	if err != nil {
		return err
	}

	// Router: forwarding on, no reverse-path filter (policy routing by input interface).
	if err := run(l.Router,
		sysctl("net.ipv4.ip_forward=1"),
		sysctl("net.ipv4.conf.all.rp_filter=0"),
		sysctl("net.ipv4.conf.default.rp_filter=0"),
		sysctl("net.ipv4.conf.all.send_redirects=0"),
		sysctl("net.ipv4.conf.default.send_redirects=0"),
		[]string{"ip", "addr", "add", APIAddr + "/32", "dev", "lo"},
	); err != nil {
		return err
	}

	// Internet side.
	if err := netns.Veth(l.Inet, "eth0", l.Router, "igw"); err != nil {
		return err
	}
	if err := run(l.Inet,
		[]string{"ip", "addr", "add", EchoAddr + "/24", "dev", "eth0"},
	); err != nil {
		return err
	}
	if err := run(l.Router,
		[]string{"ip", "addr", "add", IGWAddr + "/24", "dev", "igw"},
		sysctl("net.ipv4.conf.igw.rp_filter=0"),
	); err != nil {
		return err
	}

	for _, s := range l.Sites {
		if err := netns.Veth(s.NAT, "eth0", l.Router, s.pubIf()); err != nil {
			return err
		}
		if err := netns.Veth(s.Host, "eth0", l.Router, s.prvIf()); err != nil {
			return err
		}
		if err := run(l.Router,
			[]string{"ip", "addr", "add", s.RouterPub + prefixLen(s.PublicCIDR), "dev", s.pubIf()},
			[]string{"ip", "addr", "add", s.RouterPrv + prefixLen(s.PrivateCIDR), "dev", s.prvIf()},
			sysctl("net.ipv4.conf."+s.pubIf()+".rp_filter=0"),
			sysctl("net.ipv4.conf."+s.prvIf()+".rp_filter=0"),
			sysctl("net.ipv4.conf."+s.pubIf()+".send_redirects=0"),
			sysctl("net.ipv4.conf."+s.prvIf()+".send_redirects=0"),
		); err != nil {
			return err
		}
		// The NAT: one interface like an ENI, hairpinning, with its own IMDS on lo. Forwarding
		// and masquerade are the agent's job.
		if err := run(s.NAT,
			[]string{"ip", "link", "set", "eth0", "down"},
			[]string{"ip", "link", "set", "eth0", "address", s.MAC},
			[]string{"ip", "link", "set", "eth0", "up"},
			[]string{"ip", "addr", "add", s.NATIP + prefixLen(s.PublicCIDR), "dev", "eth0"},
			[]string{"ip", "route", "add", "default", "via", s.RouterPub},
			[]string{"ip", "addr", "add", IMDSAddr + "/32", "dev", "lo"},
			sysctl("net.ipv4.conf.all.send_redirects=0"),
			sysctl("net.ipv4.conf.eth0.send_redirects=0"),
		); err != nil {
			return err
		}
		if err := run(s.Host,
			[]string{"ip", "addr", "add", s.HostIP + prefixLen(s.PrivateCIDR), "dev", "eth0"},
			[]string{"ip", "route", "add", "default", "via", s.RouterPrv},
		); err != nil {
			return err
		}
	}
	return l.installFaultChain()
}

// faultChain is the lab's own chain in the router's filter table, jumped to first from FORWARD:
// break-egress and partition rules live here and nowhere else.
const faultChain = "HNLAB-FAULTS"

func (l *Lab) installFaultChain() error {
	return run(l.Router,
		[]string{"iptables", "-w", "-N", faultChain},
		[]string{"iptables", "-w", "-I", "FORWARD", "1", "-j", faultChain},
	)
}

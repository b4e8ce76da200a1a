package lab

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/vpcsim"
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

// Site is one NAT instance in its availability zone: the instance (its namespace in the AZ's
// public subnet, its ENI, EIP, IMDS mock and agent) with the AZ it serves (the private subnet,
// its route table and client host), and the IDs the simulator gave them. An AZ's first NAT is
// named after the AZ ("a"); further NATs in the same AZ are "a2", "a3", ... and share the AZ's
// fields (subnets, route table, host) with it. Names are never reused in a lab: a NAT that
// Launch adds gets the AZ's next number, even when it takes the slot (Index, and so the
// addresses) of a terminated one. A Site does not change once the lab has published it.
type Site struct {
	Name        string // the NAT's name: "a", "b", or "a2", "a3" for an AZ's further NATs
	AZ          string // the AZ's short name: "a", "b"
	Index       int    // its slot in the AZ, 1 to MaxNATsPerAZ, which picks its addresses
	Zone        string // "us-east-1a"
	PublicCIDR  string
	PrivateCIDR string
	RouterPub   string // the router's address in the public subnet (NAT's default gateway)
	RouterPrv   string
	NATIP       string
	EIP         string
	HostIP      string // the AZ's private host
	KernelTable int    // the router's kernel table for the AZ's private route table
	MAC         string

	// Set by Up.
	NAT, Host                   *netns.NS // Host is the AZ's private host, shared by its NATs
	VPCID                       string
	PublicSubnet, PrivateSubnet string
	RouteTable                  string // the AZ's private route table
	InstanceID, ENI             string
	AllocationID                string
	LaunchTime                  time.Time
}

// AZs are the lab's availability zones, by short name.
var AZs = []string{"a", "b"}

// MaxNATsPerAZ bounds the NAT instances of one AZ (addresses, interface names).
const MaxNATsPerAZ = 4

// NATCounts resolves NATsPerAZ and NATs into the number of NAT instances of every AZ, or says
// what is wrong with them.
func (o Options) NATCounts() (map[string]int, error) {
	per := o.NATsPerAZ
	if per == 0 {
		per = 1
	}
	if per < 1 || per > MaxNATsPerAZ {
		return nil, fmt.Errorf("NAT instances per AZ: %d, want 1 to %d", per, MaxNATsPerAZ)
	}
	counts := map[string]int{}
	for _, az := range AZs {
		counts[az] = per
	}
	for az, n := range o.NATs {
		if _, ok := counts[az]; !ok {
			return nil, fmt.Errorf("NAT instances: no AZ %q in the lab (have %s)", az, strings.Join(AZs, ", "))
		}
		if n < 1 || n > MaxNATsPerAZ {
			return nil, fmt.Errorf("NAT instances in AZ %s: %d, want 1 to %d", az, n, MaxNATsPerAZ)
		}
		counts[az] = n
	}
	return counts, nil
}

// newSites returns every NAT of the seeded lab, AZ by AZ.
func newSites(counts map[string]int) []*Site {
	var nats []*Site
	for _, az := range AZs {
		for k := 1; k <= counts[az]; k++ {
			nats = append(nats, newSite(az, k, k))
		}
	}
	return nats
}

// newSite returns the addressing of the NAT in slot k (1 to MaxNATsPerAZ) of an AZ, the
// seq-th NAT the AZ has had: its name is the AZ's ("a") for the first, "a<seq>" after.
func newSite(az string, k, seq int) *Site {
	i := slices.Index(AZs, az)
	s := &Site{
		Name:        az,
		AZ:          az,
		Index:       k,
		Zone:        Region + az,
		PublicCIDR:  fmt.Sprintf("198.18.%d.0/24", i),
		PrivateCIDR: fmt.Sprintf("198.18.%d.0/24", 10+i),
		RouterPub:   fmt.Sprintf("198.18.%d.1", i),
		RouterPrv:   fmt.Sprintf("198.18.%d.1", 10+i),
		NATIP:       fmt.Sprintf("198.18.%d.%d", i, 9+k),
		EIP:         fmt.Sprintf("203.0.113.%d", 10*k+i),
		HostIP:      fmt.Sprintf("198.18.%d.2", 10+i),
		KernelTable: 110 + i,
		MAC:         fmt.Sprintf("02:00:c6:12:%02x:%02x", i, 9+k),
	}
	if seq > 1 {
		s.Name = az + strconv.Itoa(seq)
	}
	return s
}

// NATsIn returns the NAT instances of an AZ ("a"), first one first.
func (l *Lab) NATsIn(az string) []*Site {
	var out []*Site
	for _, n := range l.NATs() {
		if n.AZ == az {
			out = append(out, n)
		}
	}
	return out
}

func (s *Site) pubIf() string { return "pub-" + s.Name }

// proxyARP makes the router answer ARP on the NAT's leg for the other legs of its subnet.
func proxyARP(s *Site) [][]string {
	return [][]string{
		sysctl("net.ipv4.conf." + s.pubIf() + ".proxy_arp=1"),
		sysctl("net.ipv4.neigh." + s.pubIf() + ".proxy_delay=0"),
	}
}
func (s *Site) prvIf() string { return "prv-" + s.AZ }

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
		n, err = l.addNS(role)
		return n
	}
	l.Inet = add("inet")
	l.Router = add("router")
	if l.opts.Tailnet {
		l.Admin = add("admin")
	}
	for _, s := range l.NATs() {
		s.NAT = add("nat-" + s.Name)
		if s.Index == 1 {
			s.Host = add("host-" + s.AZ)
		}
	}
	if err != nil {
		return err
	}
	for _, s := range l.NATs() {
		s.Host = l.MustSite(s.AZ).Host
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

	for _, s := range l.NATs() {
		if err := l.buildNAT(s, len(l.NATsIn(s.AZ)) > 1); err != nil {
			return err
		}
	}
	for _, s := range l.Sites() {
		if err := netns.Veth(s.Host, "eth0", l.Router, s.prvIf()); err != nil {
			return err
		}
		if err := run(l.Router,
			[]string{"ip", "addr", "add", s.RouterPrv + prefixLen(s.PrivateCIDR), "dev", s.prvIf()},
			sysctl("net.ipv4.conf."+s.prvIf()+".rp_filter=0"),
			sysctl("net.ipv4.conf."+s.prvIf()+".send_redirects=0"),
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
	if l.Admin != nil {
		if err := l.buildAdmin(); err != nil {
			return err
		}
	}
	return l.installFaultChain()
}

// buildNAT links a NAT namespace to the router with its own leg (one ENI per leg, as the
// simulator's source/dest check model wants). An AZ's first NAT holds the public subnet's
// connected route on its leg; further NATs get a host route on theirs, and the router answers
// ARP between the legs of the subnet (proxy ARP), so the NATs of one AZ reach each other
// through the router, where faults apply. shared says whether the AZ has more than one NAT.
func (l *Lab) buildNAT(s *Site, shared bool) error {
	if err := netns.Veth(s.NAT, "eth0", l.Router, s.pubIf()); err != nil {
		return err
	}
	leg := [][]string{
		{"ip", "addr", "add", s.RouterPub + prefixLen(s.PublicCIDR), "dev", s.pubIf()},
	}
	if s.Index > 1 {
		leg = [][]string{
			{"ip", "addr", "add", s.RouterPub + "/32", "dev", s.pubIf()},
			{"ip", "route", "add", s.NATIP + "/32", "dev", s.pubIf()},
		}
	}
	leg = append(leg,
		sysctl("net.ipv4.conf."+s.pubIf()+".rp_filter=0"),
		sysctl("net.ipv4.conf."+s.pubIf()+".send_redirects=0"),
	)
	if shared {
		leg = append(leg, proxyARP(s)...)
	}
	if err := run(l.Router, leg...); err != nil {
		return err
	}
	// The NAT: one interface like an ENI, hairpinning, with its own IMDS on lo. Forwarding and
	// masquerade are the agent's job.
	return run(s.NAT,
		[]string{"ip", "link", "set", "eth0", "down"},
		[]string{"ip", "link", "set", "eth0", "address", s.MAC},
		[]string{"ip", "link", "set", "eth0", "up"},
		[]string{"ip", "addr", "add", s.NATIP + prefixLen(s.PublicCIDR), "dev", "eth0"},
		[]string{"ip", "route", "add", "default", "via", s.RouterPub},
		[]string{"ip", "addr", "add", IMDSAddr + "/32", "dev", "lo"},
		sysctl("net.ipv4.conf.all.send_redirects=0"),
		sysctl("net.ipv4.conf.eth0.send_redirects=0"),
	)
}

// seedMoreNATs adds the NAT instances beyond each AZ's first to the simulator (the first ones
// are seeded with their AZ): they share their AZ's subnets and route table, launched after
// every first NAT, in order, and each has its own ENI and EIP. It returns their instance IDs.
func (l *Lab) seedMoreNATs(sim *vpcsim.Sim, launch time.Time) ([]string, error) {
	var ids []string
	// The first NATs launched a minute apart up to a minute ago; the others since, 10s apart.
	next := launch.Add(time.Duration(len(l.Sites())) * time.Minute)
	for _, s := range l.NATs() {
		if s.Index == 1 {
			continue
		}
		first := l.MustSite(s.AZ)
		s.VPCID, s.PublicSubnet, s.PrivateSubnet, s.RouteTable = first.VPCID, first.PublicSubnet, first.PrivateSubnet, first.RouteTable
		s.LaunchTime, next = next, next.Add(10*time.Second)
		if err := s.addInstance(sim); err != nil {
			return nil, err
		}
		ids = append(ids, s.InstanceID)
	}
	return ids, nil
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

// addInstance adds the site's NAT instance to the simulator, in the cluster and the lab's Auto
// Scaling group, with its EIP associated.
func (s *Site) addInstance(sim *vpcsim.Sim) error {
	s.InstanceID, s.ENI = sim.AddInstance(vpcsim.InstanceSpec{
		SubnetID:   s.PublicSubnet,
		PrivateIP:  s.NATIP,
		LaunchTime: s.LaunchTime,
		Tags: map[string]string{
			ClusterTag:                  Cluster,
			"Name":                      "headnat-" + s.Name,
			"aws:autoscaling:groupName": ASGName,
		},
	})
	s.AllocationID = sim.AddAddress(s.EIP)
	if _, err := sim.AssociateAddress(s.AllocationID, s.ENI); err != nil {
		return fmt.Errorf("EIP of nat-%s: %w", s.Name, err)
	}
	return nil
}

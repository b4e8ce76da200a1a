package lab

// The lab's tailnet (Options.Tailnet): a real headscale in the internet namespace, a real
// tailscaled on every NAT instance that its agent logs in as a subnet router for the VPC, and
// an admin node outside the VPC that reaches the private hosts' services through whichever NAT
// headscale made the primary router. test/tailnetlab runs the processes.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/policy"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/tailnetlab"
)

// The tailnet's fixed addressing and names.
const (
	HeadscaleAddr = "203.0.113.2" // headscale in inet: HTTP (control and DERP) and STUN
	HeadscalePort = 8080
	AdminAddr     = "198.51.100.2" // the admin node, outside the VPC
	AdminGateway  = "198.51.100.1" // inet's leg to the admin
	AdminNet      = "198.51.100.0/24"
	AdminUser     = "admin" // the admin's headscale user, in the policy's admins group
	AdminHostname = "admin"
	// TailnetAuthKeyParameter is the SSM SecureString holding the reusable tag:nat pre-auth
	// key the agents log in with.
	TailnetAuthKeyParameter = "/headnat/lab/tailnet-auth-key"
	TailnetUDPPort          = 41641 // every tailscaled's WireGuard port
	NATTag                  = "tag:nat"
	// ServicePort is where every private host serves EchoHandler (in every lab, tailnet or not).
	ServicePort = 80
)

// HeadscaleURL is headscale's URL as seen from inet. Nodes log in to http://127.0.0.1:8080,
// a forwarder in their own namespace (tailscale wants a loopback or private control URL).
func HeadscaleURL() string {
	return "http://" + net.JoinHostPort(HeadscaleAddr, strconv.Itoa(HeadscalePort))
}

// ServiceURL is the URL of the service on the AZ's private host, e.g. http://198.18.10.2/.
func (s *Site) ServiceURL() string { return "http://" + s.HostIP + "/" }

// TailnetHostname is the NAT's tailnet hostname as its agent sets it (agent/tailnet.Hostname):
// nat-<zone>-<instance id>.
func (s *Site) TailnetHostname() string {
	return strings.ToLower("nat-" + s.Zone + "-" + s.InstanceID)
}

// nodeLogin is the control URL every node logs in to: its own loopback forwarder.
var nodeLogin = "http://127.0.0.1:" + strconv.Itoa(HeadscalePort)

// tailnet holds the lab's tailnet processes.
type tailnet struct {
	vpc  netip.Prefix
	hs   *tailnetlab.Headscale
	mu   sync.Mutex
	ts   map[string]*tailnetlab.Tailscaled // by NAT name, and AdminHostname
	fwds map[string]*tailnetlab.Forwarder  // by node, as ts
	// killed are the NATs whose instance Kill took down, until Revive.
	killed map[string]bool
	// The admin's `tailscale up` runs while the agents start: adminErr is its result once
	// adminDone is closed.
	adminDone chan struct{}
	adminErr  error
}

// buildAdmin links the admin namespace to inet (inet forwards between it and the internet,
// the router routes the admin's network back via inet) and gives inet headscale's address.
func (l *Lab) buildAdmin() error {
	if err := netns.Veth(l.Admin, "eth0", l.Inet, "admin"); err != nil {
		return err
	}
	return errors.Join(
		run(l.Inet,
			[]string{"ip", "addr", "add", AdminGateway + prefixLen(AdminNet), "dev", "admin"},
			[]string{"ip", "addr", "add", HeadscaleAddr + prefixLen(InetCIDR), "dev", "eth0"},
			sysctl("net.ipv4.ip_forward=1"),
		),
		run(l.Admin,
			[]string{"ip", "addr", "add", AdminAddr + prefixLen(AdminNet), "dev", "eth0"},
			[]string{"ip", "route", "add", "default", "via", AdminGateway},
		),
		run(l.Router, []string{"ip", "route", "add", AdminNet, "via", EchoAddr}),
	)
}

// startServices serves EchoHandler on every private host's ServicePort.
func (l *Lab) startServices() error {
	for _, s := range l.Sites() {
		ln, err := ListenIn(s.Host.Name, net.JoinHostPort(s.HostIP, strconv.Itoa(ServicePort)))
		if err != nil {
			return err
		}
		l.serve(ln, EchoHandler())
	}
	return nil
}

// startTailnet starts headscale with the repository's policy, stores the NATs' pre-auth key in
// the simulator's SSM, starts a forwarder and a tailscaled in every NAT namespace and in the
// admin's, and starts the admin's login (awaited by WaitTailnet).
func (l *Lab) startTailnet(ctx context.Context) error {
	bin := filepath.Dir(l.bin)
	tn := &tailnet{vpc: netip.MustParsePrefix(VPCCIDR), ts: map[string]*tailnetlab.Tailscaled{},
		fwds: map[string]*tailnetlab.Forwarder{}, killed: map[string]bool{}, adminDone: make(chan struct{})}
	l.mu.Lock()
	l.tn = tn
	l.mu.Unlock()
	pol, err := policy.Render(policy.Params{Admins: []string{AdminUser + "@"}, NATTag: NATTag, VPCCIDRs: []netip.Prefix{tn.vpc}})
	if err != nil {
		return err
	}
	tn.hs, err = tailnetlab.StartHeadscale(ctx, tailnetlab.HeadscaleOptions{
		NS: l.Inet, Addr: netip.MustParseAddr(HeadscaleAddr), Port: HeadscalePort, ServerURL: nodeLogin,
		Policy: pol, Bin: bin, Dir: filepath.Join(l.dir, "headscale"),
		BatchChangeDelay: l.opts.HeadscaleBatchChangeDelay, NodeStoreBatchTimeout: l.opts.HeadscaleNodeStoreBatchTimeout,
	})
	if err != nil {
		return err
	}
	l.recordPid("headscale", tn.hs.Pid())
	if _, err := tn.hs.CreateUser(ctx, AdminUser); err != nil {
		return err
	}
	// Long-lived: a lab may stay up for days, and an agent logs in again after a revive that
	// lost tailscaled's state.
	natKey := l.opts.TailnetAuthKey
	if natKey == "" {
		if natKey, err = tn.hs.PreAuthKey(ctx, "", []string{NATTag}, true, 30*24*time.Hour); err != nil {
			return err
		}
	}
	l.Sim.PutParameter(TailnetAuthKeyParameter, natKey, true)
	adminKey, err := tn.hs.PreAuthKey(ctx, AdminUser, nil, false, time.Hour)
	if err != nil {
		return err
	}
	for _, s := range l.NATs() {
		if err := l.startTailscaled(ctx, s.Name); err != nil {
			return err
		}
	}
	if err := l.startTailscaled(ctx, AdminHostname); err != nil {
		return err
	}
	admin := tn.node(AdminHostname)
	go func() {
		defer close(tn.adminDone)
		tn.adminErr = admin.UpWith(ctx, tailnetlab.UpOptions{
			LoginURL: nodeLogin, Key: adminKey, Hostname: AdminHostname, AcceptRoutes: true,
		})
	}()
	return nil
}

// tailnetNS returns the namespace of a tailnet node: a NAT's name or AdminHostname.
func (l *Lab) tailnetNS(node string) (*netns.NS, error) {
	if node == AdminHostname {
		return l.Admin, nil
	}
	s, err := l.Site(node)
	if err != nil {
		return nil, err
	}
	return s.NAT, nil
}

// tailscaledDir is where a node's tailscaled keeps its state and socket.
func (l *Lab) tailscaledDir(node string) string { return filepath.Join(l.dir, "tailscaled-"+node) }

// startTailscaled starts a node's forwarder to headscale (once) and its tailscaled.
func (l *Lab) startTailscaled(ctx context.Context, node string) error {
	ns, err := l.tailnetNS(node)
	if err != nil {
		return err
	}
	return l.startTailscaledIn(ctx, node, ns)
}

// startTailscaledIn is startTailscaled in a given namespace (a NAT being launched).
func (l *Lab) startTailscaledIn(ctx context.Context, node string, ns *netns.NS) error {
	if err := l.startForwarder(node, ns); err != nil {
		return err
	}
	tn := l.tn
	ts, err := tailnetlab.StartTailscaled(ctx, ns, tailnetlab.TailscaledOptions{
		Bin: filepath.Dir(l.bin), Dir: l.tailscaledDir(node), Port: TailnetUDPPort,
	})
	if err != nil {
		return fmt.Errorf("tailscaled %s: %w", node, err)
	}
	tn.mu.Lock()
	tn.ts[node] = ts
	tn.mu.Unlock()
	l.recordPid("tailscaled-"+node, ts.Pid())
	return nil
}

// startForwarder makes headscale reachable at TailnetLoginServer inside ns, once per node.
func (l *Lab) startForwarder(node string, ns *netns.NS) error {
	tn := l.tn
	tn.mu.Lock()
	_, started := tn.fwds[node]
	tn.mu.Unlock()
	if started {
		return nil
	}
	f, err := tailnetlab.ForwardWithLog(ns, HeadscalePort, net.JoinHostPort(HeadscaleAddr, strconv.Itoa(HeadscalePort)),
		filepath.Join(l.dir, "forwarder-"+node+".log"))
	if err != nil {
		return fmt.Errorf("forwarder to headscale in %s: %w", node, err)
	}
	tn.mu.Lock()
	tn.fwds[node] = f
	tn.mu.Unlock()
	l.recordPid("forwarder-"+node, f.Pid())
	return nil
}

// TailnetLoginServer is headscale's URL as the NATs' tailscaled reach it, in their namespaces.
func TailnetLoginServer() string { return nodeLogin }

func (tn *tailnet) node(name string) *tailnetlab.Tailscaled {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.ts[name]
}

// stopTailscaled kills a terminated NAT's tailscaled and forwarder for good.
func (l *Lab) stopTailscaled(node string) {
	if l.tn == nil {
		return
	}
	l.tn.mu.Lock()
	ts, f := l.tn.ts[node], l.tn.fwds[node]
	delete(l.tn.ts, node)
	delete(l.tn.fwds, node)
	delete(l.tn.killed, node)
	l.tn.mu.Unlock()
	if ts != nil {
		ts.Kill()
	}
	if f != nil {
		f.Stop()
	}
}

// killTailscaled marks a killed NAT's tailscaled: it keeps running, cut off with its instance,
// until reviveTailscaled.
func (l *Lab) killTailscaled(node string) {
	if l.tn == nil {
		return
	}
	l.tn.mu.Lock()
	l.tn.killed[node] = true
	l.tn.mu.Unlock()
}

// reviveTailscaled starts a NAT's tailscaled afresh with its state, as the boot of a revived
// instance would, if its instance was killed or tailscaled does not run. A tailscaled that
// kept running through the outage would come back only after its own backoff (up to ~15s).
func (l *Lab) reviveTailscaled(ctx context.Context, node string) error {
	if l.tn == nil {
		return nil
	}
	l.tn.mu.Lock()
	killed := l.tn.killed[node]
	delete(l.tn.killed, node)
	l.tn.mu.Unlock()
	ts := l.tn.node(node)
	switch {
	case ts == nil || ts.Pid() == 0:
		return l.startTailscaled(ctx, node)
	case killed:
		if err := ts.Restart(ctx); err != nil {
			return fmt.Errorf("tailscaled %s: %w", node, err)
		}
		l.recordPid("tailscaled-"+node, ts.Pid())
	}
	return nil
}

// tailnetEnv is the agents' tailnet configuration: log in through the namespace's forwarder
// with the key from SSM, drive the NAT's own tailscaled.
func (l *Lab) tailnetEnv(s *Site) []string {
	if l.tn == nil {
		return nil
	}
	return []string{
		"HEADNAT_TAILNET_LOGIN_SERVER=" + nodeLogin,
		"HEADNAT_TAILNET_AUTH_KEY_SSM_PARAMETER=" + TailnetAuthKeyParameter,
		"HEADNAT_TAILNET_SOCKET=" + filepath.Join(l.tailscaledDir(s.Name), "ts.sock"),
		"HEADNAT_TAILNET_UDP_PORT=" + strconv.Itoa(TailnetUDPPort),
	}
}

// stopTailnet kills the tailnet's processes (tailscaled, forwarders, headscale) at once.
func (l *Lab) stopTailnet() {
	l.mu.Lock()
	tn := l.tn
	l.mu.Unlock()
	if tn == nil {
		return
	}
	tn.mu.Lock()
	stops := []func(){}
	for _, ts := range tn.ts {
		stops = append(stops, ts.Kill)
	}
	for _, f := range tn.fwds {
		stops = append(stops, f.Stop)
	}
	tn.mu.Unlock()
	if tn.hs != nil {
		stops = append(stops, tn.hs.Kill)
	}
	var wg sync.WaitGroup
	for _, stop := range stops {
		wg.Add(1)
		go func() { defer wg.Done(); stop() }()
	}
	wg.Wait()
}

// errNoTailnet is returned by the tailnet methods of a lab built without Options.Tailnet.
var errNoTailnet = errors.New("the lab runs without a tailnet (Options.Tailnet, or headnat-lab without -no-tailnet)")

// Headscale returns the lab's headscale server (nodes, users, keys, policy), nil without a
// tailnet.
func (l *Lab) Headscale() *tailnetlab.Headscale {
	if l.tn == nil {
		return nil
	}
	return l.tn.hs
}

// Tailscaled returns a tailnet node's tailscaled: a NAT's ("a", "b2") or the admin's
// (AdminHostname); nil if there is none.
func (l *Lab) Tailscaled(node string) *tailnetlab.Tailscaled {
	if l.tn == nil {
		return nil
	}
	if node != AdminHostname {
		s, err := l.Site(node)
		if err != nil {
			return nil
		}
		node = s.Name
	}
	return l.tn.node(node)
}

// StopHeadscale kills headscale (SIGKILL), keeping its database: the control plane is gone,
// the nodes keep their last netmap.
func (l *Lab) StopHeadscale() error {
	if l.tn == nil {
		return errNoTailnet
	}
	l.tn.hs.Kill()
	l.log.Info("headscale stopped")
	return nil
}

// StartHeadscale starts a stopped headscale again with the same database and keys; it does
// nothing if headscale runs.
func (l *Lab) StartHeadscale(ctx context.Context) error {
	if l.tn == nil {
		return errNoTailnet
	}
	if l.tn.hs.Pid() != 0 {
		return nil
	}
	if err := l.tn.hs.Restart(ctx); err != nil {
		return err
	}
	l.recordPid("headscale", l.tn.hs.Pid())
	l.log.Info("headscale started")
	return nil
}

// AdminCurl makes one HTTP GET from the admin namespace, as `curl url` there would, on a fresh
// connection bounded by timeout, and returns the body without surrounding space. A private
// host's ServiceURL answers with the address it saw: the VPC address of the NAT that routed
// the request from the tailnet (see SiteByIP).
func (l *Lab) AdminCurl(ctx context.Context, url string, timeout time.Duration) (string, error) {
	if l.Admin == nil {
		return "", errNoTailnet
	}
	return l.get(ctx, l.Admin.Name, url, timeout, 64<<10)
}

// SSH runs the OpenSSH client (`ssh`, Debian's openssh-client) in namespace nsName, as
// `ssh root@addr command` would: no key, no known hosts, BatchMode, bounded by timeout. It
// returns the combined output without surrounding space. Over the tailnet, tailscaled's SSH
// server answers (tailnet.ssh) if headscale's policy lets the caller in.
func (l *Lab) SSH(ctx context.Context, nsName string, addr netip.Addr, command string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", nsName, "ssh", "-F", "/dev/null",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
		"-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@"+addr.String(), command)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + l.dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		err = fmt.Errorf("ssh root@%s in %s: %w", addr, nsName, err)
	}
	return strings.TrimSpace(string(out)), err
}

// TailnetIP returns a NAT's tailnet IPv4 as headscale lists it.
func (l *Lab) TailnetIP(ctx context.Context, nat string) (netip.Addr, error) {
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	for _, n := range nodes {
		if n.Name == nat && n.IP != "" {
			return netip.ParseAddr(n.IP)
		}
	}
	return netip.Addr{}, fmt.Errorf("nat-%s has no tailnet address", nat)
}

// TailnetNode is one node of the lab's tailnet as headscale lists it.
type TailnetNode struct {
	Name     string   `json:"name"`     // the NAT ("a", "b2") or AdminHostname; "" for a stranger
	Hostname string   `json:"hostname"` // as registered
	IP       string   `json:"ip,omitempty"`
	Online   bool     `json:"online"`
	Tags     []string `json:"tags,omitempty"`
	Approved bool     `json:"approved"` // its VPC route is approved
	Primary  bool     `json:"primary"`  // it is the primary router of the VPC route
}

// TailnetView is the tailnet part of Status.
type TailnetView struct {
	Headscale string        `json:"headscale"` // URL, in namespace inet
	Route     string        `json:"route"`     // the VPC CIDR the NATs advertise
	Primary   string        `json:"primary"`   // the NAT that is the primary router, "" if none
	Nodes     []TailnetNode `json:"nodes"`
	Error     string        `json:"error,omitempty"` // headscale did not answer
}

// TailnetNodes lists the tailnet's nodes as headscale has them, NATs first in lab order, then
// the admin, then any other node.
func (l *Lab) TailnetNodes(ctx context.Context) ([]TailnetNode, error) {
	if l.tn == nil {
		return nil, errNoTailnet
	}
	nodes, err := l.tn.hs.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	rank := func(n TailnetNode) int {
		for i, s := range l.NATs() {
			if s.Name == n.Name {
				return i
			}
		}
		if n.Name == AdminHostname {
			return len(l.NATs())
		}
		return len(l.NATs()) + 1
	}
	out := make([]TailnetNode, 0, len(nodes))
	for _, n := range nodes {
		tv := TailnetNode{Hostname: n.Name, Online: n.Online, Tags: n.Tags,
			Approved: slices.Contains(n.Approved, l.tn.vpc), Primary: slices.Contains(n.Primary, l.tn.vpc)}
		if ip := n.IPv4(); ip.IsValid() {
			tv.IP = ip.String()
		}
		if s := l.findSite(func(s *Site) bool { return s.TailnetHostname() == n.Name }); s != nil {
			tv.Name = s.Name
		}
		if n.Name == AdminHostname && len(n.Tags) == 0 {
			tv.Name = AdminHostname
		}
		out = append(out, tv)
	}
	slices.SortStableFunc(out, func(a, b TailnetNode) int { return rank(a) - rank(b) })
	return out, nil
}

// tailnetView gathers Status's tailnet part; nil without a tailnet.
func (l *Lab) tailnetView(ctx context.Context) *TailnetView {
	if l.tn == nil {
		return nil
	}
	tv := &TailnetView{Headscale: HeadscaleURL(), Route: VPCCIDR}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		tv.Error = strings.Join(strings.Fields(err.Error()), " ") // the CLI's errors are indented JSON
		return tv
	}
	tv.Nodes = nodes
	tv.Primary, _ = primaryOf(nodes)
	return tv
}

// primaryOf returns the NAT that is the one primary router among nodes.
func primaryOf(nodes []TailnetNode) (string, error) {
	var primaries []string
	for _, n := range nodes {
		if n.Primary {
			primaries = append(primaries, n.Hostname)
		}
	}
	switch {
	case len(primaries) == 0:
		return "", errors.New("no node is the primary router of " + VPCCIDR)
	case len(primaries) > 1:
		return "", fmt.Errorf("more than one primary router of %s: %s", VPCCIDR, strings.Join(primaries, ", "))
	}
	for _, n := range nodes {
		if n.Primary && n.Name != "" && n.Name != AdminHostname {
			return n.Name, nil
		}
	}
	return "", fmt.Errorf("the primary router of %s is %s, not a NAT of the lab", VPCCIDR, primaries[0])
}

// PrimaryRouter returns the NAT ("a", "b2") headscale has made the primary router of the VPC
// route, that is the NAT the admin's traffic to the VPC goes through now.
func (l *Lab) PrimaryRouter(ctx context.Context) (string, error) {
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		return "", err
	}
	return primaryOf(nodes)
}

// WaitTailnet waits, bounded by timeout, until the tailnet is whole: every NAT registered
// online with tag:nat and its VPC route approved, exactly one of them the primary router, the
// admin logged in, and the admin reaching every private host's service through the tailnet.
func (l *Lab) WaitTailnet(ctx context.Context, timeout time.Duration) error {
	if l.tn == nil {
		return errNoTailnet
	}
	deadline := time.Now().Add(timeout)
	if err := l.waitAdmin(ctx, timeout); err != nil {
		return err
	}
	var why error
	ok, err := Poll(ctx, time.Until(deadline), 250*time.Millisecond, func() bool {
		why = l.tailnetWhole(ctx)
		return why == nil
	})
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("tailnet not ready within %s: %w", timeout, why)
	}
	return nil
}

// waitAdmin waits, bounded by timeout, for the admin's login.
func (l *Lab) waitAdmin(ctx context.Context, timeout time.Duration) error {
	select {
	case <-l.tn.adminDone:
		if l.tn.adminErr != nil {
			return fmt.Errorf("admin login: %w", l.tn.adminErr)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("admin login not done within %s", timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tailnetWhole says what keeps the tailnet from being whole, nil if nothing.
func (l *Lab) tailnetWhole(ctx context.Context) error {
	nodes, err := l.TailnetNodes(ctx)
	if err != nil {
		return err
	}
	byName := map[string]TailnetNode{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	for _, s := range l.NATs() {
		n, ok := byName[s.Name]
		switch {
		case !ok:
			return fmt.Errorf("nat-%s (%s) not registered", s.Name, s.TailnetHostname())
		case !n.Online || !n.Approved || !slices.Contains(n.Tags, NATTag):
			return fmt.Errorf("nat-%s: %+v, want online, %s, route approved", s.Name, n, NATTag)
		}
	}
	if n, ok := byName[AdminHostname]; !ok || !n.Online {
		return errors.New("admin not online")
	}
	// The admin knows a path to every NAT (a DERP home at least): until then its first packets
	// to a NAT's own tailnet address (the agent's port) wait for a handshake retry.
	st, err := l.tn.node(AdminHostname).Status(ctx)
	if err != nil {
		return err
	}
	for _, s := range l.NATs() {
		var peer *tailnetlab.PeerStatus
		for _, p := range st.Peer {
			if p.HostName == s.TailnetHostname() {
				peer = p
			}
		}
		switch {
		case peer == nil:
			return fmt.Errorf("the admin's tailscaled does not list nat-%s", s.Name)
		case !peer.Online || peer.Relay == "" && peer.CurAddr == "":
			return fmt.Errorf("the admin's tailscaled has no path to nat-%s yet (online %v, DERP home %q)", s.Name, peer.Online, peer.Relay)
		}
	}
	if _, err := primaryOf(nodes); err != nil {
		return err
	}
	for _, s := range l.Sites() {
		if _, err := l.AdminCurl(ctx, s.ServiceURL(), time.Second); err != nil {
			return fmt.Errorf("admin cannot reach %s: %w", s.ServiceURL(), err)
		}
	}
	return nil
}

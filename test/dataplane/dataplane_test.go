// End-to-end tests of `headnat dataplane` with real kernel forwarding: the real binary runs
// inside the NAT namespace of the lab built by package topo.
package dataplane_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
)

var headnatBin string

func TestMain(m *testing.M) {
	netns.Sweep()
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // every test skips, saying why
		}
		dir, err := os.MkdirTemp("", "headnat-dataplane-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		headnatBin = filepath.Join(dir, "headnat")
		if out, err := exec.Command("go", "build", "-o", headnatBin, "github.com/headnat/headnat/cmd/headnat").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build headnat: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

const (
	echoPort    = 7007
	inboundPort = 7008
	dialTimeout = 2 * time.Second
)

type run struct {
	code           int
	stdout, stderr string
}

// changes is stdout without the notes.
func (r run) changes() string {
	var keep []string
	for _, l := range strings.SplitAfter(r.stdout, "\n") {
		if !strings.HasPrefix(l, "note: ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

// headnat runs the real binary in ns.
func headnat(t *testing.T, ns *netns.NS, args ...string) run {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Cmd(ctx, headnatBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	r := run{stdout: o.String(), stderr: e.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("run headnat %q: %v", args, err)
	}
	t.Logf("headnat %s: exit %d\nstdout:\n%sstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

func mustHeadnat(t *testing.T, ns *netns.NS, args ...string) run {
	t.Helper()
	r := headnat(t, ns, args...)
	if r.code != 0 {
		t.Fatalf("headnat %q: exit %d: %s", args, r.code, r.stderr)
	}
	return r
}

// lab is one topology with a state path for the NAT's headnat.
type lab struct {
	*topo.Topology
	state string
}

func newLab(t *testing.T, mode topo.Mode) *lab {
	t.Helper()
	netns.RequireRoot(t)
	t.Parallel()
	return &lab{Topology: topo.New(t, mode), state: filepath.Join(t.TempDir(), "run", "dataplane.json")}
}

func (l *lab) args(action string, extra ...string) []string {
	return append([]string{"dataplane", action, "--vpc-cidr", topo.VPCCIDR, "--state-path", l.state}, extra...)
}

// remove is the command line of remove, which takes only the state path.
func (l *lab) remove() []string {
	return []string{"dataplane", "remove", "--state-path", l.state}
}

func (l *lab) apply(t *testing.T, extra ...string) run {
	t.Helper()
	return mustHeadnat(t, l.NAT, l.args("apply", extra...)...)
}

func (l *lab) echo(t *testing.T) {
	t.Helper()
	if err := topo.StartEcho(l.Inet, topo.InetAddr, echoPort); err != nil {
		t.Fatal(err)
	}
}

// out dials the echo server from the private host and returns the address it saw.
func (l *lab) out() (string, error) {
	return topo.Dial(l.Priv, topo.InetAddr, echoPort, dialTimeout)
}

func (l *lab) mustGetOut(t *testing.T) {
	t.Helper()
	got, err := l.out()
	if err != nil {
		t.Fatalf("private -> internet through the NAT: %v", err)
	}
	if got != topo.EIP {
		t.Fatalf("the echo server saw %q, want the NAT's public address %s", got, topo.EIP)
	}
}

func (l *lab) mustNotGetOut(t *testing.T) {
	t.Helper()
	if got, err := l.out(); err == nil {
		t.Fatalf("private -> internet went through (server saw %q), want it refused", got)
	}
}

// rules lists every table's rules as `iptables -t <table> -S` prints them: byte for byte
// stable while nothing changes, and the same whether iptables-nft has created an empty
// table or not.
func rules(t *testing.T, ns *netns.NS) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"filter", "nat", "mangle", "raw"} {
		b.WriteString("*" + table + "\n" + ns.MustRun(t, "iptables", "-t", table, "-S"))
	}
	return b.String()
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// save is iptables-save without its timestamped comments and counters.
func save(t *testing.T, ns *netns.NS) string {
	t.Helper()
	var b strings.Builder
	for _, l := range strings.Split(ns.MustRun(t, "iptables-save"), "\n") {
		if !strings.HasPrefix(l, "#") {
			b.WriteString(counters.ReplaceAllString(l, "") + "\n")
		}
	}
	return b.String()
}

// withoutHeadnat drops every line that names a headnat chain.
func withoutHeadnat(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, "HEADNAT-") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

var watchedSysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv4.ip_local_port_range",
	"net.ipv4.conf.all.send_redirects",
	"net.ipv4.conf.eth0.send_redirects",
	"net.ipv4.conf.all.rp_filter",
	"net.ipv4.conf.eth0.rp_filter",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_udp_timeout",
	"net.netfilter.nf_conntrack_udp_timeout_stream",
}

func sysctls(t *testing.T, ns *netns.NS) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, k := range watchedSysctls {
		m[k] = strings.Join(strings.Fields(ns.MustRun(t, "sysctl", "-n", k)), " ")
	}
	return m
}

func diffMaps(a, b map[string]string) string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	slices.Sort(d)
	return strings.Join(d, "; ")
}

func TestPrivateHostReachesInternetThroughNAT(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	l.echo(t)
	l.mustNotGetOut(t) // forwarding off, no NAT: the test can fail
	l.apply(t)         // egress interface from the default route
	l.mustGetOut(t)
	if r := mustHeadnat(t, l.NAT, l.args("verify")...); !strings.HasPrefix(r.stdout, "ok") {
		t.Fatalf("verify: %q", r.stdout)
	}
}

func TestInternetCannotOpenConnectionsIntoVPC(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	l.echo(t)
	if err := topo.StartEcho(l.Priv, topo.PrivAddr, inboundPort); err != nil {
		t.Fatal(err)
	}
	in := func() (string, error) { return topo.Dial(l.Inet, topo.PrivAddr, inboundPort, dialTimeout) }

	// With forwarding on and no headnat rules the NAT relays the connection inwards...
	l.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	got, err := in()
	if err != nil {
		t.Fatalf("baseline: internet -> private with plain forwarding failed, so this test could not fail: %v", err)
	}
	if got != topo.InetAddr {
		t.Fatalf("baseline: private host saw %q", got)
	}
	// ...and headnat's rules stop it, while private -> internet works.
	l.apply(t)
	if got, err := in(); err == nil {
		t.Fatalf("internet -> private went through the NAT (server saw %q)", got)
	}
	l.mustGetOut(t)
}

// desiredByChain parses the chains from the dry-run listing: "-A <chain> ..." lines.
func desiredByChain(dry string) map[string][]string {
	m := map[string][]string{}
	for _, l := range strings.Split(dry, "\n") {
		l = strings.TrimSpace(l)
		if f := strings.Fields(l); len(f) > 2 && f[0] == "-A" && strings.HasPrefix(f[1], "HEADNAT-") {
			m[f[1]] = append(m[f[1]], l)
		}
	}
	return m
}

func TestApplyTenTimesWritesEachRuleOnce(t *testing.T) {
	where := map[string][2]string{ // chain -> table, parent
		"HEADNAT-FORWARD":     {"filter", "FORWARD"},
		"HEADNAT-INPUT":       {"filter", "INPUT"},
		"HEADNAT-POSTROUTING": {"nat", "POSTROUTING"},
		"HEADNAT-MANGLE-FWD":  {"mangle", "FORWARD"},
		"HEADNAT-PATH-IN":     {"mangle", "INPUT"},
		"HEADNAT-PATH-OUT":    {"mangle", "OUTPUT"},
	}
	for _, tc := range []struct {
		name   string
		extra  []string
		chains int
	}{
		{"NAT", []string{"--vpc-cidr", "198.19.0.0/24,198.19.8.0/21", "--extra-source-cidr", "100.64.0.0/10"}, 4},
		{"NAT and tailnet", []string{"--vpc-cidr", "198.19.0.0/24,198.19.8.0/21", "--extra-source-cidr", "198.51.100.0/24",
			"--tailnet-interface", "tailscale0", "--tailnet-route", "203.0.113.0/25"}, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLab(t, topo.ModeNAT)
			extra := tc.extra
			dry := mustHeadnat(t, l.NAT, l.args("apply", append(extra, "--dry-run")...)...)
			want := desiredByChain(dry.stdout)
			if len(want) != tc.chains {
				t.Fatalf("dry run lists chains %v", want)
			}
			first := l.apply(t, extra...)
			if strings.Contains(first.stdout, "no changes") {
				t.Fatal("first apply reported no changes")
			}
			var after2 string
			for i := 2; i <= 10; i++ {
				r := l.apply(t, extra...)
				if r.changes() != "no changes\n" {
					t.Fatalf("apply #%d changed something:\n%s", i, r.stdout)
				}
				if i == 2 {
					after2 = rules(t, l.NAT)
				}
			}
			if got := rules(t, l.NAT); got != after2 {
				t.Fatalf("rules changed between apply #2 and #10:\n%s\nvs\n%s", after2, got)
			}
			// The kernel lists back exactly the canonical rules the dry run printed, in order,
			// and each built-in chain jumps once.
			for chain := range want {
				table, parentChain := where[chain][0], where[chain][1]
				if table == "" {
					t.Fatalf("unknown chain %s", chain)
				}
				out := l.NAT.MustRun(t, "iptables", "-t", table, "-S", chain)
				var got []string
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					if strings.HasPrefix(line, "-A ") {
						got = append(got, line)
					}
				}
				if !slices.Equal(got, want[chain]) {
					t.Errorf("iptables -t %s -S %s:\n%s\nwant:\n%s", table, chain, strings.Join(got, "\n"), strings.Join(want[chain], "\n"))
				}
				parent := l.NAT.MustRun(t, "iptables", "-t", table, "-S", parentChain)
				if n := strings.Count(parent, "-j "+chain+"\n"); n != 1 {
					t.Errorf("%s %s jumps to %s %d times:\n%s", table, parentChain, chain, n, parent)
				}
			}
		})
	}
}

// foreign installs rules of other owners: the operator's, a tailscaled-like ts-forward
// chain, a Docker-like chain.
func foreign(t *testing.T, ns *netns.NS) {
	t.Helper()
	for _, a := range []string{
		"iptables -A FORWARD -s 198.18.99.0/24 -m comment --comment operator -j ACCEPT",
		"iptables -t nat -A POSTROUTING -s 198.18.98.0/24 -o eth0 -m comment --comment operator -j SNAT --to-source " + topo.NATAddr,
		"iptables -N ts-forward",
		"iptables -A ts-forward -i tailscale0 -j MARK --set-xmark 0x40000/0xff0000",
		"iptables -A ts-forward -o tailscale0 -j ACCEPT",
		"iptables -I FORWARD 1 -j ts-forward",
		"iptables -t nat -N ts-postrouting",
		"iptables -t nat -A ts-postrouting -m mark --mark 0x40000/0xff0000 -j MASQUERADE",
		"iptables -t nat -A POSTROUTING -j ts-postrouting",
		"iptables -N DOCKER",
		"iptables -A DOCKER -d 198.18.97.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT",
		"iptables -A FORWARD -o docker0 -j DOCKER",
		"iptables -t mangle -A FORWARD -o eth0 -m comment --comment operator -j MARK --set-xmark 0x1/0x1",
	} {
		ns.MustRun(t, strings.Fields(strings.ReplaceAll(a, "-m comment --comment operator", "-m comment --comment operator"))...)
	}
}

func TestForeignRulesSurviveApplyAndRemove(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	l.echo(t)
	foreign(t, l.NAT)
	before := rules(t, l.NAT)
	l.apply(t)
	l.mustGetOut(t)
	if got := withoutHeadnat(rules(t, l.NAT)); got != withoutHeadnat(before) {
		t.Fatalf("foreign rules changed by apply:\n%s\nwant:\n%s", got, before)
	}
	mustHeadnat(t, l.NAT, l.remove()...)
	if got := rules(t, l.NAT); got != before {
		t.Fatalf("rules after remove:\n%s\nwant:\n%s", got, before)
	}
}

func TestRemoveStopsForwardingAndRestoresSysctls(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	l.echo(t)
	l.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1") // strict: apply relaxes eth0
	sysBefore := sysctls(t, l.NAT)
	rulesBefore := rules(t, l.NAT)
	l.apply(t)
	applied := sysctls(t, l.NAT)
	for k, v := range map[string]string{
		"net.ipv4.ip_forward":                                "1",
		"net.ipv4.ip_local_port_range":                       "1024 65535",
		"net.ipv4.conf.all.send_redirects":                   "0",
		"net.ipv4.conf.eth0.rp_filter":                       "2",
		"net.ipv4.conf.all.rp_filter":                        "1",
		"net.netfilter.nf_conntrack_tcp_timeout_established": "7440",
		"net.netfilter.nf_conntrack_udp_timeout":             "30",
		"net.netfilter.nf_conntrack_udp_timeout_stream":      "120",
		// read-only in a network namespace: left as it is
		"net.netfilter.nf_conntrack_max": sysBefore["net.netfilter.nf_conntrack_max"],
	} {
		if applied[k] != v {
			t.Errorf("after apply %s = %q, want %q", k, applied[k], v)
		}
	}
	l.mustGetOut(t)
	if _, err := os.Stat(l.state); err != nil {
		t.Fatalf("state file: %v", err)
	}

	if r := mustHeadnat(t, l.NAT, l.remove()...); !strings.Contains(r.stdout, "chain-delete") {
		t.Fatalf("remove did not report deleting its chains: %q", r.stdout)
	}
	if got := sysctls(t, l.NAT); diffMaps(sysBefore, got) != "" {
		t.Fatalf("sysctls not restored: %s", diffMaps(sysBefore, got))
	}
	if got := rules(t, l.NAT); got != rulesBefore {
		t.Fatalf("rules after remove:\n%s\nwant:\n%s", got, rulesBefore)
	}
	if _, err := os.Stat(l.state); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file left behind: %v", err)
	}
	l.mustNotGetOut(t)
	if r := mustHeadnat(t, l.NAT, l.remove()...); r.changes() != "no changes\n" {
		t.Fatalf("second remove: %q", r.stdout)
	}
}

func TestVerifyReportsDriftAndApplyRepairs(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	l.echo(t)
	l.apply(t)
	mustHeadnat(t, l.NAT, l.args("verify")...)

	l.NAT.MustRun(t, "iptables", "-t", "nat", "-D", "HEADNAT-POSTROUTING", "-s", topo.VPCCIDR, "-o", "eth0",
		"-m", "comment", "--comment", "headnat: masquerade", "-j", "MASQUERADE")
	l.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	l.mustNotGetOut(t)

	r := headnat(t, l.NAT, l.args("verify")...)
	if r.code != 1 {
		t.Fatalf("verify exit %d, want 1", r.code)
	}
	for _, w := range []string{
		`rule-missing in nat HEADNAT-POSTROUTING: -A HEADNAT-POSTROUTING -s 198.18.0.0/16 -o eth0 -m comment --comment "headnat: masquerade" -j MASQUERADE`,
		`sysctl net.ipv4.ip_forward is "0", want "1"`,
	} {
		if !strings.Contains(r.stdout, w+"\n") {
			t.Errorf("verify output lacks %q:\n%s", w, r.stdout)
		}
	}
	if n := strings.Count(r.stdout, "\n"); n != 2 {
		t.Errorf("verify reported %d findings, want 2:\n%s", n, r.stdout)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "2 deviations") {
		t.Errorf("verify stderr: %q", r.stderr)
	}

	if a := l.apply(t); !strings.Contains(a.stdout, "rule-insert nat HEADNAT-POSTROUTING") || !strings.Contains(a.stdout, "net.ipv4.ip_forward") {
		t.Fatalf("apply did not repair:\n%s", a.stdout)
	}
	mustHeadnat(t, l.NAT, l.args("verify")...)
	l.mustGetOut(t)
}

func TestBadInputChangesNothing(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	foreign(t, l.NAT)
	bad := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"invalid CIDR", []string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/33", "--state-path", l.state}, 2, "not a CIDR"},
		{"not a CIDR", []string{"dataplane", "apply", "--vpc-cidr", "eth0", "--state-path", l.state}, 2, "not a CIDR"},
		{"empty CIDR list", []string{"dataplane", "apply", "--state-path", l.state}, 2, "no VPC CIDR given"},
		{"host bits", []string{"dataplane", "apply", "--vpc-cidr", "198.18.0.1/16", "--state-path", l.state}, 2, "host bits"},
		{"unknown interface", l.args("apply", "--egress-interface", "nope0"), 1, `egress interface "nope0" does not exist`},
		{"wildcard interface", l.args("apply", "--egress-interface", "eth+"), 2, "not a valid interface name"},
		{"agent port out of range", l.args("apply", "--agent-port", "65536"), 2, "agent port 65536 out of range"},
		{"agent source not a CIDR", l.args("apply", "--agent-source-cidr", "100.64.0.0"), 2, "not a CIDR"},
		{"empty tailnet interface", l.args("apply", "--tailnet-interface", ""), 2, "tailnet interface not given"},
		{"tailnet interface is the egress", l.args("apply", "--tailnet-interface", "eth0"), 1, "egress interface eth0 is the tailnet interface"},
		{"tailnet CIDR IPv6", l.args("apply", "--tailnet-interface", "tailscale0", "--tailnet-cidr", "fd7a:115c:a1e0::/48"), 2, "tailnet CIDR fd7a:115c:a1e0::/48 is not IPv4"},
		{"tailnet CIDR host bits", l.args("apply", "--tailnet-interface", "tailscale0", "--tailnet-cidr", "100.64.0.1/10"), 2, "has host bits set"},
		{"tailnet UDP port 0", l.args("apply", "--tailnet-interface", "tailscale0", "--tailnet-udp-port", "0"), 2, "tailnet UDP port 0 out of range"},
	}
	check := func(t *testing.T, stateWant bool) {
		for _, b := range bad {
			rulesBefore, sysBefore := save(t, l.NAT), sysctls(t, l.NAT)
			stateBefore, _ := os.ReadFile(l.state)
			r := headnat(t, l.NAT, b.args...)
			if r.code != b.code || !strings.Contains(r.stderr, b.msg) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s: exit %d stderr %q; want exit %d and one line with %q", b.name, r.code, r.stderr, b.code, b.msg)
			}
			if got := save(t, l.NAT); got != rulesBefore {
				t.Errorf("%s: iptables-save changed:\n%s\nwant:\n%s", b.name, got, rulesBefore)
			}
			if d := diffMaps(sysBefore, sysctls(t, l.NAT)); d != "" {
				t.Errorf("%s: sysctls changed: %s", b.name, d)
			}
			stateAfter, err := os.ReadFile(l.state)
			if !bytes.Equal(stateAfter, stateBefore) || (err == nil) != stateWant {
				t.Errorf("%s: state file changed or appeared: %v", b.name, err)
			}
		}
	}
	check(t, false)

	// --dry-run prints the plan and writes nothing.
	rulesBefore, sysBefore := save(t, l.NAT), sysctls(t, l.NAT)
	r := mustHeadnat(t, l.NAT, l.args("apply", "--dry-run")...)
	if !strings.Contains(r.stdout, "-A HEADNAT-POSTROUTING -s 198.18.0.0/16 -o eth0") || !strings.Contains(r.stdout, "net.ipv4.ip_forward = 1 (now 0)") {
		t.Errorf("dry run output:\n%s", r.stdout)
	}
	if save(t, l.NAT) != rulesBefore || diffMaps(sysBefore, sysctls(t, l.NAT)) != "" {
		t.Error("dry run changed the host")
	}
	if _, err := os.Stat(filepath.Dir(l.state)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dry run created the state directory: %v", err)
	}

	// The same bad input on a host already applied leaves its rules alone.
	l.apply(t)
	check(t, true)

	// A down interface, or no default route to find it by, is refused too.
	l.NAT.MustRun(t, "ip", "link", "set", "eth0", "down")
	bad = []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"interface down", l.args("apply", "--egress-interface", "eth0"), 1, "egress interface eth0 is down"},
		{"no default route", l.args("apply"), 1, "no IPv4 default route"},
	}
	check(t, true)
}

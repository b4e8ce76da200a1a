package dataplane_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/dataplane/topo"
	"github.com/headnat/headnat/test/netns"
)

const udpPort = 7009

// udpCounter counts, in ns's INPUT chain, UDP datagrams to udpPort from src.
func udpCounter(t *testing.T, ns *netns.NS, src string) func() int {
	t.Helper()
	tag := "from-" + src
	ns.MustRun(t, "iptables", "-A", "INPUT", "-s", src, "-p", "udp", "--dport", strconv.Itoa(udpPort), "-m", "comment", "--comment", tag, "-j", "ACCEPT")
	return func() int {
		for _, line := range strings.Split(ns.MustRun(t, "iptables", "-L", "INPUT", "-n", "-v", "-x"), "\n") {
			if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, "/* "+tag+" */") {
				n, err := strconv.Atoi(f[0])
				if err != nil {
					t.Fatalf("counter of %s: %q", tag, line)
				}
				return n
			}
		}
		t.Fatalf("no counter %s", tag)
		return 0
	}
}

// sendUDP sends n datagrams from src in ns to dst:udpPort.
func sendUDP(t *testing.T, ns *netns.NS, src, dst string, n int) {
	t.Helper()
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cmd := ns.Cmd(ctx, "socat", "-u", "-", fmt.Sprintf("UDP4-SENDTO:%s:%d,bind=%s", dst, udpPort, src))
		cmd.Stdin = strings.NewReader("headnat test\n")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("[%s] send UDP %s -> %s: %v: %s", ns.Name, src, dst, err, out)
		}
	}
}

// waitCount polls count until it reaches want or within passes, and returns the last value.
func waitCount(count func() int, want int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		n := count()
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSpoofedVPCSourceFromTheEgressSideIsNotForwarded(t *testing.T) {
	netns.RequireRoot(t)
	t.Parallel()
	// Strict rp_filter (as on some images) and none: with none, only headnat's rule stands.
	for _, rp := range []string{"1", "0"} {
		t.Run("rp_filter="+rp, func(t *testing.T) {
			tp := topo.NewTwoInterface(t)
			state := filepath.Join(t.TempDir(), "dataplane.json")
			args := func(action string) []string {
				return []string{"dataplane", action, "--vpc-cidr", topo.TwoVPCCIDR, "--state-path", state}
			}
			masqueraded := udpCounter(t, tp.Inet, topo.TwoNATAddr)
			plain := udpCounter(t, tp.Inet, topo.TwoPrivAddr)
			tp.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter="+rp)

			// What headnat used to do: forward with eth0 loose. The forged packet then crosses
			// the NAT, so the counters see it and the test can fail.
			tp.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.eth0.rp_filter=2")
			sendUDP(t, tp.Atk, topo.TwoPrivAddr, topo.TwoInetAddr, 1)
			if n := waitCount(plain, 1, 3*time.Second); n != 1 {
				t.Fatalf("baseline: %d forged datagrams crossed a plain forwarding NAT, want 1", n)
			}
			tp.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.conf.eth0.rp_filter=0")

			mustHeadnat(t, tp.NAT, args("apply")...)
			if got := strings.TrimSpace(tp.NAT.MustRun(t, "sysctl", "-n", "net.ipv4.conf.eth0.rp_filter")); got != "0" {
				t.Errorf("eth0 rp_filter = %s on a two-interface NAT, want it left alone", got)
			}
			// The private host gets out, masqueraded: the path and the counters work.
			sendUDP(t, tp.Priv, topo.TwoPrivAddr, topo.TwoInetAddr, 1)
			if n := waitCount(masqueraded, 1, 3*time.Second); n != 1 {
				t.Fatalf("private host -> internet: %d datagrams arrived masqueraded, want 1", n)
			}
			sendUDP(t, tp.Atk, topo.TwoPrivAddr, topo.TwoInetAddr, 3)
			if n, m := waitCount(plain, 2, 2*time.Second), masqueraded(); n != 1 || m != 1 {
				t.Fatalf("forged VPC source from the egress side crossed the NAT: %d plain, %d masqueraded (want 1 and 1 from before)", n, m)
			}
			mustHeadnat(t, tp.NAT, args("verify")...)
			mustHeadnat(t, tp.NAT, "dataplane", "remove", "--state-path", state)
		})
	}
}

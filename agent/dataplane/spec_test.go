package dataplane

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func TestValidate(t *testing.T) {
	ok := Spec{VPCCIDRs: pfx("198.18.0.0/16")}
	tests := []struct {
		name string
		mod  func(*Spec)
		want string // substring of the error, "" for valid
	}{
		{"minimal", func(s *Spec) {}, ""},
		{"full", func(s *Spec) {
			s.EgressInterface = "eth0.100"
			s.VPCCIDRs = pfx("198.18.0.0/16", "198.19.0.0/24")
			s.ExtraSourceCIDRs = pfx("100.64.0.0/10")
			s.ConntrackMax = 100000
			s.TCPEstablishedTimeout = 2 * time.Hour
			s.UDPTimeout = 20 * time.Second
			s.UDPStreamTimeout = 3 * time.Minute
			s.StatePath = "/tmp/x.json"
		}, ""},
		{"no VPC CIDR", func(s *Spec) { s.VPCCIDRs = nil }, "no VPC CIDR"},
		{"zero prefix", func(s *Spec) { s.VPCCIDRs = []netip.Prefix{{}} }, "not a valid CIDR"},
		{"IPv6", func(s *Spec) { s.VPCCIDRs = pfx("2001:db8::/32") }, "not IPv4"},
		{"IPv4-mapped", func(s *Spec) { s.VPCCIDRs = pfx("::ffff:198.18.0.0/112") }, "not IPv4"},
		{"host bits", func(s *Spec) { s.VPCCIDRs = pfx("198.18.0.1/16") }, "host bits set (the network is 198.18.0.0/16)"},
		{"everything", func(s *Spec) { s.VPCCIDRs = pfx("0.0.0.0/0") }, "covers every address"},
		{"extra everything", func(s *Spec) { s.ExtraSourceCIDRs = pfx("0.0.0.0/0") }, "covers every address"},
		{"duplicate", func(s *Spec) { s.VPCCIDRs = pfx("198.18.0.0/16", "198.18.0.0/16") }, "listed twice"},
		{"overlap", func(s *Spec) { s.VPCCIDRs = pfx("198.18.0.0/16", "198.18.10.0/24") }, "overlaps"},
		{"extra overlaps VPC", func(s *Spec) { s.ExtraSourceCIDRs = pfx("198.18.0.0/15") }, "extra source CIDR 198.18.0.0/15 overlaps VPC CIDR"},
		{"extra host bits", func(s *Spec) { s.ExtraSourceCIDRs = pfx("100.64.0.1/10") }, "host bits"},
		{"interface wildcard", func(s *Spec) { s.EgressInterface = "eth+" }, "not a valid interface name"},
		{"interface negation", func(s *Spec) { s.EgressInterface = "!eth0" }, "not a valid interface name"},
		{"interface space", func(s *Spec) { s.EgressInterface = "eth 0" }, "not a valid interface name"},
		{"interface long", func(s *Spec) { s.EgressInterface = "abcdefghijklmnop" }, "longer than 15"},
		{"conntrack negative", func(s *Spec) { s.ConntrackMax = -1 }, "conntrack max"},
		{"conntrack tiny", func(s *Spec) { s.ConntrackMax = 10 }, "conntrack max"},
		{"tcp timeout negative", func(s *Spec) { s.TCPEstablishedTimeout = -time.Second }, "TCP established timeout"},
		{"tcp timeout short", func(s *Spec) { s.TCPEstablishedTimeout = 30 * time.Second }, "TCP established timeout"},
		{"udp timeout fraction", func(s *Spec) { s.UDPTimeout = 1500 * time.Millisecond }, "whole number of seconds"},
		{"udp stream long", func(s *Spec) { s.UDPStreamTimeout = 48 * time.Hour }, "UDP stream timeout"},
		{"relative state", func(s *Spec) { s.StatePath = "state.json" }, "not absolute"},
		{"agent port", func(s *Spec) { s.AgentPort = 7070; s.AgentSourceCIDRs = pfx("100.64.0.0/10", "198.18.0.0/16") }, ""},
		{"agent port negative", func(s *Spec) { s.AgentPort = -1 }, "agent port -1 out of range"},
		{"agent port too big", func(s *Spec) { s.AgentPort = 65536 }, "agent port 65536 out of range"},
		{"agent source host bits", func(s *Spec) { s.AgentPort = 7070; s.AgentSourceCIDRs = pfx("100.64.0.1/10") }, "agent source CIDR 100.64.0.1/10 has host bits"},
		{"agent source everything", func(s *Spec) { s.AgentPort = 7070; s.AgentSourceCIDRs = pfx("0.0.0.0/0") }, "covers every address"},
		{"agent source twice", func(s *Spec) { s.AgentPort = 7070; s.AgentSourceCIDRs = pfx("100.64.0.0/10", "100.64.0.0/10") }, "listed twice"},
		{"agent source without port", func(s *Spec) { s.AgentSourceCIDRs = pfx("100.64.0.0/10") }, "without an agent port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.mod(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}

func TestConntrackMaxFor(t *testing.T) {
	for _, tt := range []struct {
		mem  uint64
		want int
	}{
		{0, MinAutoConntrackMax},
		{128 << 20, MinAutoConntrackMax},
		{512 << 20, 131072},
		{1 << 30, 262144},
		{64 << 30, MaxAutoConntrackMax},
	} {
		if got := conntrackMaxFor(tt.mem); got != tt.want {
			t.Errorf("conntrackMaxFor(%d) = %d, want %d", tt.mem, got, tt.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	s := Spec{}.WithDefaults()
	if s.TCPEstablishedTimeout != 7440*time.Second || s.UDPTimeout != 30*time.Second ||
		s.UDPStreamTimeout != 120*time.Second || s.StatePath != DefaultStatePath || s.ConntrackMax != 0 {
		t.Fatalf("WithDefaults() = %+v", s)
	}
}

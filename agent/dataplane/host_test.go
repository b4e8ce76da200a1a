package dataplane

import (
	"net/netip"
	"slices"
	"testing"
)

func TestTwoInterfaceNATKeepsStrictRPFilterAndDropsSpoofedSources(t *testing.T) {
	f := newFixture(t)
	f.sys.Values[KeyAllRPFilter] = "1"
	f.links.RouteList = []Route{{Dst: netip.MustParsePrefix("198.18.20.0/24"), Interface: "eth1"}}
	f.apply(t)
	if got := f.sys.Values["net.ipv4.conf.eth0.rp_filter"]; got != "0" {
		t.Fatalf("eth0 rp_filter = %s, want it left alone", got)
	}
	spoof := []string{"-s", "198.18.20.0/24", "-i", "eth0", "-m", "comment", "--comment", "headnat: VPC source on the egress side (spoofed)", "-j", "DROP"}
	if got := f.ipt.Rules("filter", ChainForward); len(got) == 0 || !slices.Equal(got[0], spoof) {
		t.Fatalf("first rule of HEADNAT-FORWARD: %q", got)
	}
	// The second interface going away makes it a single-interface NAT again.
	f.links.RouteList = nil
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"rule-unexpected HEADNAT-FORWARD", "sysctl net.ipv4.conf.eth0.rp_filter"}) {
		t.Fatalf("findings %q", got)
	}
	f.apply(t)
	if got := f.sys.Values["net.ipv4.conf.eth0.rp_filter"]; got != "2" {
		t.Fatalf("eth0 rp_filter = %s on a single-interface NAT", got)
	}
}

func TestInsidePrefixes(t *testing.T) {
	rt := func(dst, iface string) Route { return Route{Dst: netip.MustParsePrefix(dst), Interface: iface} }
	vpc := pfx("198.18.0.0/16")
	for _, tt := range []struct {
		name   string
		routes []Route
		want   []netip.Prefix
	}{
		{"single interface", []Route{rt("0.0.0.0/0", "eth0"), rt("198.18.0.0/24", "eth0")}, nil},
		{"second ENI subnet", []Route{rt("0.0.0.0/0", "eth0"), rt("198.18.0.0/24", "eth0"), rt("198.18.20.0/24", "eth1")}, pfx("198.18.20.0/24")},
		{"default elsewhere never counts", []Route{rt("0.0.0.0/0", "eth1"), rt("198.18.0.0/24", "eth0")}, nil},
		{"a wider route elsewhere is clipped to the VPC", []Route{rt("198.16.0.0/12", "eth1")}, pfx("198.18.0.0/16")},
		{"the egress subnet inside it is cut out", []Route{rt("198.18.0.0/16", "eth1"), rt("198.18.0.0/24", "eth0")},
			pfx("198.18.1.0/24", "198.18.2.0/23", "198.18.4.0/22", "198.18.8.0/21", "198.18.16.0/20", "198.18.32.0/19", "198.18.64.0/18", "198.18.128.0/17")},
		{"lowest metric wins", []Route{{Dst: netip.MustParsePrefix("198.18.20.0/24"), Interface: "eth0", Priority: 10}, {Dst: netip.MustParsePrefix("198.18.20.0/24"), Interface: "eth1", Priority: 100}}, nil},
		{"blackhole or multipath is not another interface", []Route{rt("198.18.30.0/24", "")}, nil},
		{"outside the VPC", []Route{rt("203.0.113.0/24", "eth1")}, nil},
	} {
		if got := insidePrefixes(vpc, tt.routes, "eth0"); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

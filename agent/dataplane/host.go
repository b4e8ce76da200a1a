package dataplane

import (
	"net/netip"
	"slices"
)

// insidePrefixes returns the parts of the VPC CIDRs whose longest-prefix match in routes
// goes out of an interface other than iface: on a two-interface NAT, the VPC addresses that
// live behind the other interface. A packet with such a source arriving on iface is
// spoofed (it is what strict rp_filter would drop). A default route never counts: it says
// nothing about where the VPC is. Empty on a single-interface NAT.
func insidePrefixes(vpc []netip.Prefix, routes []Route, iface string) []netip.Prefix {
	var rs []Route
	for _, r := range routes {
		if r.Dst.IsValid() && r.Dst.Addr().Is4() {
			r.Dst = r.Dst.Masked()
			rs = append(rs, r)
		}
	}
	var out []netip.Prefix
	for _, p := range vpc {
		out = append(out, classify(p.Masked(), rs, iface)...)
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

// classify returns p, or the parts of p, whose route goes out of another interface than
// iface. It splits p in halves while a route more specific than p starts inside it, and
// merges halves that both qualify back into p.
func classify(p netip.Prefix, routes []Route, iface string) []netip.Prefix {
	var best *Route
	split := false
	for i, r := range routes {
		switch {
		case r.Dst.Bits() > p.Bits() && p.Contains(r.Dst.Addr()):
			split = true
		case r.Dst.Bits() <= p.Bits() && r.Dst.Contains(p.Addr()):
			if best == nil || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Priority < best.Priority) {
				best = &routes[i]
			}
		}
	}
	if split {
		bits := p.Bits() + 1
		lo := netip.PrefixFrom(p.Addr(), bits)
		a := p.Addr().As4()
		a[(bits-1)/8] |= 0x80 >> ((bits - 1) % 8)
		hi := netip.PrefixFrom(netip.AddrFrom4(a), bits)
		l, h := classify(lo, routes, iface), classify(hi, routes, iface)
		if len(l) == 1 && l[0] == lo && len(h) == 1 && h[0] == hi {
			return []netip.Prefix{p}
		}
		return append(l, h...)
	}
	if best != nil && best.Dst.Bits() > 0 && best.Interface != "" && best.Interface != iface {
		return []netip.Prefix{p}
	}
	return nil
}

package tailnetlab

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/headnat/headnat/test/netns"
)

// LAN is a switch: a hub namespace with a bridge, and one veth per member namespace. Members
// get consecutive addresses of Prefix from .2 on.
type LAN struct {
	Hub    *netns.NS
	Prefix netip.Prefix

	mu   sync.Mutex
	next netip.Addr
	n    int
}

// NewLAN makes the hub namespace and its bridge. prefix must be an IPv4 prefix of the test
// ranges, e.g. 198.18.77.0/24.
func NewLAN(prefix netip.Prefix) (*LAN, error) {
	if !prefix.Addr().Is4() || prefix.Bits() > 28 {
		return nil, errors.New("lan: need an IPv4 prefix of /28 or larger")
	}
	hub, err := netns.Add("tnhub")
	if err != nil {
		return nil, err
	}
	if _, err := hub.Run("ip", "link", "add", "br0", "type", "bridge"); err != nil {
		_ = hub.Delete()
		return nil, err
	}
	if _, err := hub.Run("ip", "link", "set", "br0", "up"); err != nil {
		_ = hub.Delete()
		return nil, err
	}
	p := prefix.Masked()
	return &LAN{Hub: hub, Prefix: p, next: p.Addr().Next().Next()}, nil
}

// Join links ns to the switch through a veth named ifname in ns, gives it the next address
// and returns that address.
func (l *LAN) Join(ns *netns.NS, ifname string) (netip.Addr, error) {
	l.mu.Lock()
	addr := l.next
	l.next = addr.Next()
	l.n++
	port := fmt.Sprintf("p%d", l.n)
	l.mu.Unlock()
	if !l.Prefix.Contains(addr) {
		return netip.Addr{}, fmt.Errorf("lan %s is full", l.Prefix)
	}
	if err := netns.Veth(ns, ifname, l.Hub, port); err != nil {
		return netip.Addr{}, err
	}
	if _, err := l.Hub.Run("ip", "link", "set", port, "master", "br0"); err != nil {
		return netip.Addr{}, err
	}
	if _, err := ns.Run("ip", "addr", "add", netip.PrefixFrom(addr, l.Prefix.Bits()).String(), "dev", ifname); err != nil {
		return netip.Addr{}, err
	}
	return addr, nil
}

// Close removes the hub namespace (and so every member's link to it).
func (l *LAN) Close() error { return l.Hub.Delete() }

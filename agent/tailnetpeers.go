package agent

import (
	"net/netip"

	"github.com/headnat/headnat/agent/health"
)

// withTailnetIPs gives each peer its tailnet address from ips (nil: no tailnet, peers as
// they are). A peer ips does not list has none, and is not asked over the tailnet this round.
func withTailnetIPs(peers []health.Peer, ips func() map[string]netip.Addr) []health.Peer {
	if ips == nil {
		return peers
	}
	m := ips()
	for i := range peers {
		peers[i].TailnetIP = m[peers[i].ID]
	}
	return peers
}

package tailnet

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"tailscale.com/client/local"
	"tailscale.com/ipn"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"
)

// LocalClient is the part of tailscaled's LocalAPI client the Router uses.
type LocalClient interface {
	Status(context.Context) (*ipnstate.Status, error)
	GetPrefs(context.Context) (*ipn.Prefs, error)
	EditPrefs(context.Context, *ipn.MaskedPrefs) (*ipn.Prefs, error)
	// Start (re)creates the control client with the prefs and auth key, and
	// StartLoginInteractive makes it log in; with an auth key no human is involved. This is
	// what `tailscale up --authkey` does.
	Start(context.Context, ipn.Options) error
	StartLoginInteractive(context.Context) error
	// DebugPacketFilterRules returns the packet filter headscale sent: it lists the node's
	// subnet routes only once they are approved (see State.Approved).
	DebugPacketFilterRules(context.Context) ([]tailcfg.FilterRule, error)
}

var _ LocalClient = (*local.Client)(nil)

// NewLocalClient returns a client for tailscaled's LocalAPI socket.
func NewLocalClient(socket string) LocalClient {
	return &local.Client{Socket: socket, UseSocketOnly: true}
}

// Desired is what tailscaled should be: logged in to ControlURL as Hostname, carrying Tags,
// advertising Routes, running its SSH server if SSH, with tailnet DNS off and running.
type Desired struct {
	ControlURL string
	Hostname   string         // see Hostname
	Tags       []string       // the tags the node must carry (from its key); empty: not checked
	Routes     []netip.Prefix // VPC CIDRs and extra routes; Set sorts and dedupes them
	// SSH is tailscaled's RunSSH pref: tailscale SSH for whom headscale's policy lets in.
	SSH bool
	// AuthKey returns the pre-auth key. It is called only when a login is needed, never on a
	// Set that finds tailscaled logged in.
	AuthKey func(context.Context) (string, error)
}

// State is what the Router last saw, for /healthz, /status and /metrics. It never holds the
// auth key.
type State struct {
	// Backend is tailscaled's BackendState (NeedsLogin, Starting, Running, ...), or
	// "unreachable" when its socket does not answer.
	Backend  string     `json:"backend"`
	IP       netip.Addr `json:"ip,omitzero"`        // own tailnet IPv4
	Hostname string     `json:"hostname,omitempty"` // the hostname tailscaled advertises
	Tags     []string   `json:"tags,omitempty"`     // tags headscale gave the node
	// Advertised are the routes tailscaled advertises.
	Advertised []netip.Prefix `json:"advertised,omitempty"`
	// Approved: something is advertised and every advertised route is approved. headscale
	// puts a node's subnet routes into the packet filter it sends the node only once they
	// are approved (and the policy has a rule for them), so that is what this checks.
	Approved bool `json:"approved"`
	// Primary are the approved routes no peer is primary for, so this node is (headscale
	// elects one online router per route); Standby those a peer is primary for. headscale
	// v0.29 does not resend a node's own view of itself when the primary moves, so
	// Self.PrimaryRoutes goes stale and is not used; the peers' routes are kept current.
	Primary []netip.Prefix `json:"primary,omitempty"`
	Standby []netip.Prefix `json:"standby,omitempty"`
	// SSH: tailscaled runs its SSH server (RunSSH).
	SSH bool `json:"ssh"`
	// Connected: tailscaled holds a session with headscale (its map poll is up).
	Connected bool `json:"connected"`
	// Degraded: the last Set could not bring tailscaled to the desired state; Error says why.
	Degraded bool   `json:"degraded"`
	Error    string `json:"error,omitempty"`
	// Peers maps the instance id of every peer named like a NAT (see Hostname) to its tailnet
	// IPv4; Offline lists those headscale reports offline.
	Peers   map[string]netip.Addr `json:"peers,omitempty"`
	Offline []string              `json:"offline,omitempty"`
}

// Running reports whether tailscaled is up, connected and not degraded.
func (s State) Running() bool {
	return s.Backend == ipn.Running.String() && s.Connected && !s.Degraded
}

// hostnamePrefix starts every NAT instance's tailnet hostname.
const hostnamePrefix = "nat-"

// Hostname is the tailnet hostname of the NAT instance instanceID in az:
// nat-<az>-<instance-id>, e.g. nat-us-east-1a-i-0123456789abcdef0.
func Hostname(az, instanceID string) string {
	return strings.ToLower(hostnamePrefix + az + "-" + instanceID)
}

// ParseHostname is the inverse of Hostname.
func ParseHostname(h string) (az, instanceID string, ok bool) {
	rest, ok := strings.CutPrefix(strings.ToLower(h), hostnamePrefix)
	if !ok {
		return "", "", false
	}
	i := strings.LastIndex(rest, "-i-")
	if i <= 0 {
		return "", "", false
	}
	az, id := rest[:i], rest[i+1:]
	hex := id[2:]
	if len(hex) < 8 || len(hex) > 17 {
		return "", "", false
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", "", false
		}
	}
	return az, id, true
}

// InstanceFromHostname returns the instance id in a NAT's tailnet hostname.
func InstanceFromHostname(h string) (string, bool) {
	_, id, ok := ParseHostname(h)
	return id, ok
}

// normRoutes returns routes masked, sorted and without duplicates.
func normRoutes(rs []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(rs))
	for _, r := range rs {
		if r.IsValid() {
			out = append(out, r.Masked())
		}
	}
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(out)
}

func normTags(ts []string) []string {
	out := slices.Clone(ts)
	slices.Sort(out)
	return slices.Compact(out)
}

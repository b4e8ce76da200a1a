// Package api holds the wire types served by the agent's HTTP server (/healthz, /status) and
// read back by peers and the `headnat status` command. Plain data with json tags only.
package api

import (
	"net/url"
	"time"
)

// Tags the agent reads, shared with whatever deploys the cluster (the CDK app).
const (
	// TagCluster names the cluster on its NAT instances, their ENIs, the private route tables
	// they serve and the pool's Elastic IPs.
	TagCluster = "headnat:cluster"
	// TagAZ gives a route table its home AZ when its subnets do not tell it.
	TagAZ = "headnat:az"
)

// Default ports, shared with the deployment: peers probe /healthz on DefaultAgentPort (TCP)
// inside the VPC; tailscaled listens on DefaultTailnetUDPPort (WireGuard).
const (
	DefaultAgentPort      = 7070
	DefaultTailnetUDPPort = 41641
)

// HTTP paths served by agent/server.
const (
	PathHealthz = "/healthz"
	PathStatus  = "/status"
	PathMetrics = "/metrics"
)

// Healthz is what /healthz answers: 200 when Healthy, 503 (same JSON body) when not.
type Healthz struct {
	Instance string   `json:"instance"`
	AZ       string   `json:"az"`
	Healthy  bool     `json:"healthy"`
	Reasons  []string `json:"reasons,omitempty"` // why unhealthy (or "ok")
	Draining bool     `json:"draining"`
	// DrainReason says what started the drain (DrainSIGTERM, DrainSpot, ...: detail).
	DrainReason string `json:"drain_reason,omitempty"`
	// Lifecycle is where the instance is in its life: LifecycleLaunching, LifecycleInService,
	// LifecycleDraining or LifecycleDrained.
	Lifecycle string `json:"lifecycle,omitempty"`
	// PublicIP is the instance's public egress address ("" when unknown); EIP is set when it
	// comes from the cluster's Elastic IP pool.
	PublicIP string `json:"public_ip,omitempty"`
	EIP      *EIP   `json:"eip,omitempty"`
	// Starting: the agent has not reached its first verdict on its own health since it
	// started. Peers treat it as alive but not yet healthy, within their restart grace.
	Starting   bool      `json:"starting,omitempty"`
	LaunchTime time.Time `json:"launch_time"`
	Tables     []string  `json:"tables"` // route tables that currently target me
	Version    string    `json:"version"`
	// Tailnet is this instance as a tailnet subnet router; nil when no tailnet is configured.
	// It never makes the instance unhealthy: NAT and failover work without the tailnet.
	Tailnet *Tailnet `json:"tailnet,omitempty"`
}

// Tailnet is this instance's tailnet state. It never carries the auth key.
type Tailnet struct {
	Backend    string   `json:"backend"` // tailscaled's backend state (Running, NeedsLogin, ...) or "unreachable"
	IP         string   `json:"ip,omitempty"`
	Hostname   string   `json:"hostname,omitempty"`
	Advertised []string `json:"advertised,omitempty"` // routes this instance advertises
	Approved   bool     `json:"approved"`             // headscale approved every advertised route
	Primary    []string `json:"primary,omitempty"`    // routes this instance is the primary router for
	Degraded   bool     `json:"degraded"`
	Error      string   `json:"error,omitempty"`     // why degraded
	Withdrawn  bool     `json:"withdrawn,omitempty"` // routes withdrawn for a drain
	SSH        bool     `json:"ssh"`                 // tailscaled runs its SSH server (tailnet.ssh)
}

// Lifecycle stages (Healthz.Lifecycle).
const (
	LifecycleLaunching = "launching" // configuring; the launch hook is not completed yet
	LifecycleInService = "in-service"
	LifecycleDraining  = "draining" // handing its route tables over
	LifecycleDrained   = "drained"  // holds nothing; waits for termination or `headnat undrain`
)

// What starts a drain (the first word of Healthz.DrainReason).
const (
	DrainSIGTERM       = "sigterm"
	DrainSpot          = "spot-interruption"
	DrainRebalance     = "rebalance-recommendation"
	DrainTargetState   = "target-lifecycle-state"
	DrainTerminateHook = "terminate-lifecycle-action"
	DrainOperator      = "operator"
)

// EIP is the Elastic IP this instance holds from the cluster's pool.
type EIP struct {
	AllocationID  string `json:"allocation_id,omitempty"`
	AssociationID string `json:"association_id,omitempty"`
	PublicIP      string `json:"public_ip,omitempty"`
	// Error says why the instance holds no pool address (e.g. the pool is empty).
	Error string `json:"error,omitempty"`
}

// Paths a peer was last reached over (PeerStatus.Via).
const (
	ViaVPC     = "vpc"
	ViaTailnet = "tailnet"
	ViaNone    = "none"
)

// PeerStatus is one peer as this agent sees it.
type PeerStatus struct {
	ID        string    `json:"id"`
	AZ        string    `json:"az"`
	ENI       string    `json:"eni"`
	PrivateIP string    `json:"private_ip"`
	Healthy   bool      `json:"healthy"` // after rise/fall over the VPC path
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"` // last VPC-path probe error
	Via       string    `json:"via"`                  // ViaVPC, ViaTailnet or ViaNone
	// TailnetReachable: in the latest probe the VPC path failed and the tailnet path answered.
	// Whether the peer counts as partitioned (a verdict over several probes) is in PresumedAlive.
	TailnetReachable bool `json:"tailnet_reachable"`
	// PresumedAlive: why a peer that is not healthy keeps its tables ("partitioned: ...",
	// "agent restarting: ...", ...); empty when healthy or dead.
	PresumedAlive string    `json:"presumed_alive,omitempty"`
	Draining      bool      `json:"draining"`
	DrainReason   string    `json:"drain_reason,omitempty"`
	Lifecycle     string    `json:"lifecycle,omitempty"`
	PublicIP      string    `json:"public_ip,omitempty"`
	LaunchTime    time.Time `json:"launch_time,omitzero"`
}

// Route table states (TableStatus.State).
const (
	RouteActive    = "active"
	RouteBlackhole = "blackhole"
	RouteMissing   = "missing"
)

// TableStatus is one managed route table and its default route.
type TableStatus struct {
	ID              string `json:"id"`
	HomeAZ          string `json:"home_az"`
	TargetInstance  string `json:"target_instance,omitempty"`
	TargetENI       string `json:"target_eni,omitempty"`
	State           string `json:"state"` // RouteActive, RouteBlackhole or RouteMissing
	PreferredOwner  string `json:"preferred_owner,omitempty"`
	PreferredReason string `json:"preferred_reason,omitempty"`
	// Pending: a fail-back this agent would make, and what it waits for (its timers, or the
	// end of a partition).
	Pending   string    `json:"pending,omitempty"`
	HeldSince time.Time `json:"held_since,omitzero"` // since when the current target holds it
}

// Decision is one route write (or dry-run) the agent made, with why.
type Decision struct {
	Time      time.Time `json:"time"`
	Table     string    `json:"table"`
	Kind      string    `json:"kind"` // e.g. take-over, fail-back, drain
	Target    string    `json:"target"`
	TargetENI string    `json:"target_eni,omitempty"`
	Reason    string    `json:"reason"`
	Result    string    `json:"result"` // e.g. ok, error, dry-run
	Error     string    `json:"error,omitempty"`
}

// Finding is one data-plane problem found by the verifier.
type Finding struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Duration marshals as a Go duration string ("200ms").
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// ConfigSummary is the non-secret part of the agent's configuration. It must never carry auth
// keys, API keys or credentials; URLs go through SafeURL.
type ConfigSummary struct {
	Cluster        string   `json:"cluster"`
	Region         string   `json:"region,omitempty"`
	VPCID          string   `json:"vpc_id,omitempty"`
	VPCCIDRs       []string `json:"vpc_cidrs,omitempty"`
	ListenAddr     string   `json:"listen_addr,omitempty"`
	PeerPort       int      `json:"peer_port,omitempty"`
	ProbeInterval  Duration `json:"probe_interval"`
	ProbeTimeout   Duration `json:"probe_timeout"`
	Rise           int      `json:"rise"`
	Fall           int      `json:"fall"`
	FailbackAfter  Duration `json:"failback_after"`
	EgressTargets  []string `json:"egress_targets,omitempty"`
	EgressK        int      `json:"egress_k,omitempty"`
	TailnetEnabled bool     `json:"tailnet_enabled"`
	HeadscaleURL   string   `json:"headscale_url,omitempty"` // through SafeURL
	DryRun         bool     `json:"dry_run"`
}

// Status is the whole view served on /status.
type Status struct {
	Time      time.Time     `json:"time"`
	Self      Healthz       `json:"self"`
	Peers     []PeerStatus  `json:"peers"`
	Tables    []TableStatus `json:"tables"`
	Decisions []Decision    `json:"decisions"` // most recent last
	Findings  []Finding     `json:"findings"`
	Config    ConfigSummary `json:"config"`
}

// SafeURL drops user info, query and fragment from a URL so that it can be shown. A string that
// does not parse as a URL is replaced by a placeholder rather than echoed.
func SafeURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(invalid url)"
	}
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// DefaultTailnetCIDR is the tailnet's IPv4 range (headscale's prefixes.v4, Tailscale's CGNAT
// range): a VPC that overlaps it cannot be routed to over the tailnet.
const DefaultTailnetCIDR = "100.64.0.0/10"

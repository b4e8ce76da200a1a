// Package config is the agent's configuration: a YAML file, then HEADNAT_* environment
// variables, then flags, each overriding the one before. Empty fields are discovered at start
// from IMDS and tags (see Resolve in the agent); Validate rejects what can never work.
package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/health"
)

// Config is the whole agent configuration. Zero values mean "discover" or "default".
type Config struct {
	Cluster          string         `yaml:"cluster"`          // default: the instance's headnat:cluster tag
	Listen           string         `yaml:"listen"`           // /healthz, /status, /metrics
	PeerPort         int            `yaml:"peer_port"`        // port peers serve /healthz on
	EgressInterface  string         `yaml:"egress_interface"` // default: from the default route
	VPCCIDRs         []netip.Prefix `yaml:"vpc_cidrs"`        // default: from IMDS
	ExtraSourceCIDRs []netip.Prefix `yaml:"extra_source_cidrs"`
	// AgentSourceCIDRs may reach the agent's port besides the VPC, extra sources and loopback
	// (e.g. a monitoring network); they are never forwarded.
	AgentSourceCIDRs []netip.Prefix `yaml:"agent_source_cidrs"`
	// KeepJumpPosition leaves headnat's FORWARD jump where it is instead of moving it back to
	// the top when a foreign rule was inserted above it.
	KeepJumpPosition bool          `yaml:"keep_jump_position"`
	RouteTables      []string      `yaml:"route_tables"` // default: every table tagged with the cluster
	FailbackAfter    time.Duration `yaml:"failback_after"`
	Refresh          time.Duration `yaml:"refresh"`         // how often the cluster is re-read from EC2
	VerifyInterval   time.Duration `yaml:"verify_interval"` // how often the data plane is verified and repaired
	DrainTimeout     time.Duration `yaml:"drain_timeout"`   // how long a drain waits for peers to take the tables
	Probe            Probe         `yaml:"probe"`
	Egress           Egress        `yaml:"egress"`
	Conntrack        Conntrack     `yaml:"conntrack"`
	Tailnet          Tailnet       `yaml:"tailnet"`
	Lifecycle        Lifecycle     `yaml:"lifecycle"`
	EIP              EIP           `yaml:"eip"`
	CloudWatch       CloudWatch    `yaml:"cloudwatch"`
	// ControlSocket is the root-only unix socket `headnat drain` and `headnat undrain` use.
	ControlSocket string `yaml:"control_socket"`
	AWS           AWS    `yaml:"aws"`
	StatePath     string `yaml:"state_path"`
	DryRun        bool   `yaml:"dry_run"`
}

// Probe sets how often and how patiently peers and egress are checked.
type Probe struct {
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
	Rise     int           `yaml:"rise"`
	Fall     int           `yaml:"fall"`
	// RestartGrace is how long a peer whose host answers but whose agent does not (refused,
	// or still starting) keeps its tables: long enough for systemd to restart a crashed agent
	// without moving routes and breaking connections.
	RestartGrace time.Duration `yaml:"restart_grace"`
}

// Egress is the own-egress check: at least K of Targets must answer. It runs every Interval,
// each probe bounded by Timeout, with the rise/fall counts of Probe.
type Egress struct {
	// Targets are "tcp://host:port" or "http(s)://..." URLs.
	Targets  []string      `yaml:"targets"`
	K        int           `yaml:"k"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
}

// EgressTarget is one parsed egress target.
type EgressTarget struct {
	TCP  bool   // tcp://host:port: a TCP connect to Addr
	Addr string // host:port for TCP
	URL  string // http(s):// URL: a GET that must answer 2xx
}

// ParseEgressTarget parses "tcp://host:port" or an http(s) URL.
func ParseEgressTarget(t string) (EgressTarget, error) {
	switch {
	case strings.HasPrefix(t, "tcp://"):
		addr := strings.TrimPrefix(t, "tcp://")
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			return EgressTarget{}, fmt.Errorf("egress.targets: %q: want tcp://host:port", t)
		}
		return EgressTarget{TCP: true, Addr: addr}, nil
	case strings.HasPrefix(t, "http://"), strings.HasPrefix(t, "https://"):
		u, err := url.Parse(t)
		if err != nil || u.Host == "" {
			return EgressTarget{}, fmt.Errorf("egress.targets: %q is not a valid URL", t)
		}
		return EgressTarget{URL: t}, nil
	}
	return EgressTarget{}, fmt.Errorf("egress.targets: %q must start with tcp://, http:// or https://", t)
}

// EgressTargets are the parsed targets; with none configured, TCP to the region's EC2 and S3
// endpoints over the internet.
func (c Config) EgressTargets(region string) ([]EgressTarget, error) {
	targets := c.Egress.Targets
	if len(targets) == 0 {
		if region == "" {
			return nil, errors.New("egress.targets: none configured and no region to derive defaults from")
		}
		targets = []string{"tcp://ec2." + region + ".amazonaws.com:443", "tcp://s3." + region + ".amazonaws.com:443"}
	}
	out := make([]EgressTarget, 0, len(targets))
	for _, t := range targets {
		et, err := ParseEgressTarget(t)
		if err != nil {
			return nil, err
		}
		out = append(out, et)
	}
	return out, nil
}

// Health is the peer-probe schedule and hysteresis for agent/health.
func (p Probe) Health() health.Config {
	return health.Config{Interval: p.Interval, Timeout: p.Timeout, Rise: p.Rise, Fall: p.Fall}
}

// SelfHealth is the own-check schedule: the egress timing with the probes' rise and fall.
func (c Config) SelfHealth() health.Config {
	return health.Config{Interval: c.Egress.Interval, Timeout: c.Egress.Timeout, Rise: c.Probe.Rise, Fall: c.Probe.Fall}
}

// Conntrack sizes the connection-tracking table; zero means sized to memory / defaults.
type Conntrack struct {
	Max                   int           `yaml:"max"`
	TCPEstablishedTimeout time.Duration `yaml:"tcp_established_timeout"`
	UDPTimeout            time.Duration `yaml:"udp_timeout"`
	UDPStreamTimeout      time.Duration `yaml:"udp_stream_timeout"`
}

// Tailnet is the headscale tailnet this instance joins as a subnet router. With no
// LoginServer there is no tailnet: NAT and failover work without one.
type Tailnet struct {
	LoginServer string `yaml:"login_server"` // headscale's URL
	// The pre-auth key comes from an SSM SecureString parameter or from a file, never from
	// the config itself.
	AuthKeySSMParameter string         `yaml:"auth_key_ssm_parameter"`
	AuthKeyFile         string         `yaml:"auth_key_file"`
	Socket              string         `yaml:"socket"`    // tailscaled's LocalAPI socket
	Interface           string         `yaml:"interface"` // tailscaled's TUN device
	Tags                []string       `yaml:"tags"`      // tags the node advertises
	ExtraRoutes         []netip.Prefix `yaml:"extra_routes"`
	// CIDR is the tailnet's address range: its sources are forwarded to the VPC and may
	// reach the agent's port.
	CIDR netip.Prefix `yaml:"cidr"`
	// UDPPort is tailscaled's fixed WireGuard port (its --port), matched by the path rules.
	UDPPort int `yaml:"udp_port"`
	// AllowVPCDirect lets tailscaled talk to other nodes over VPC-private addresses. Off, the
	// NAT instances reach each other over the tailnet by public addresses or DERP, a path a
	// VPC partition does not cut (the second health path).
	AllowVPCDirect bool `yaml:"allow_vpc_direct"`
	// SSH runs tailscaled's SSH server (its RunSSH pref), kept on like the routes; who may
	// log in, as which user, is headscale's policy (package policy: the admins, as root).
	SSH bool `yaml:"ssh"`
}

// Enabled reports whether a tailnet is configured.
func (t Tailnet) Enabled() bool { return t.LoginServer != "" }

// Lifecycle is the instance's life in its Auto Scaling group: the launch hook it completes once
// it is a working NAT, and the events that start a drain.
type Lifecycle struct {
	Group         string `yaml:"group"`          // default: the instance's aws:autoscaling:groupName tag
	LaunchHook    string `yaml:"launch_hook"`    // default: the group's only EC2_INSTANCE_LAUNCHING hook
	TerminateHook string `yaml:"terminate_hook"` // default: the group's only EC2_INSTANCE_TERMINATING hook
	// LaunchTimeout bounds the wait for readiness before the launch hook is completed with
	// ABANDON; default: the launch hook's heartbeat timeout.
	LaunchTimeout time.Duration `yaml:"launch_timeout"`
	// HeartbeatInterval: how often a held hook is heartbeaten; default: a third of its
	// heartbeat timeout.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	PollInterval      time.Duration `yaml:"poll_interval"`       // IMDS: spot notice, rebalance, target lifecycle state
	GroupPollInterval time.Duration `yaml:"group_poll_interval"` // the group's view of this instance (pending terminate action)
	DrainOnRebalance  bool          `yaml:"drain_on_rebalance"`
}

// EIP is the optional pool of Elastic IPs for stable egress addresses: with Pool on, the agent
// associates a free address tagged headnat:cluster=<cluster> with its ENI at launch and
// releases it after a drain.
type EIP struct {
	Pool bool `yaml:"pool"`
}

// CloudWatch is the optional publishing of the agent's two CloudWatch metrics (see
// agent/api): with a Namespace, one PutMetricData call every Interval.
type CloudWatch struct {
	Namespace string        `yaml:"namespace"` // "" publishes nothing
	Interval  time.Duration `yaml:"interval"`
}

// MinCloudWatchInterval is the shortest cloudwatch.interval: a custom metric at the standard
// resolution has one data point a minute; faster only costs requests.
const MinCloudWatchInterval = 10 * time.Second

// AWS endpoints are empty on AWS; the lab points them at its simulator.
type AWS struct {
	Region              string `yaml:"region"`
	EC2Endpoint         string `yaml:"ec2_endpoint"`
	AutoScalingEndpoint string `yaml:"autoscaling_endpoint"`
	SSMEndpoint         string `yaml:"ssm_endpoint"`
	CloudWatchEndpoint  string `yaml:"cloudwatch_endpoint"`
	IMDSEndpoint        string `yaml:"imds_endpoint"`
}

// Default returns the configuration an untouched tagged instance runs with.
func Default() Config {
	return Config{
		Listen:         fmt.Sprintf(":%d", api.DefaultAgentPort),
		PeerPort:       api.DefaultAgentPort,
		FailbackAfter:  60 * time.Second,
		Refresh:        2 * time.Second,
		VerifyInterval: 5 * time.Second,
		DrainTimeout:   15 * time.Second,
		// Worst-case detection of a dead peer is Fall*Interval + Timeout = 750ms, leaving about
		// 250ms for the route write. Egress targets sit beyond the internet gateway, so they get
		// a longer timeout: 3*500ms + 400ms = 1.9s.
		Probe:         Probe{Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Rise: 3, Fall: 3, RestartGrace: 10 * time.Second},
		Egress:        Egress{K: 1, Interval: 500 * time.Millisecond, Timeout: 400 * time.Millisecond},
		StatePath:     "/run/headnat/dataplane.json",
		ControlSocket: "/run/headnat/control.sock",
		Lifecycle:     Lifecycle{PollInterval: time.Second, GroupPollInterval: 10 * time.Second, DrainOnRebalance: true},
		CloudWatch:    CloudWatch{Interval: api.MetricPeriodSeconds * time.Second},
		Tailnet: Tailnet{
			Socket:    "/var/run/tailscale/tailscaled.sock",
			Interface: "tailscale0",
			Tags:      []string{"tag:nat"},
			CIDR:      netip.MustParsePrefix("100.64.0.0/10"),
			UDPPort:   api.DefaultTailnetUDPPort,
			SSH:       true,
		},
	}
}

// Parse reads YAML strictly: an unknown key is an error naming it.
func Parse(r io.Reader, into *Config) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(into); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// LoadFile applies a YAML file onto cfg; a missing file is an error.
func LoadFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := Parse(bytes.NewReader(b), cfg); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// Key is one setting: a YAML key, a HEADNAT_* environment variable and a --flag.
type Key struct {
	Name string // dotted YAML path; env HEADNAT_<NAME>, flag --<name with dashes>
	Type string // what the value looks like in help: duration, int, bool, string, CIDR[,CIDR...], list
	Help string
	set  func(*Config, string) error
	get  func(*Config) string
}

// Env is the key's environment variable.
func (k Key) Env() string { return envName(k.Name) }

// Flag is the key's flag name, without dashes.
func (k Key) Flag() string { return flagName(k.Name) }

// Value is the key's value in cfg, as it would be written in a flag.
func (k Key) Value(cfg Config) string { return k.get(&cfg) }

// Keys lists every setting, in help order.
func Keys() []Key {
	dur := func(name, help string, p func(*Config) *time.Duration) Key {
		return Key{Name: name, Type: "duration", Help: help,
			set: func(c *Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return err
				}
				*p(c) = d
				return nil
			},
			get: func(c *Config) string { return p(c).String() }}
	}
	num := func(name, help string, p func(*Config) *int) Key {
		return Key{Name: name, Type: "int", Help: help,
			set: func(c *Config, v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("not an integer: %q", v)
				}
				*p(c) = n
				return nil
			},
			get: func(c *Config) string { return strconv.Itoa(*p(c)) }}
	}
	str := func(name, help string, p func(*Config) *string) Key {
		return Key{Name: name, Type: "string", Help: help,
			set: func(c *Config, v string) error { *p(c) = v; return nil },
			get: func(c *Config) string { return *p(c) }}
	}
	boolean := func(name, help string, p func(*Config) *bool) Key {
		return Key{Name: name, Type: "bool", Help: help,
			set: func(c *Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("not a boolean: %q", v)
				}
				*p(c) = b
				return nil
			},
			get: func(c *Config) string { return strconv.FormatBool(*p(c)) }}
	}
	cidrs := func(name, help string, p func(*Config) *[]netip.Prefix) Key {
		return Key{Name: name, Type: "CIDR[,CIDR...]", Help: help,
			set: func(c *Config, v string) error {
				ps, err := ParseCIDRs(v)
				if err != nil {
					return err
				}
				*p(c) = ps
				return nil
			},
			get: func(c *Config) string {
				var ss []string
				for _, q := range *p(c) {
					ss = append(ss, q.String())
				}
				return strings.Join(ss, ",")
			}}
	}
	prefix := func(name, help string, p func(*Config) *netip.Prefix) Key {
		return Key{Name: name, Type: "CIDR", Help: help,
			set: func(c *Config, v string) error {
				q, err := netip.ParsePrefix(strings.TrimSpace(v))
				if err != nil {
					return fmt.Errorf("invalid CIDR %q", v)
				}
				*p(c) = q
				return nil
			},
			get: func(c *Config) string { return p(c).String() }}
	}
	list := func(name, typ, help string, p func(*Config) *[]string) Key {
		return Key{Name: name, Type: typ, Help: help,
			set: func(c *Config, v string) error { *p(c) = splitList(v); return nil },
			get: func(c *Config) string { return strings.Join(*p(c), ",") }}
	}
	return []Key{
		str("cluster", "cluster name (default: the instance's headnat:cluster tag)", func(c *Config) *string { return &c.Cluster }),
		str("listen", "address for /healthz, /status and /metrics", func(c *Config) *string { return &c.Listen }),
		num("peer_port", "port peers serve /healthz on", func(c *Config) *int { return &c.PeerPort }),
		str("egress_interface", "egress interface (default: from the default route)", func(c *Config) *string { return &c.EgressInterface }),
		cidrs("vpc_cidrs", "VPC CIDRs to NAT (default: from IMDS)", func(c *Config) *[]netip.Prefix { return &c.VPCCIDRs }),
		cidrs("extra_source_cidrs", "extra source CIDRs to NAT", func(c *Config) *[]netip.Prefix { return &c.ExtraSourceCIDRs }),
		cidrs("agent_source_cidrs", "extra sources that may reach the agent's port (it always admits the VPC, extra sources and loopback)", func(c *Config) *[]netip.Prefix { return &c.AgentSourceCIDRs }),
		boolean("keep_jump_position", "leave headnat's iptables jumps where they are when a foreign rule sits above them (verify still reports it)", func(c *Config) *bool { return &c.KeepJumpPosition }),
		list("route_tables", "rtb-ID[,rtb-ID...]", "route tables to manage (default: every table tagged with the cluster)", func(c *Config) *[]string { return &c.RouteTables }),
		dur("failback_after", "how long the home-AZ instance must be healthy before taking its tables back", func(c *Config) *time.Duration { return &c.FailbackAfter }),
		dur("refresh", "how often the cluster (members, route tables) is re-read from EC2", func(c *Config) *time.Duration { return &c.Refresh }),
		dur("verify_interval", "how often the data plane is verified and repaired", func(c *Config) *time.Duration { return &c.VerifyInterval }),
		dur("drain_timeout", "how long a drain waits for peers to take this instance's tables", func(c *Config) *time.Duration { return &c.DrainTimeout }),
		dur("probe.interval", "peer probe interval", func(c *Config) *time.Duration { return &c.Probe.Interval }),
		dur("probe.timeout", "peer probe timeout (shorter than --probe-interval)", func(c *Config) *time.Duration { return &c.Probe.Timeout }),
		num("probe.rise", "consecutive passes before healthy (peers and self)", func(c *Config) *int { return &c.Probe.Rise }),
		num("probe.fall", "consecutive failures before unhealthy (peers and self)", func(c *Config) *int { return &c.Probe.Fall }),
		dur("probe.restart_grace", "how long a peer whose agent is down but whose host answers keeps its tables", func(c *Config) *time.Duration { return &c.Probe.RestartGrace }),
		list("egress.targets", "URL[,URL...]", "egress probe targets, tcp://host:port or http(s)://... (default: TCP to the region's EC2 and S3 endpoints)", func(c *Config) *[]string { return &c.Egress.Targets }),
		num("egress.k", "egress probes that must pass", func(c *Config) *int { return &c.Egress.K }),
		dur("egress.interval", "own egress check interval", func(c *Config) *time.Duration { return &c.Egress.Interval }),
		dur("egress.timeout", "own egress probe timeout (shorter than --egress-interval)", func(c *Config) *time.Duration { return &c.Egress.Timeout }),
		num("conntrack.max", "conntrack table size (0: sized to memory)", func(c *Config) *int { return &c.Conntrack.Max }),
		dur("conntrack.tcp_established_timeout", "conntrack timeout of established TCP (0: the data plane's default)", func(c *Config) *time.Duration { return &c.Conntrack.TCPEstablishedTimeout }),
		dur("conntrack.udp_timeout", "conntrack timeout of one-way UDP (0: the data plane's default)", func(c *Config) *time.Duration { return &c.Conntrack.UDPTimeout }),
		dur("conntrack.udp_stream_timeout", "conntrack timeout of UDP streams (0: the data plane's default)", func(c *Config) *time.Duration { return &c.Conntrack.UDPStreamTimeout }),
		str("tailnet.login_server", "headscale URL to join as a subnet router (empty: no tailnet)", func(c *Config) *string { return &c.Tailnet.LoginServer }),
		str("tailnet.auth_key_ssm_parameter", "SSM SecureString parameter holding the pre-auth key", func(c *Config) *string { return &c.Tailnet.AuthKeySSMParameter }),
		str("tailnet.auth_key_file", "file holding the pre-auth key (instead of SSM)", func(c *Config) *string { return &c.Tailnet.AuthKeyFile }),
		str("tailnet.socket", "tailscaled's LocalAPI socket", func(c *Config) *string { return &c.Tailnet.Socket }),
		str("tailnet.interface", "tailscaled's TUN interface", func(c *Config) *string { return &c.Tailnet.Interface }),
		list("tailnet.tags", "tag:NAME[,tag:NAME...]", "tags the node advertises", func(c *Config) *[]string { return &c.Tailnet.Tags }),
		cidrs("tailnet.extra_routes", "routes to advertise besides the VPC CIDRs", func(c *Config) *[]netip.Prefix { return &c.Tailnet.ExtraRoutes }),
		num("tailnet.udp_port", "tailscaled's fixed UDP port (its --port)", func(c *Config) *int { return &c.Tailnet.UDPPort }),
		boolean("tailnet.allow_vpc_direct", "let tailscaled reach other nodes over VPC-private addresses (then a VPC partition also cuts the tailnet health path)", func(c *Config) *bool { return &c.Tailnet.AllowVPCDirect }),
		boolean("tailnet.ssh", "run tailscaled's SSH server (tailscale SSH as headscale's policy allows: the admins, as root); false turns it off", func(c *Config) *bool { return &c.Tailnet.SSH }),
		prefix("tailnet.cidr", "the tailnet's address range (forwarded to the VPC, admitted to the agent's port)", func(c *Config) *netip.Prefix { return &c.Tailnet.CIDR }),
		str("lifecycle.group", "Auto Scaling group (default: the instance's aws:autoscaling:groupName tag)", func(c *Config) *string { return &c.Lifecycle.Group }),
		str("lifecycle.launch_hook", "launch lifecycle hook to complete once ready (default: the group's only launching hook)", func(c *Config) *string { return &c.Lifecycle.LaunchHook }),
		str("lifecycle.terminate_hook", "terminate lifecycle hook to complete after a drain (default: the group's only terminating hook)", func(c *Config) *string { return &c.Lifecycle.TerminateHook }),
		dur("lifecycle.launch_timeout", "how long to wait for readiness before abandoning the launch (default: the launch hook's heartbeat timeout)", func(c *Config) *time.Duration { return &c.Lifecycle.LaunchTimeout }),
		dur("lifecycle.heartbeat_interval", "how often a held lifecycle hook is heartbeaten (default: a third of its heartbeat timeout)", func(c *Config) *time.Duration { return &c.Lifecycle.HeartbeatInterval }),
		dur("lifecycle.poll_interval", "how often IMDS is polled for spot notices, rebalance recommendations and the target lifecycle state", func(c *Config) *time.Duration { return &c.Lifecycle.PollInterval }),
		dur("lifecycle.group_poll_interval", "how often the Auto Scaling group is asked for this instance's lifecycle state", func(c *Config) *time.Duration { return &c.Lifecycle.GroupPollInterval }),
		boolean("lifecycle.drain_on_rebalance", "drain on an EC2 rebalance recommendation", func(c *Config) *bool { return &c.Lifecycle.DrainOnRebalance }),
		boolean("eip.pool", "take a free Elastic IP tagged headnat:cluster=<cluster> at launch, release it after a drain", func(c *Config) *bool { return &c.EIP.Pool }),
		str("cloudwatch.namespace", "CloudWatch namespace to publish the agent's metrics to, e.g. "+api.DefaultMetricNamespace+" (empty: publish nothing)", func(c *Config) *string { return &c.CloudWatch.Namespace }),
		dur("cloudwatch.interval", "how often the CloudWatch metrics are published, in one request (at least 10s)", func(c *Config) *time.Duration { return &c.CloudWatch.Interval }),
		str("control_socket", "root-only unix socket for `headnat drain` and `headnat undrain`", func(c *Config) *string { return &c.ControlSocket }),
		str("aws.region", "AWS region (default: from IMDS)", func(c *Config) *string { return &c.AWS.Region }),
		str("aws.ec2_endpoint", "EC2 endpoint URL (default: AWS)", func(c *Config) *string { return &c.AWS.EC2Endpoint }),
		str("aws.autoscaling_endpoint", "Auto Scaling endpoint URL (default: AWS)", func(c *Config) *string { return &c.AWS.AutoScalingEndpoint }),
		str("aws.ssm_endpoint", "SSM endpoint URL (default: AWS)", func(c *Config) *string { return &c.AWS.SSMEndpoint }),
		str("aws.cloudwatch_endpoint", "CloudWatch endpoint URL (default: AWS)", func(c *Config) *string { return &c.AWS.CloudWatchEndpoint }),
		str("aws.imds_endpoint", "IMDS endpoint URL (default: 169.254.169.254)", func(c *Config) *string { return &c.AWS.IMDSEndpoint }),
		str("state_path", "where the data plane records the sysctls it replaced", func(c *Config) *string { return &c.StatePath }),
		boolean("dry_run", "log route writes instead of doing them; change nothing on the host", func(c *Config) *bool { return &c.DryRun }),
	}
}

func envName(k string) string {
	return "HEADNAT_" + strings.ToUpper(strings.NewReplacer(".", "_").Replace(k))
}

func flagName(k string) string {
	return strings.NewReplacer(".", "-", "_", "-").Replace(k)
}

// ApplyEnv applies HEADNAT_* variables. A HEADNAT_ variable that names no setting is an error,
// so a typo does not pass silently.
func ApplyEnv(cfg *Config, environ []string) error {
	known := map[string]Key{}
	for _, k := range Keys() {
		known[k.Env()] = k
	}
	var names []string
	vals := map[string]string{}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "HEADNAT_") || name == "HEADNAT_BIN" {
			continue
		}
		names = append(names, name)
		vals[name] = val
	}
	sort.Strings(names)
	for _, name := range names {
		k, ok := known[name]
		if !ok {
			return fmt.Errorf("config: unknown environment variable %s", name)
		}
		if err := k.set(cfg, vals[name]); err != nil {
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

// flagValue is one setting as a flag.Value; the config it writes is applied after parsing.
type flagValue struct {
	k   Key
	val string
}

func (f *flagValue) String() string {
	if f == nil {
		return ""
	}
	return f.val
}
func (f *flagValue) Set(v string) error { f.val = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.k.Type == "bool" }

// Flags registers one flag per setting on fs, each showing the default's value. After fs.Parse,
// call the returned function to apply the flags that were given onto cfg.
func Flags(fs *flag.FlagSet) func(cfg *Config) error {
	def := Default()
	vals := map[string]*flagValue{}
	for _, k := range Keys() {
		v := &flagValue{k: k, val: k.Value(def)}
		vals[k.Flag()] = v
		fs.Var(v, k.Flag(), k.Help)
	}
	return func(cfg *Config) error {
		var err error
		fs.Visit(func(f *flag.Flag) {
			v, ok := vals[f.Name]
			if !ok || err != nil {
				return
			}
			if e := v.k.set(cfg, v.val); e != nil {
				err = fmt.Errorf("config: --%s: %w", f.Name, e)
			}
		})
		return err
	}
}

// ParseCIDRs parses a comma-separated list of canonical IPv4 prefixes.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range splitList(s) {
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("invalid CIDR %q", f)
		}
		out = append(out, p)
	}
	return out, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate checks what does not depend on discovery. All problems are reported together.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	checkCIDRs := func(name string, ps []netip.Prefix) {
		for _, p := range ps {
			switch {
			case !p.IsValid():
				bad("%s: invalid CIDR", name)
			case !p.Addr().Is4():
				bad("%s: %s is not IPv4", name, p)
			case p.Masked() != p:
				bad("%s: %s has host bits set (did you mean %s?)", name, p, p.Masked())
			}
		}
	}
	checkCIDRs("vpc_cidrs", c.VPCCIDRs)
	checkCIDRs("extra_source_cidrs", c.ExtraSourceCIDRs)
	checkCIDRs("agent_source_cidrs", c.AgentSourceCIDRs)
	checkCIDRs("tailnet.extra_routes", c.Tailnet.ExtraRoutes)
	if c.Tailnet.Enabled() {
		errs = append(errs, c.Tailnet.validate())
	}
	for _, id := range c.RouteTables {
		if !strings.HasPrefix(id, "rtb-") {
			bad("route_tables: %q is not a route table id (rtb-...)", id)
		}
	}
	if c.FailbackAfter < 0 {
		bad("failback_after: must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"probe.interval", c.Probe.Interval}, {"probe.timeout", c.Probe.Timeout}, {"egress.interval", c.Egress.Interval},
		{"egress.timeout", c.Egress.Timeout}, {"refresh", c.Refresh}, {"verify_interval", c.VerifyInterval}} {
		if d.v <= 0 {
			bad("%s: must be positive", d.name)
		}
	}
	if c.Probe.Timeout > 0 && c.Probe.Timeout >= c.Probe.Interval {
		bad("probe.timeout: %s must be shorter than probe.interval %s (probe rounds must not overlap)", c.Probe.Timeout, c.Probe.Interval)
	}
	if c.Egress.Timeout > 0 && c.Egress.Timeout >= c.Egress.Interval {
		bad("egress.timeout: %s must be shorter than egress.interval %s", c.Egress.Timeout, c.Egress.Interval)
	}
	if c.DrainTimeout < 0 {
		bad("drain_timeout: must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"conntrack.tcp_established_timeout", c.Conntrack.TCPEstablishedTimeout}, {"conntrack.udp_timeout", c.Conntrack.UDPTimeout},
		{"conntrack.udp_stream_timeout", c.Conntrack.UDPStreamTimeout}} {
		if d.v < 0 {
			bad("%s: must not be negative", d.name)
		}
	}
	if c.Probe.RestartGrace < 0 {
		bad("probe.restart_grace: must not be negative")
	}
	if c.Probe.Rise < 1 || c.Probe.Fall < 1 {
		bad("probe.rise and probe.fall: must be at least 1")
	}
	if c.Egress.K < 1 || (len(c.Egress.Targets) > 0 && c.Egress.K > len(c.Egress.Targets)) {
		bad("egress.k: must be between 1 and the number of egress.targets (%d)", len(c.Egress.Targets))
	}
	for _, t := range c.Egress.Targets {
		if _, err := ParseEgressTarget(t); err != nil {
			errs = append(errs, err)
		}
	}
	if c.PeerPort < 1 || c.PeerPort > 65535 {
		bad("peer_port: %d out of range", c.PeerPort)
	}
	if c.Listen == "" {
		bad("listen: must not be empty")
	}
	if c.Conntrack.Max < 0 {
		bad("conntrack.max: must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"lifecycle.launch_timeout", c.Lifecycle.LaunchTimeout}, {"lifecycle.heartbeat_interval", c.Lifecycle.HeartbeatInterval}} {
		if d.v < 0 {
			bad("%s: must not be negative", d.name)
		}
	}
	if c.Lifecycle.PollInterval <= 0 || c.Lifecycle.GroupPollInterval <= 0 {
		bad("lifecycle.poll_interval and lifecycle.group_poll_interval: must be positive")
	}
	if c.ControlSocket == "" || !strings.HasPrefix(c.ControlSocket, "/") {
		bad("control_socket: %q is not an absolute path", c.ControlSocket)
	}
	errs = append(errs, c.CloudWatch.validate())
	return errors.Join(errs...)
}

// validate checks the namespace as CloudWatch would (1-255 ASCII characters, no control
// characters, not starting with ":" or the reserved "AWS/") and the interval.
func (cw CloudWatch) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if cw.Interval < MinCloudWatchInterval {
		bad("cloudwatch.interval: %s is shorter than %s", cw.Interval, MinCloudWatchInterval)
	}
	ns := cw.Namespace
	if ns == "" {
		return errors.Join(errs...)
	}
	switch {
	case len(ns) > 255:
		bad("cloudwatch.namespace: %d characters, at most 255", len(ns))
	case strings.HasPrefix(ns, "AWS/"):
		bad("cloudwatch.namespace: %q: namespaces starting with AWS/ are reserved for AWS", ns)
	case strings.HasPrefix(ns, ":"):
		bad("cloudwatch.namespace: %q must not start with \":\"", ns)
	case strings.ContainsFunc(ns, func(r rune) bool { return r < 0x20 || r > 0x7e }):
		bad("cloudwatch.namespace: %q: only printable ASCII characters", ns)
	}
	return errors.Join(errs...)
}

func (t Tailnet) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if u, err := url.Parse(t.LoginServer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("tailnet.login_server: %q is not an http(s) URL", t.LoginServer)
	}
	switch {
	case t.AuthKeySSMParameter == "" && t.AuthKeyFile == "":
		bad("tailnet: set tailnet.auth_key_ssm_parameter or tailnet.auth_key_file")
	case t.AuthKeySSMParameter != "" && t.AuthKeyFile != "":
		bad("tailnet: set only one of tailnet.auth_key_ssm_parameter and tailnet.auth_key_file")
	}
	if t.Socket == "" {
		bad("tailnet.socket: must not be empty")
	}
	if t.UDPPort < 1 || t.UDPPort > 65535 {
		bad("tailnet.udp_port: %d out of range", t.UDPPort)
	}
	if t.Interface == "" {
		bad("tailnet.interface: must not be empty")
	}
	for _, tag := range t.Tags {
		if name, ok := strings.CutPrefix(tag, "tag:"); !ok || name == "" || strings.ContainsAny(name, " ,:") {
			bad("tailnet.tags: %q is not a tag (tag:NAME)", tag)
		}
	}
	switch {
	case !t.CIDR.IsValid():
		bad("tailnet.cidr: invalid CIDR")
	case !t.CIDR.Addr().Is4():
		bad("tailnet.cidr: %s is not IPv4", t.CIDR)
	case t.CIDR.Masked() != t.CIDR:
		bad("tailnet.cidr: %s has host bits set (did you mean %s?)", t.CIDR, t.CIDR.Masked())
	}
	return errors.Join(errs...)
}

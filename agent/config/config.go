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
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole agent configuration. Zero values mean "discover" or "default".
type Config struct {
	Cluster          string         `yaml:"cluster"`          // default: the instance's headnat:cluster tag
	Listen           string         `yaml:"listen"`           // /healthz, /status, /metrics
	PeerPort         int            `yaml:"peer_port"`        // port peers serve /healthz on
	EgressInterface  string         `yaml:"egress_interface"` // default: from the default route
	VPCCIDRs         []netip.Prefix `yaml:"vpc_cidrs"`        // default: from IMDS
	ExtraSourceCIDRs []netip.Prefix `yaml:"extra_source_cidrs"`
	RouteTables      []string       `yaml:"route_tables"` // default: every table tagged with the cluster
	FailbackAfter    time.Duration  `yaml:"failback_after"`
	Probe            Probe          `yaml:"probe"`
	Egress           Egress         `yaml:"egress"`
	Conntrack        Conntrack      `yaml:"conntrack"`
	AWS              AWS            `yaml:"aws"`
	StatePath        string         `yaml:"state_path"`
	DryRun           bool           `yaml:"dry_run"`
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

// Egress is the own-egress check: at least K of Targets must answer.
type Egress struct {
	// Targets are "tcp://host:port" or "http(s)://..." URLs.
	Targets []string `yaml:"targets"`
	K       int      `yaml:"k"`
}

// Conntrack sizes the connection-tracking table; zero means sized to memory / defaults.
type Conntrack struct {
	Max                   int           `yaml:"max"`
	TCPEstablishedTimeout time.Duration `yaml:"tcp_established_timeout"`
	UDPTimeout            time.Duration `yaml:"udp_timeout"`
	UDPStreamTimeout      time.Duration `yaml:"udp_stream_timeout"`
}

// AWS endpoints are empty on AWS; the lab points them at its simulator.
type AWS struct {
	Region              string `yaml:"region"`
	EC2Endpoint         string `yaml:"ec2_endpoint"`
	AutoScalingEndpoint string `yaml:"autoscaling_endpoint"`
	IMDSEndpoint        string `yaml:"imds_endpoint"`
}

// Default returns the configuration an untouched tagged instance runs with.
func Default() Config {
	return Config{
		Listen:        ":7070",
		PeerPort:      7070,
		FailbackAfter: 60 * time.Second,
		Probe:         Probe{Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Rise: 3, Fall: 3, RestartGrace: 10 * time.Second},
		Egress:        Egress{K: 1},
		StatePath:     "/run/headnat/dataplane.json",
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

// key is one setting reachable from the environment and the command line.
type key struct {
	name string // dotted YAML path; env HEADNAT_<NAME>, flag --<name with dashes>
	help string
	set  func(*Config, string) error
}

func keys() []key {
	dur := func(p func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return err
			}
			*p(c) = d
			return nil
		}
	}
	num := func(p func(*Config) *int) func(*Config, string) error {
		return func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			*p(c) = n
			return nil
		}
	}
	str := func(p func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = v; return nil }
	}
	cidrs := func(p func(*Config) *[]netip.Prefix) func(*Config, string) error {
		return func(c *Config, v string) error {
			ps, err := ParseCIDRs(v)
			if err != nil {
				return err
			}
			*p(c) = ps
			return nil
		}
	}
	list := func(p func(*Config) *[]string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = splitList(v); return nil }
	}
	return []key{
		{"cluster", "cluster name (default: the instance's headnat:cluster tag)", str(func(c *Config) *string { return &c.Cluster })},
		{"listen", "address for /healthz, /status and /metrics", str(func(c *Config) *string { return &c.Listen })},
		{"peer_port", "port peers serve /healthz on", num(func(c *Config) *int { return &c.PeerPort })},
		{"egress_interface", "egress interface (default: from the default route)", str(func(c *Config) *string { return &c.EgressInterface })},
		{"vpc_cidrs", "comma-separated VPC CIDRs to NAT (default: from IMDS)", cidrs(func(c *Config) *[]netip.Prefix { return &c.VPCCIDRs })},
		{"extra_source_cidrs", "comma-separated extra source CIDRs to NAT", cidrs(func(c *Config) *[]netip.Prefix { return &c.ExtraSourceCIDRs })},
		{"route_tables", "comma-separated route table ids to manage (default: tagged ones)", list(func(c *Config) *[]string { return &c.RouteTables })},
		{"failback_after", "how long the home-AZ instance must be healthy before taking its tables back", dur(func(c *Config) *time.Duration { return &c.FailbackAfter })},
		{"probe.interval", "probe interval", dur(func(c *Config) *time.Duration { return &c.Probe.Interval })},
		{"probe.timeout", "probe timeout", dur(func(c *Config) *time.Duration { return &c.Probe.Timeout })},
		{"probe.rise", "consecutive passes before healthy", num(func(c *Config) *int { return &c.Probe.Rise })},
		{"probe.fall", "consecutive failures before unhealthy", num(func(c *Config) *int { return &c.Probe.Fall })},
		{"probe.restart_grace", "how long a peer whose agent is down but whose host answers keeps its tables", dur(func(c *Config) *time.Duration { return &c.Probe.RestartGrace })},
		{"egress.targets", "comma-separated egress probe targets (tcp://host:port, http://...)", list(func(c *Config) *[]string { return &c.Egress.Targets })},
		{"egress.k", "egress probes that must pass", num(func(c *Config) *int { return &c.Egress.K })},
		{"conntrack.max", "conntrack table size (0: sized to memory)", num(func(c *Config) *int { return &c.Conntrack.Max })},
		{"aws.region", "AWS region (default: from IMDS)", str(func(c *Config) *string { return &c.AWS.Region })},
		{"aws.ec2_endpoint", "EC2 endpoint URL (default: AWS)", str(func(c *Config) *string { return &c.AWS.EC2Endpoint })},
		{"aws.autoscaling_endpoint", "Auto Scaling endpoint URL (default: AWS)", str(func(c *Config) *string { return &c.AWS.AutoScalingEndpoint })},
		{"aws.imds_endpoint", "IMDS endpoint URL (default: 169.254.169.254)", str(func(c *Config) *string { return &c.AWS.IMDSEndpoint })},
		{"state_path", "where the data plane records the sysctls it replaced", str(func(c *Config) *string { return &c.StatePath })},
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
	known := map[string]key{}
	for _, k := range keys() {
		known[envName(k.name)] = k
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

// Flags registers one flag per setting on fs. After fs.Parse, call the returned function to
// apply the flags that were given onto cfg.
func Flags(fs *flag.FlagSet) func(cfg *Config) error {
	vals := map[string]*string{}
	byFlag := map[string]key{}
	for _, k := range keys() {
		n := flagName(k.name)
		vals[n] = fs.String(n, "", k.help)
		byFlag[n] = k
	}
	return func(cfg *Config) error {
		var err error
		fs.Visit(func(f *flag.Flag) {
			k, ok := byFlag[f.Name]
			if !ok || err != nil {
				return
			}
			if e := k.set(cfg, *vals[f.Name]); e != nil {
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
	for _, id := range c.RouteTables {
		if !strings.HasPrefix(id, "rtb-") {
			bad("route_tables: %q is not a route table id (rtb-...)", id)
		}
	}
	if c.FailbackAfter < 0 {
		bad("failback_after: must not be negative")
	}
	if c.Probe.Interval <= 0 {
		bad("probe.interval: must be positive")
	}
	if c.Probe.Timeout <= 0 {
		bad("probe.timeout: must be positive")
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
		if !strings.HasPrefix(t, "tcp://") && !strings.HasPrefix(t, "http://") && !strings.HasPrefix(t, "https://") {
			bad("egress.targets: %q must start with tcp://, http:// or https://", t)
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
	return errors.Join(errs...)
}

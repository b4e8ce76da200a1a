// Package platform reads and checks the platform stack's YAML config: the services, their
// images, sizes, routes and secrets, the certificates, and the optional shared database. Every
// problem is one line; a file that fails Load builds nothing.
package platform

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Defaults and bounds of the config.
const (
	DefaultLogRetentionDays = 14
	DefaultEcrKeepLast      = 10
	DefaultDesiredCount     = 1
	DefaultHealthCheckPath  = "/"
	DefaultMinACU           = 0.0 // Aurora PostgreSQL 16.3+ pauses at 0 ACU
	DefaultMaxACU           = 2.0
	MaxACUCap               = 16.0 // a yearly event's database needs far less; raise it here on purpose
	MaxEcrKeepLast          = 1000
	MaxRuleValues           = 5 // an ALB rule takes at most 5 host and path values together
)

// Capacity values of a service.
const (
	CapacitySpot     = "spot"
	CapacityOnDemand = "on-demand"
)

// ImageECR as a service's image (or "ecr:TAG") is a repository the stack creates for it.
const ImageECR = "ecr"

// Config is the whole file.
type Config struct {
	Certificates     []Certificate `yaml:"certificates"`
	LogRetentionDays int           `yaml:"log-retention-days"`
	EcrKeepLast      int           `yaml:"ecr-keep-last"`
	Database         *Database     `yaml:"database"`
	Services         []Service     `yaml:"services"`
}

// Certificate is an ACM certificate and the names it covers (as in ACM: "*.example.org"
// covers one label).
type Certificate struct {
	ARN     string   `yaml:"arn"`
	Domains []string `yaml:"domains"`
}

// Database is the shared Aurora PostgreSQL Serverless v2 cluster.
type Database struct {
	MinACU *float64 `yaml:"min-acu"`
	MaxACU *float64 `yaml:"max-acu"`
}

// Service is one web service behind the shared load balancer.
type Service struct {
	Name            string            `yaml:"name"`
	Image           string            `yaml:"image"`
	CPU             int               `yaml:"cpu"`
	Memory          int               `yaml:"memory"`
	Port            int               `yaml:"port"`
	Hosts           []string          `yaml:"hosts"`
	Paths           []string          `yaml:"paths"`
	DesiredCount    *int              `yaml:"desired-count"`
	Environment     map[string]string `yaml:"environment"`
	Secrets         map[string]string `yaml:"secrets"`
	HealthCheckPath string            `yaml:"health-check-path"`
	Capacity        string            `yaml:"capacity"`
	OnDemandBase    int               `yaml:"on-demand-base"`
	// DatabaseName is its database on the shared cluster (default: the name, - as _).
	DatabaseName string `yaml:"database-name"`
}

// Load reads, defaults and checks the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("platform config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("platform config %s: %w", path, err)
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): field (\S+) not found in type`)

// Parse decodes data strictly (an unknown key is an error with its line), fills the defaults
// and validates.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("empty file: want services")
		}
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			if m := yamlLine.FindStringSubmatch(te.Errors[0]); m != nil {
				return nil, fmt.Errorf("line %s: unknown key %q", m[1], m[2])
			}
			return nil, fmt.Errorf("%s", strings.TrimSpace(te.Errors[0]))
		}
		return nil, fmt.Errorf("not YAML: %s", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("want one YAML document")
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if c.LogRetentionDays == 0 {
		c.LogRetentionDays = DefaultLogRetentionDays
	}
	if c.EcrKeepLast == 0 {
		c.EcrKeepLast = DefaultEcrKeepLast
	}
	if d := c.Database; d != nil {
		if d.MinACU == nil {
			d.MinACU = ptr(DefaultMinACU)
		}
		if d.MaxACU == nil {
			d.MaxACU = ptr(DefaultMaxACU)
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		if s.DesiredCount == nil {
			s.DesiredCount = ptr(DefaultDesiredCount)
		}
		if s.HealthCheckPath == "" {
			s.HealthCheckPath = DefaultHealthCheckPath
		}
		if s.Capacity == "" {
			s.Capacity = CapacitySpot
		}
		if s.DatabaseName == "" {
			s.DatabaseName = strings.ReplaceAll(s.Name, "-", "_")
		}
	}
}

func ptr[T any](v T) *T { return &v }

// LogRetentions are CloudWatch's accepted retentions, up to the 400 days headnat.guard allows.
var LogRetentions = []int{1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400}

var (
	serviceName = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$`)
	dbName      = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	envName     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hostName    = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	pathPattern = regexp.MustCompile(`^/[A-Za-z0-9_\-.$/~"'@:+?*&=%]{0,127}$`)
	certARN     = regexp.MustCompile(`^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[A-Za-z0-9-]+$`)
	ecrImage    = regexp.MustCompile(`^ecr(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?$`)
	imageRef    = regexp.MustCompile(`^[a-z0-9]+([._/:-][a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
	ssmRef      = regexp.MustCompile(`^ssm:/?[A-Za-z0-9_.\-/]+$`)
	smARN       = regexp.MustCompile(`^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$`)
	smName      = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]+$`)
)

// Validate returns the first problem, one line.
func (c *Config) Validate() error {
	if len(c.Services) == 0 {
		return fmt.Errorf("services: want at least one")
	}
	if !slices.Contains(LogRetentions, c.LogRetentionDays) {
		return fmt.Errorf("log-retention-days %d: want one of %v", c.LogRetentionDays, LogRetentions)
	}
	if c.EcrKeepLast < 1 || c.EcrKeepLast > MaxEcrKeepLast {
		return fmt.Errorf("ecr-keep-last %d: want 1 to %d", c.EcrKeepLast, MaxEcrKeepLast)
	}
	for i, cert := range c.Certificates {
		if !certARN.MatchString(cert.ARN) {
			return fmt.Errorf("certificates[%d]: arn %q: want an ACM certificate ARN", i, cert.ARN)
		}
		if len(cert.Domains) == 0 {
			return fmt.Errorf("certificates[%d]: domains: list the names the certificate covers", i)
		}
		for _, d := range cert.Domains {
			if !hostName.MatchString(d) {
				return fmt.Errorf("certificates[%d]: domain %q: want a DNS name (lower case), optionally *.", i, d)
			}
		}
	}
	if d := c.Database; d != nil {
		minACU, maxACU := *d.MinACU, *d.MaxACU
		switch {
		case minACU < 0 || !halfStep(minACU):
			return fmt.Errorf("database: min-acu %g: want 0 or more in steps of 0.5", minACU)
		case maxACU < 1 || !halfStep(maxACU) || maxACU > MaxACUCap:
			return fmt.Errorf("database: max-acu %g: want 1 to %g in steps of 0.5 (the cost cap)", maxACU, MaxACUCap)
		case minACU > maxACU:
			return fmt.Errorf("database: min-acu %g is above max-acu %g", minACU, maxACU)
		}
	}
	names := map[string]bool{}
	dbs := map[string]string{}
	for i := range c.Services {
		s := &c.Services[i]
		if err := c.validateService(s); err != nil {
			return fmt.Errorf("services[%d] %q: %w", i, s.Name, err)
		}
		if names[s.Name] {
			return fmt.Errorf("services[%d]: duplicate name %q", i, s.Name)
		}
		names[s.Name] = true
		if c.Database != nil {
			if other, ok := dbs[s.DatabaseName]; ok {
				return fmt.Errorf("services[%d] %q: database-name %q is also %q's", i, s.Name, s.DatabaseName, other)
			}
			dbs[s.DatabaseName] = s.Name
		}
	}
	return c.checkRules()
}

func halfStep(x float64) bool { return x*2 == float64(int(x*2)) }

func (c *Config) validateService(s *Service) error {
	if !serviceName.MatchString(s.Name) {
		return fmt.Errorf("name: want 1-32 of a-z, 0-9 and -, starting with a letter")
	}
	if !ecrImage.MatchString(s.Image) && !imageRef.MatchString(s.Image) {
		return fmt.Errorf("image %q: want %q or %q (a repository the stack creates) or a public image reference", s.Image, ImageECR, ImageECR+":TAG")
	}
	if err := checkFargateSize(s.CPU, s.Memory); err != nil {
		return err
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("port %d: want 1 to 65535", s.Port)
	}
	if len(s.Hosts)+len(s.Paths) == 0 {
		return fmt.Errorf("no hosts and no paths: the load balancer needs one to route to it")
	}
	if n := len(s.Hosts) + len(s.Paths); n > MaxRuleValues {
		return fmt.Errorf("%d hosts and paths: an ALB rule takes at most %d", n, MaxRuleValues)
	}
	for _, h := range s.Hosts {
		if !hostName.MatchString(h) {
			return fmt.Errorf("host %q: want a DNS name (lower case), optionally *.", h)
		}
		if len(c.Certificates) > 0 && !c.covered(h) {
			return fmt.Errorf("host %q: no certificate covers it (HTTPS is on: list it in a certificate's domains)", h)
		}
	}
	for _, p := range s.Paths {
		if !pathPattern.MatchString(p) {
			return fmt.Errorf("path %q: want a path pattern starting with / (at most 128 characters)", p)
		}
	}
	if *s.DesiredCount < 0 {
		return fmt.Errorf("desired-count %d: want 0 or more", *s.DesiredCount)
	}
	if !strings.HasPrefix(s.HealthCheckPath, "/") {
		return fmt.Errorf("health-check-path %q: want a path starting with /", s.HealthCheckPath)
	}
	switch s.Capacity {
	case CapacitySpot, CapacityOnDemand:
	default:
		return fmt.Errorf("capacity %q: want %s or %s", s.Capacity, CapacitySpot, CapacityOnDemand)
	}
	if s.OnDemandBase < 0 {
		return fmt.Errorf("on-demand-base %d: want 0 or more", s.OnDemandBase)
	}
	if s.OnDemandBase > 0 && s.Capacity == CapacityOnDemand {
		return fmt.Errorf("on-demand-base is for spot services (capacity %s runs every task on demand)", CapacityOnDemand)
	}
	for _, k := range sortedKeys(s.Environment) {
		if !envName.MatchString(k) {
			return fmt.Errorf("environment %q: want a variable name", k)
		}
	}
	for _, k := range sortedKeys(s.Secrets) {
		if !envName.MatchString(k) {
			return fmt.Errorf("secrets %q: want a variable name", k)
		}
		if _, dup := s.Environment[k]; dup {
			return fmt.Errorf("%q is both in environment and in secrets", k)
		}
		if _, err := ParseSecretRef(s.Secrets[k]); err != nil {
			return fmt.Errorf("secrets %s: %w", k, err)
		}
	}
	if c.Database != nil {
		if !dbName.MatchString(s.DatabaseName) {
			return fmt.Errorf("database-name %q: want a PostgreSQL name (a-z, 0-9, _)", s.DatabaseName)
		}
		for _, k := range DatabaseEnv {
			_, e := s.Environment[k]
			_, sec := s.Secrets[k]
			if e || sec {
				return fmt.Errorf("%s is set by the stack (the shared database)", k)
			}
		}
	} else if s.DatabaseName != strings.ReplaceAll(s.Name, "-", "_") {
		return fmt.Errorf("database-name needs a database section")
	}
	return nil
}

// DatabaseEnv are the variables the stack gives a service when there is a database.
var DatabaseEnv = []string{"PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD"}

// fargateSizes are the task sizes Fargate accepts: cpu -> memory from, to, step (MiB).
var fargateSizes = map[int][3]int{
	256:   {512, 2048, 0}, // 512, 1024, 2048
	512:   {1024, 4096, 1024},
	1024:  {2048, 8192, 1024},
	2048:  {4096, 16384, 1024},
	4096:  {8192, 30720, 1024},
	8192:  {16384, 61440, 4096},
	16384: {32768, 122880, 8192},
}

func checkFargateSize(cpu, memory int) error {
	r, ok := fargateSizes[cpu]
	if !ok {
		return fmt.Errorf("cpu %d: Fargate takes 256, 512, 1024, 2048, 4096, 8192 or 16384", cpu)
	}
	if cpu == 256 {
		if memory == 512 || memory == 1024 || memory == 2048 {
			return nil
		}
		return fmt.Errorf("cpu 256 with memory %d: Fargate takes 512, 1024 or 2048", memory)
	}
	if memory < r[0] || memory > r[1] || (memory-r[0])%r[2] != 0 {
		return fmt.Errorf("cpu %d with memory %d: Fargate takes %d to %d in steps of %d", cpu, memory, r[0], r[1], r[2])
	}
	return nil
}

// covered: a certificate domain names h exactly, or is *.parent and h is one label under it.
func (c *Config) covered(h string) bool {
	for _, cert := range c.Certificates {
		for _, d := range cert.Domains {
			if d == h {
				return true
			}
			if strings.HasPrefix(d, "*.") && !strings.HasPrefix(h, "*.") {
				if i := strings.Index(h, "."); i > 0 && h[i:] == d[1:] {
					return true
				}
			}
		}
	}
	return false
}

// checkRules: no two services match the same host and path (a service without hosts matches
// any host, one without paths any path).
func (c *Config) checkRules() error {
	seen := map[[2]string]string{}
	for _, s := range c.Services {
		hosts, paths := s.Hosts, s.Paths
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		if len(paths) == 0 {
			paths = []string{""}
		}
		for _, h := range hosts {
			for _, p := range paths {
				k := [2]string{h, p}
				if other, ok := seen[k]; ok {
					return fmt.Errorf("services %q and %q: duplicate rule (host %s, path %s)", other, s.Name, orAny(h), orAny(p))
				}
				seen[k] = s.Name
			}
		}
	}
	return nil
}

func orAny(s string) string {
	if s == "" {
		return "any"
	}
	return fmt.Sprintf("%q", s)
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// SortedKeys returns m's keys in order (the stack's resources are built in that order).
func SortedKeys(m map[string]string) []string { return sortedKeys(m) }

// SecretRef is a parsed secret reference.
type SecretRef struct {
	// SSMParameter is set for ssm:NAME (a SecureString or String parameter).
	SSMParameter string
	// SecretARN or SecretName is set for secretsmanager:ARN-OR-NAME; JSONKey picks one field.
	SecretARN, SecretName, JSONKey string
}

// ParseSecretRef reads "ssm:/name" or "secretsmanager:arn-or-name[:json-key]".
func ParseSecretRef(ref string) (SecretRef, error) {
	switch {
	case strings.HasPrefix(ref, "ssm:"):
		if !ssmRef.MatchString(ref) {
			return SecretRef{}, fmt.Errorf("%q: want ssm:/parameter-name", ref)
		}
		name := strings.TrimPrefix(ref, "ssm:")
		return SecretRef{SSMParameter: name}, nil
	case strings.HasSuffix(ref, ":"):
		return SecretRef{}, fmt.Errorf("%q: empty json key", ref)
	case strings.HasPrefix(ref, "secretsmanager:"):
		rest := strings.TrimPrefix(ref, "secretsmanager:")
		var r SecretRef
		if strings.HasPrefix(rest, "arn:") {
			parts := strings.SplitN(rest, ":", 8)
			if len(parts) == 8 {
				r.JSONKey = parts[7]
				parts = parts[:7]
			}
			r.SecretARN = strings.Join(parts, ":")
			if !smARN.MatchString(r.SecretARN) {
				return SecretRef{}, fmt.Errorf("%q: want secretsmanager:arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key]", ref)
			}
		} else {
			r.SecretName, r.JSONKey, _ = strings.Cut(rest, ":")
			if !smName.MatchString(r.SecretName) {
				return SecretRef{}, fmt.Errorf("%q: want secretsmanager:NAME[:json-key]", ref)
			}
		}
		return r, nil
	}
	return SecretRef{}, fmt.Errorf("%q: want a reference, ssm:/name or secretsmanager:arn-or-name[:json-key], never a value", ref)
}

// ECRTag is the tag a service with an "ecr" image runs, and whether its image is one.
func (s *Service) ECRTag() (tag string, ok bool) {
	if !ecrImage.MatchString(s.Image) {
		return "", false
	}
	if _, t, found := strings.Cut(s.Image, ":"); found {
		return t, true
	}
	return "latest", true
}

// RulePriorities gives each service its listener rule priority: rules with paths (the more
// specific) first, then by name; 10 apart. Adding a service may renumber the others, which
// CloudFormation updates in place.
func (c *Config) RulePriorities() map[string]int {
	order := make([]Service, len(c.Services))
	copy(order, c.Services)
	sort.SliceStable(order, func(i, j int) bool {
		pi, pj := len(order[i].Paths) > 0, len(order[j].Paths) > 0
		if pi != pj {
			return pi
		}
		return order[i].Name < order[j].Name
	})
	out := map[string]int{}
	for i, s := range order {
		out[s.Name] = (i + 1) * 10
	}
	return out
}

package config

import (
	"flag"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/health"
)

func TestParseFileEnvFlagsOverrideInOrder(t *testing.T) {
	cfg := Default()
	err := Parse(strings.NewReader(`
cluster: conf
failback_after: 30s
vpc_cidrs: [198.18.0.0/16]
probe: {interval: 100ms, timeout: 80ms}
`), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(&cfg, []string{"HEADNAT_FAILBACK_AFTER=45s", "PATH=/bin", "HEADNAT_PROBE_FALL=5"}); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	apply := Flags(fs)
	if err := fs.Parse([]string{"--failback-after=90s", "--vpc-cidrs=198.18.0.0/16,198.19.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	if err := apply(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster != "conf" || cfg.FailbackAfter != 90*time.Second || cfg.Probe.Fall != 5 ||
		cfg.Probe.Interval != 100*time.Millisecond || cfg.Probe.Rise != 3 {
		t.Fatalf("unexpected config: %+v", cfg)
	}
	if len(cfg.VPCCIDRs) != 2 || cfg.VPCCIDRs[1] != netip.MustParsePrefix("198.19.0.0/16") {
		t.Fatalf("vpc_cidrs = %v", cfg.VPCCIDRs)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInputIsOneClearError(t *testing.T) {
	cases := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"unknown key", "clustr: x\n", nil, "field clustr not found"},
		{"invalid cidr", "vpc_cidrs: [198.18.0.0/33]\n", nil, "198.18.0.0/33"},
		{"host bits", "vpc_cidrs: [198.18.0.1/16]\n", nil, "host bits"},
		{"ipv6", "vpc_cidrs: ['2001:db8::/32']\n", nil, "not IPv4"},
		{"bad duration", "failback_after: soon\n", nil, "soon"},
		{"unknown env", "", []string{"HEADNAT_FAILBAK_AFTER=1s"}, "HEADNAT_FAILBAK_AFTER"},
		{"env cidr", "", []string{"HEADNAT_VPC_CIDRS=10.0.0.0/8,nope"}, `invalid CIDR "nope"`},
		{"route table", "route_tables: [subnet-1]\n", nil, "not a route table id"},
		{"zero interval", "probe: {interval: 0s}\n", nil, "probe.interval"},
		{"k too big", "egress: {targets: ['tcp://203.0.113.1:80'], k: 2}\n", nil, "egress.k"},
		{"target scheme", "egress: {targets: ['203.0.113.1:80']}\n", nil, "must start with"},
		{"tcp target without port", "egress: {targets: ['tcp://203.0.113.1']}\n", nil, "tcp://host:port"},
		{"probe timeout not below interval", "probe: {interval: 200ms, timeout: 200ms}\n", nil, "must be shorter than probe.interval"},
		{"egress timeout not below interval", "egress: {interval: 1s, timeout: 2s}\n", nil, "must be shorter than egress.interval"},
		{"zero refresh", "", []string{"HEADNAT_REFRESH=0s"}, "refresh: must be positive"},
		{"bad bool", "", []string{"HEADNAT_DRY_RUN=maybe"}, "not a boolean"},
		{"tailnet without key", "tailnet: {login_server: 'http://203.0.113.5:8080'}\n", nil, "auth_key_ssm_parameter or tailnet.auth_key_file"},
		{"tailnet with two keys", "tailnet: {login_server: 'http://203.0.113.5:8080', auth_key_file: /k, auth_key_ssm_parameter: /p}\n", nil, "only one of"},
		{"tailnet url", "tailnet: {login_server: '203.0.113.5:8080', auth_key_file: /k}\n", nil, "not an http(s) URL"},
		{"tailnet tag", "tailnet: {login_server: 'http://203.0.113.5', auth_key_file: /k, tags: [nat]}\n", nil, `"nat" is not a tag`},
		{"tailnet cidr", "", []string{"HEADNAT_TAILNET_LOGIN_SERVER=http://203.0.113.5", "HEADNAT_TAILNET_AUTH_KEY_FILE=/k", "HEADNAT_TAILNET_CIDR=100.64.0.1/10"}, "host bits"},
		{"tailnet route", "tailnet: {extra_routes: [198.19.0.1/16]}\n", nil, "host bits"},
		{"tailnet ssh yaml", "tailnet: {ssh: maybe}\n", nil, "cannot unmarshal"},
		{"tailnet ssh env", "", []string{"HEADNAT_TAILNET_SSH=maybe"}, `HEADNAT_TAILNET_SSH: not a boolean: "maybe"`},
		{"cloudwatch reserved namespace", "cloudwatch: {namespace: AWS/NATGateway}\n", nil, "cloudwatch.namespace: \"AWS/NATGateway\": namespaces starting with AWS/ are reserved"},
		{"cloudwatch namespace colon", "", []string{"HEADNAT_CLOUDWATCH_NAMESPACE=:x"}, "must not start with"},
		{"cloudwatch namespace control", "cloudwatch: {namespace: \"a\\tb\"}\n", nil, "only printable ASCII"},
		{"cloudwatch namespace non-ascii", "cloudwatch: {namespace: \"héadnat\"}\n", nil, "only printable ASCII"},
		{"cloudwatch namespace too long", "cloudwatch: {namespace: " + strings.Repeat("n", 256) + "}\n", nil, "256 characters, at most 255"},
		{"cloudwatch interval", "cloudwatch: {namespace: headnat, interval: 5s}\n", nil, "cloudwatch.interval: 5s is shorter than 10s"},
		{"cloudwatch interval zero", "", []string{"HEADNAT_CLOUDWATCH_INTERVAL=0s"}, "cloudwatch.interval: 0s is shorter"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			err := Parse(strings.NewReader(tc.yaml), &cfg)
			if err == nil {
				err = ApplyEnv(&cfg, tc.env)
			}
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// tailnet.ssh is on by default and off with false, from YAML or the environment.
func TestTailnetSSH(t *testing.T) {
	if !Default().Tailnet.SSH {
		t.Fatal("tailnet.ssh is off by default")
	}
	cfg := Default()
	if err := Parse(strings.NewReader("tailnet: {login_server: 'http://203.0.113.5', auth_key_file: /k, ssh: false}\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Tailnet.SSH || cfg.Validate() != nil {
		t.Errorf("ssh: false gave SSH %v (validate %v)", cfg.Tailnet.SSH, cfg.Validate())
	}
	if err := ApplyEnv(&cfg, []string{"HEADNAT_TAILNET_SSH=true"}); err != nil || !cfg.Tailnet.SSH {
		t.Errorf("HEADNAT_TAILNET_SSH=true gave SSH %v, %v", cfg.Tailnet.SSH, err)
	}
}

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.CloudWatch.Namespace != "" || cfg.CloudWatch.Interval != api.MetricPeriodSeconds*time.Second {
		t.Errorf("cloudwatch defaults %+v: want off, every %ds", cfg.CloudWatch, api.MetricPeriodSeconds)
	}
}

// GIVEN namespaces CloudWatch accepts WHEN validated THEN they pass, at the edges too.
func TestCloudWatchGoodValues(t *testing.T) {
	for _, ns := range []string{api.DefaultMetricNamespace, "headnat/prod", "my team's NAT #1: a.b-c_d", strings.Repeat("n", 255)} {
		cfg := Default()
		cfg.CloudWatch = CloudWatch{Namespace: ns, Interval: MinCloudWatchInterval}
		if err := cfg.Validate(); err != nil {
			t.Errorf("namespace %q: %v", ns, err)
		}
	}
}

// The default schedules must be valid for agent/health, and peers must be declared dead early
// enough to leave time for the route write within 1s (arithmetic on the schedule).
func TestDefaultSchedules(t *testing.T) {
	cfg := Default()
	for name, h := range map[string]health.Config{"peer": cfg.Probe.Health(), "self": cfg.SelfHealth()} {
		if err := h.Validate(); err != nil {
			t.Errorf("%s defaults invalid: %v", name, err)
		}
	}
	if b := cfg.Probe.Health().DetectionBound(); b > 800*time.Millisecond {
		t.Errorf("default peer detection bound %v leaves no room for the route write", b)
	}
}

// Every setting is a YAML key, an environment variable and a flag, and all three set the same
// field to the same value; the flag's help shows the default.
func TestEverySettingThreeWays(t *testing.T) {
	samples := map[string]string{
		"duration": "1234ms", "int": "7", "bool": "true", "string": "x-value",
		"CIDR[,CIDR...]": "198.18.0.0/16,198.19.0.0/16", "rtb-ID[,rtb-ID...]": "rtb-1,rtb-2",
		"URL[,URL...]":           "tcp://203.0.113.1:80,http://203.0.113.2/",
		"tag:NAME[,tag:NAME...]": "tag:a,tag:b", "CIDR": "198.19.0.0/16",
	}
	seen := map[string]bool{}
	for _, k := range Keys() {
		t.Run(k.Name, func(t *testing.T) {
			v, ok := samples[k.Type]
			if !ok {
				t.Fatalf("no sample for type %q", k.Type)
			}
			if k.Type == "bool" && k.Value(Default()) == "true" {
				v = "false"
			}
			if seen[k.Flag()] || seen[k.Env()] {
				t.Fatalf("flag or env of %s used twice", k.Name)
			}
			seen[k.Flag()], seen[k.Env()] = true, true

			fromEnv := Default()
			if err := ApplyEnv(&fromEnv, []string{k.Env() + "=" + v}); err != nil {
				t.Fatal(err)
			}
			fromFlag := Default()
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			apply := Flags(fs)
			if err := fs.Parse([]string{"--" + k.Flag() + "=" + v}); err != nil {
				t.Fatal(err)
			}
			if err := apply(&fromFlag); err != nil {
				t.Fatal(err)
			}
			fromYAML := Default()
			if err := Parse(strings.NewReader(yamlFor(k.Name, k.Type, v)), &fromYAML); err != nil {
				t.Fatal(err)
			}
			if k.Value(fromEnv) != v && k.Type != "duration" {
				t.Errorf("env set %s to %q, want %q", k.Name, k.Value(fromEnv), v)
			}
			if k.Value(fromEnv) == k.Value(Default()) {
				t.Errorf("env did not change %s", k.Name)
			}
			if !reflect.DeepEqual(fromEnv, fromFlag) || !reflect.DeepEqual(fromEnv, fromYAML) {
				t.Errorf("env, flag and YAML disagree:\nenv  %+v\nflag %+v\nyaml %+v", fromEnv, fromFlag, fromYAML)
			}
			if f := fs.Lookup(k.Flag()); f == nil || f.DefValue != k.Value(Default()) {
				t.Errorf("flag default %v, want %q", f, k.Value(Default()))
			}
		})
	}
}

// yamlFor writes one dotted key as nested YAML.
func yamlFor(name, typ, v string) string {
	parts := strings.Split(name, ".")
	val := v
	if strings.Contains(typ, ",") {
		val = "[" + v + "]"
	}
	if typ == "string" {
		val = strconv.Quote(v)
	}
	if len(parts) == 1 {
		return parts[0] + ": " + val + "\n"
	}
	return parts[0] + ":\n  " + parts[1] + ": " + val + "\n"
}

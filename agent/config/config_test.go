package config

import (
	"flag"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseFileEnvFlagsOverrideInOrder(t *testing.T) {
	cfg := Default()
	err := Parse(strings.NewReader(`
cluster: conf
failback_after: 30s
vpc_cidrs: [198.18.0.0/16]
probe: {interval: 100ms}
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

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

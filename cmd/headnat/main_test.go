package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/dataplane"
)

func TestMain(m *testing.M) {
	// No test of this package may touch the host's iptables or sysctls.
	newHostDataplane = func(*slog.Logger) (*dataplane.Dataplane, error) {
		return nil, errors.New("test reached the host's data plane")
	}
	os.Exit(m.Run())
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = dispatch(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestDispatchExitCodes(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, 2, "usage: headnat"},
		{[]string{"nope"}, 2, `unknown command "nope"`},
		{[]string{"version", "x"}, 2, "takes no arguments"},
		{[]string{"dataplane"}, 2, "missing action"},
		{[]string{"dataplane", "frob"}, 2, `unknown action "frob"`},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/33"}, 2, "not a CIDR: prefix length out of range"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "banana"}, 2, "not a CIDR"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16,"}, 2, "empty CIDR"},
		{[]string{"dataplane", "apply", "--bogus"}, 2, "unknown flag --bogus"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"dataplane", "verify", "--dry-run", "--vpc-cidr", "198.18.0.0/16"}, 2, "--dry-run is only for apply"},
		{[]string{"dataplane", "apply", "--vpc-cidr"}, 2, "flag needs an argument: --vpc-cidr"},
		{[]string{"dataplane", "apply", "--agent-port", "x"}, 2, `invalid value "x" for flag --agent-port`},
		{[]string{"dataplane", "apply"}, 2, "no VPC CIDR given"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.1/16"}, 2, "host bits set"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16", "--udp-timeout", "-1s"}, 2, "UDP timeout"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16", "--agent-port", "70000"}, 2, "agent port 70000 out of range"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16", "--agent-port", "0", "--agent-source-cidr", "100.64.0.0/10"}, 2, "without an agent port"},
		{[]string{"dataplane", "verify", "--vpc-cidr", "198.18.0.0/16", "--egress-interface", "eth+"}, 2, "not a valid interface name"},
		{[]string{"dataplane", "remove", "--vpc-cidr", "198.18.0.0/16"}, 2, "--vpc-cidr is not a flag of remove (remove takes only --state-path)"},
		{[]string{"dataplane", "remove", "--state-path", "rel.json"}, 2, "not absolute"},
		{[]string{"policy"}, 2, "no VPC CIDRs"},
		{[]string{"policy", "--vpc-cidr", "198.18.0.1/16"}, 2, "host bits set"},
		{[]string{"policy", "--vpc-cidr", "198.18.0.0/16", "--nat-tag", "nat"}, 2, "nat"},
		// Past the command line, the host's data plane is reached (refused by TestMain):
		// apply fails with 1, verify cannot inspect the host, 3.
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16"}, 1, "test reached the host's data plane"},
		{[]string{"dataplane", "verify", "--vpc-cidr", "198.18.0.0/16"}, 3, "verify: could not inspect the host: test reached"},
	} {
		code, _, stderr := run(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q", tt.args, code, stderr, tt.code, tt.stderr)
		}
		if tt.code != 0 && len(tt.args) > 0 && strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: stderr is not one line: %q", tt.args, stderr)
		}
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := run(t, "version"); code != 0 || out != version+"\n" {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, out, _ := run(t, "help"); code != 0 || !strings.Contains(out, "dataplane") {
		t.Fatalf("help: %d %q", code, out)
	}
	code, out, _ := run(t, "dataplane", "apply", "-h")
	if code != 0 {
		t.Fatalf("dataplane -h: exit %d", code)
	}
	for _, w := range []string{"--vpc-cidr CIDR[,CIDR...]", "--agent-port PORT", "(default 7070)", "--state-path PATH",
		"--keep-jump-position", "flags of remove:\n  --state-path PATH", "3  verify: the host could not be inspected"} {
		if !strings.Contains(out, w) {
			t.Errorf("dataplane -h lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, " -vpc-cidr") || strings.Contains(out, "-cidr value") {
		t.Errorf("dataplane -h shows a single-dash flag or a bare value placeholder:\n%s", out)
	}
}

func TestParseDataplaneFlags(t *testing.T) {
	c, err := parseDataplane([]string{"apply",
		"--vpc-cidr", "198.18.0.0/16,198.19.0.0/24", "--vpc-cidr=198.19.1.0/24",
		"--extra-source-cidr", "100.64.0.0/10", "--egress-interface", "eth1",
		"--conntrack-max", "100000", "--tcp-established-timeout", "3h", "--udp-timeout", "20s",
		"--udp-stream-timeout", "3m", "--state-path", "/tmp/s.json", "--dry-run",
		"--agent-port", "8080", "--agent-source-cidr", "203.0.113.0/24", "--keep-jump-position"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := dataplane.Spec{
		EgressInterface:       "eth1",
		VPCCIDRs:              []netip.Prefix{netip.MustParsePrefix("198.18.0.0/16"), netip.MustParsePrefix("198.19.0.0/24"), netip.MustParsePrefix("198.19.1.0/24")},
		ExtraSourceCIDRs:      []netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")},
		ConntrackMax:          100000,
		TCPEstablishedTimeout: 3 * time.Hour,
		UDPTimeout:            20 * time.Second,
		UDPStreamTimeout:      3 * time.Minute,
		StatePath:             "/tmp/s.json",
		AgentPort:             8080,
		AgentSourceCIDRs:      []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		KeepJumpPosition:      true,
	}
	if c.action != "apply" || !c.dryRun || c.spec.EgressInterface != want.EgressInterface ||
		!slices.Equal(c.spec.VPCCIDRs, want.VPCCIDRs) || !slices.Equal(c.spec.ExtraSourceCIDRs, want.ExtraSourceCIDRs) ||
		c.spec.ConntrackMax != want.ConntrackMax || c.spec.TCPEstablishedTimeout != want.TCPEstablishedTimeout ||
		c.spec.UDPTimeout != want.UDPTimeout || c.spec.UDPStreamTimeout != want.UDPStreamTimeout || c.spec.StatePath != want.StatePath ||
		c.spec.AgentPort != want.AgentPort || !slices.Equal(c.spec.AgentSourceCIDRs, want.AgentSourceCIDRs) || c.spec.KeepJumpPosition != want.KeepJumpPosition {
		t.Fatalf("parsed %+v", c)
	}
	c, err = parseDataplane([]string{"verify", "--vpc-cidr", "198.18.0.0/16"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.spec.StatePath != dataplane.DefaultStatePath || c.spec.TCPEstablishedTimeout != dataplane.DefaultTCPEstablishedTimeout || c.spec.AgentPort != 7070 {
		t.Fatalf("defaults: %+v", c.spec)
	}
}

func TestParseDataplaneTailnetFlags(t *testing.T) {
	c, err := parseDataplane([]string{"apply", "--vpc-cidr", "198.18.0.0/16"}, &bytes.Buffer{})
	if err != nil || c.spec.Tailnet != nil {
		t.Fatalf("without --tailnet-interface: %v, tailnet %+v", err, c.spec.Tailnet)
	}
	c, err = parseDataplane([]string{"verify", "--vpc-cidr", "198.18.0.0/16", "--tailnet-interface", "tailscale0"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := dataplane.TailnetSpec{Interface: "tailscale0", CIDR: netip.MustParsePrefix("100.64.0.0/10"), UDPPort: 41641}
	if tn := c.spec.Tailnet; tn == nil || tn.Interface != want.Interface || tn.CIDR != want.CIDR || tn.UDPPort != want.UDPPort || tn.Routes != nil || tn.AllowVPCDirect {
		t.Fatalf("defaults: %+v", c.spec.Tailnet)
	}
	c, err = parseDataplane([]string{"apply", "--vpc-cidr", "198.18.0.0/16", "--tailnet-interface=ts9", "--tailnet-cidr", "100.100.0.0/16",
		"--tailnet-route", "198.19.0.0/24,198.51.100.0/24", "--tailnet-udp-port", "41642", "--tailnet-allow-vpc-direct"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if tn := c.spec.Tailnet; tn.Interface != "ts9" || tn.CIDR != netip.MustParsePrefix("100.100.0.0/16") || tn.UDPPort != 41642 || !tn.AllowVPCDirect ||
		!slices.Equal(tn.Routes, []netip.Prefix{netip.MustParsePrefix("198.19.0.0/24"), netip.MustParsePrefix("198.51.100.0/24")}) {
		t.Fatalf("parsed %+v", tn)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--tailnet-interface", ""}, "tailnet interface not given"},
		{[]string{"--tailnet-cidr", "100.64.0.0/10"}, "--tailnet-cidr given without --tailnet-interface"},
		{[]string{"--tailnet-udp-port", "1", "--tailnet-allow-vpc-direct"}, "--tailnet-allow-vpc-direct, --tailnet-udp-port given without --tailnet-interface"},
		{[]string{"--tailnet-interface", "tailscale0", "--tailnet-udp-port", "0"}, "tailnet UDP port 0 out of range"},
		{[]string{"--tailnet-interface", "tailscale0", "--tailnet-cidr", "100.64.0.0/10,100.128.0.0/10"}, "one CIDR expected"},
		{[]string{"--tailnet-interface", "tailscale0", "--tailnet-cidr", "100.64.0.1/10"}, "tailnet CIDR 100.64.0.1/10 has host bits set"},
		{[]string{"--tailnet-interface", "tailscale0", "--extra-source-cidr", "100.64.0.0/10"}, "overlaps extra source CIDR"},
	} {
		_, err := parseDataplane(append([]string{"apply", "--vpc-cidr", "198.18.0.0/16"}, tt.args...), &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: %v, want a usage error with %q", tt.args, err, tt.want)
		}
	}
	if _, err := parseDataplane([]string{"remove", "--tailnet-interface", "tailscale0"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "not a flag of remove") {
		t.Errorf("remove --tailnet-interface: %v", err)
	}
}

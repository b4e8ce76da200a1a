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
		{[]string{"dataplane", "apply", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"dataplane", "verify", "--dry-run", "--vpc-cidr", "198.18.0.0/16"}, 2, "only for apply"},
		{[]string{"dataplane", "apply"}, 1, "no VPC CIDR given"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.1/16"}, 1, "host bits set"},
		{[]string{"dataplane", "apply", "--vpc-cidr", "198.18.0.0/16", "--udp-timeout", "-1s"}, 1, "UDP timeout"},
		{[]string{"dataplane", "verify", "--vpc-cidr", "198.18.0.0/16", "--egress-interface", "eth+"}, 1, "not a valid interface name"},
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
	if code, out, _ := run(t, "dataplane", "apply", "-h"); code != 0 || !strings.Contains(out, "--vpc-cidr") && !strings.Contains(out, "-vpc-cidr") {
		t.Fatalf("dataplane -h: %d %q", code, out)
	}
}

func TestParseDataplaneFlags(t *testing.T) {
	c, err := parseDataplane([]string{"apply",
		"--vpc-cidr", "198.18.0.0/16,198.19.0.0/24", "--vpc-cidr=198.19.1.0/24",
		"--extra-source-cidr", "100.64.0.0/10", "--egress-interface", "eth1",
		"--conntrack-max", "100000", "--tcp-established-timeout", "3h", "--udp-timeout", "20s",
		"--udp-stream-timeout", "3m", "--state-path", "/tmp/s.json", "--dry-run"}, &bytes.Buffer{})
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
	}
	if c.action != "apply" || !c.dryRun || c.spec.EgressInterface != want.EgressInterface ||
		!slices.Equal(c.spec.VPCCIDRs, want.VPCCIDRs) || !slices.Equal(c.spec.ExtraSourceCIDRs, want.ExtraSourceCIDRs) ||
		c.spec.ConntrackMax != want.ConntrackMax || c.spec.TCPEstablishedTimeout != want.TCPEstablishedTimeout ||
		c.spec.UDPTimeout != want.UDPTimeout || c.spec.UDPStreamTimeout != want.UDPStreamTimeout || c.spec.StatePath != want.StatePath {
		t.Fatalf("parsed %+v", c)
	}
	c, err = parseDataplane([]string{"verify", "--vpc-cidr", "198.18.0.0/16"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.spec.StatePath != dataplane.DefaultStatePath || c.spec.TCPEstablishedTimeout != dataplane.DefaultTCPEstablishedTimeout {
		t.Fatalf("defaults: %+v", c.spec)
	}
}

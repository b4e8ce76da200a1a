package dataplane_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/dataplane/topo"
)

func TestCommandLineReportsOnceWithDistinctExitCodes(t *testing.T) {
	l := newLab(t, topo.ModeNAT)
	r := l.apply(t)
	if !strings.Contains(r.stdout, "chain-create filter HEADNAT-FORWARD") || r.stderr != "" {
		t.Fatalf("apply: changes go to stdout once, nothing to stderr; got stderr %q", r.stderr)
	}
	// One deviation, in the singular.
	l.NAT.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=0")
	v := headnat(t, l.NAT, l.args("verify")...)
	if v.code != 1 || v.stderr != "headnat dataplane: verify: 1 deviation from the spec\n" {
		t.Fatalf("verify: exit %d, stderr %q", v.code, v.stderr)
	}
	// A failed apply lists what it did, never "no changes".
	f := headnat(t, l.NAT, l.args("apply", "--egress-interface", "nope0")...)
	if f.code != 1 || strings.Contains(f.stdout, "no changes") {
		t.Fatalf("failed apply: exit %d, stdout %q", f.code, f.stdout)
	}
	// A host that cannot be inspected (no iptables on PATH) is not a deviation.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := l.NAT.Cmd(ctx, headnatBin, l.args("verify")...)
	cmd.Env = append(os.Environ(), "PATH=/nonexistent")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(out), "could not inspect the host") {
		t.Fatalf("verify without iptables: %v\n%s", err, out)
	}
	// remove takes only the state path.
	if r := headnat(t, l.NAT, "dataplane", "remove", "--state-path", l.state, "--vpc-cidr", topo.VPCCIDR); r.code != 2 ||
		!strings.Contains(r.stderr, "--vpc-cidr is not a flag of remove") {
		t.Fatalf("remove --vpc-cidr: exit %d, stderr %q", r.code, r.stderr)
	}
}

package main

import (
	"strings"
	"testing"

	"github.com/headnat/headnat/agent/config"
)

// `headnat agent --help` lists every setting as --flag TYPE with its default, and exits 0.
func TestAgentHelpTypedWithDefaults(t *testing.T) {
	code, _, stderr := run(t, "agent", "--help")
	if code != 0 {
		t.Fatalf("agent --help: exit %d\n%s", code, stderr)
	}
	for _, want := range []string{
		"--probe-interval duration", "(default 200ms)",
		"--probe-rise int", "(default 3)",
		"--vpc-cidrs CIDR[,CIDR...]",
		"--refresh duration", "(default 2s)",
		"--dry-run\n",
		"key probe.restart_grace, env HEADNAT_PROBE_RESTART_GRACE",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("agent --help lacks %q", want)
		}
	}
	for _, k := range config.Keys() {
		if !strings.Contains(stderr, "--"+k.Flag()) {
			t.Errorf("agent --help lacks --%s", k.Flag())
		}
	}
	for _, line := range strings.Split(stderr, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "-") && !strings.HasPrefix(f[0], "--") {
			t.Errorf("single-dash flag in help: %q", line)
		}
	}
}

// A bad flag value is a usage error (exit 2) naming the flag, before anything runs.
func TestAgentBadFlag(t *testing.T) {
	code, _, stderr := run(t, "agent", "--probe-interval=soon")
	if code != 2 || !strings.Contains(stderr, "--probe-interval") {
		t.Fatalf("exit %d, stderr %q; want 2 naming --probe-interval", code, stderr)
	}
}

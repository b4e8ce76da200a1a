package main

import (
	"strings"
	"testing"
)

// The printed policy maps every advertised route to the NAT tag and lets the admins reach
// them; headscale's own check of it is in package policy's real-binary test.
func TestPolicyCommand(t *testing.T) {
	code, stdout, stderr := run(t, "policy", "--vpc-cidr", "198.18.0.0/16", "--extra-route", "198.19.0.0/16", "--admin", "alice@,bob@")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{`"198.18.0.0/16": ["tag:nat"]`, `"198.19.0.0/16": ["tag:nat"]`, `"group:admins": ["alice@","bob@"]`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("policy lacks %s:\n%s", want, stdout)
		}
	}
	// Admins may SSH to the NATs as root by default; --no-ssh takes it out.
	ssh := `{"action": "accept", "src": ["group:admins"], "dst": ["tag:nat"], "users": ["root"]}`
	if !strings.Contains(stdout, ssh) {
		t.Errorf("policy lacks the admins' SSH rule:\n%s", stdout)
	}
	code, stdout, stderr = run(t, "policy", "--vpc-cidr", "198.18.0.0/16", "--admin", "alice@", "--no-ssh")
	if code != 0 {
		t.Fatalf("--no-ssh: exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, `"ssh"`) || strings.Contains(stdout, "tag:nat:22") {
		t.Errorf("--no-ssh policy has SSH:\n%s", stdout)
	}
}

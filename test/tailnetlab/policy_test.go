package tailnetlab

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/headnat/headnat/policy"
)

// TestPolicyAcceptedByHeadscale renders policy variants and has the real headscale check
// each one (`headscale policy check`), then loads one as the server's policy (SIGHUP).
func TestPolicyAcceptedByHeadscale(t *testing.T) {
	tn := NewTailnet(t, TailnetOptions{Policy: testPolicy(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, u := range []string{"admin", "alice"} {
		if _, err := tn.HS.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	pfx := func(s ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, x := range s {
			out = append(out, netip.MustParsePrefix(x))
		}
		return out
	}
	variants := map[string]policy.Params{
		"defaults":        {Admins: []string{"admin@"}, VPCCIDRs: pfx("198.18.0.0/16")},
		"no admins":       {VPCCIDRs: pfx("198.18.0.0/16")},
		"unknown admin":   {Admins: []string{"nobody@"}, VPCCIDRs: pfx("198.18.0.0/16")},
		"several":         {Admins: []string{"admin@", "alice@"}, VPCCIDRs: pfx("198.18.0.0/16", "198.19.0.0/16"), ExtraRoutes: pfx("203.0.113.0/24")},
		"custom names":    {Admins: []string{"alice@"}, AdminGroup: "group:ops", NATTag: "tag:router", AgentPort: 9100, VPCCIDRs: pfx("198.18.0.0/16")},
		"user tag owners": {Admins: []string{"alice@"}, TagOwners: []string{"admin@", "group:admins"}, VPCCIDRs: pfx("198.18.0.0/16")},
		"no ssh":          {Admins: []string{"admin@"}, VPCCIDRs: pfx("198.18.0.0/16"), NoSSH: true},
	}
	for name, p := range variants {
		b, err := policy.Render(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := tn.HS.CheckPolicy(ctx, b); err != nil {
			t.Errorf("%s: headscale rejects the rendered policy: %v\n%s", name, err, b)
		}
	}
	b, _ := policy.Render(variants["several"])
	if err := tn.HS.SetPolicy(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.HS.Nodes(ctx); err != nil {
		t.Fatalf("headscale after reloading the policy: %v", err)
	}
}

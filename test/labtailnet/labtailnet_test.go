// Package labtailnet holds the end-to-end tests of the lab with its tailnet (lab.Options.Tailnet):
// real headscale, a real tailscaled on every NAT driven by its agent, and an admin node outside
// the VPC. A package of its own, so that it runs in parallel with test/lab's. Timeouts here are
// generous limits; measured figures belong in bench/.
package labtailnet

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/tailnet"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/tailnetlab"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		netns.Sweep()
	}
	os.Exit(m.Run())
}

// tailnetLab brings up a lab with its tailnet for one test (lab.ForTest); a failed test also
// logs headscale's nodes, and never Options.TailnetAuthKey. opts change the lab's options.
func tailnetLab(t *testing.T, opts ...func(*lab.Options)) *lab.Lab {
	t.Helper()
	o := lab.Options{Tailnet: true}
	for _, f := range opts {
		f(&o)
	}
	return lab.ForTest(t, o, lab.TestOptions{
		Redact: func(s string) string { return redactKey(s, o.TailnetAuthKey) },
		Report: func(l *lab.Lab) string {
			nodes, err := l.Headscale().Nodes(context.Background())
			return fmt.Sprintf("headscale's nodes: %+v (err %v)", nodes, err)
		},
	})
}

// redactKey replaces a pre-auth key in s, and its secret part on its own (the part after
// headscale's "hskey-auth-<12-character prefix>-").
func redactKey(s, key string) string {
	if key == "" {
		return s
	}
	s = strings.ReplaceAll(s, key, "[auth key redacted]")
	if secret := keySecret(key); secret != "" {
		s = strings.ReplaceAll(s, secret, "[auth key secret redacted]")
	}
	return s
}

// keySecret is the secret part of a headscale v0.29 pre-auth key, "" if key has another form.
func keySecret(key string) string {
	const head = len("hskey-auth-") + 12 + 1
	if !strings.HasPrefix(key, "hskey-auth-") || len(key) <= head {
		return ""
	}
	return key[head:]
}

var vpc = netip.MustParsePrefix(lab.VPCCIDR)

// The NATs register as subnet routers named nat-<az>-<instance id> with tag:nat and their VPC
// route approved, exactly one of them primary; the admin reaches both private hosts' services
// through the primary; when the primary's instance dies, the admin gets through the other NAT.
func TestAdminReachesPrivateHostsAcrossPrimaryDeath(t *testing.T) {
	t.Parallel()
	l := tailnetLab(t)
	ctx := context.Background()

	nodes, err := l.Headscale().Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]tailnetlab.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}
	var primaries []string
	for _, s := range l.NATs() {
		name := tailnet.Hostname(s.Zone, s.InstanceID)
		n, ok := byName[name]
		switch {
		case !ok:
			t.Fatalf("nat-%s is not registered as %s: nodes %+v", s.Name, name, nodes)
		case !slices.Equal(n.Tags, []string{lab.NATTag}):
			t.Errorf("%s: tags %v, want [%s]", name, n.Tags, lab.NATTag)
		case !slices.Contains(n.Approved, vpc):
			t.Errorf("%s: approved routes %v, want %s", name, n.Approved, vpc)
		case !n.IPv4().IsValid():
			t.Errorf("%s: no tailnet IPv4", name)
		}
		if slices.Contains(n.Primary, vpc) {
			primaries = append(primaries, s.Name)
		}
	}
	if len(primaries) != 1 {
		t.Fatalf("primary routers of %s: %v, want exactly one", vpc, primaries)
	}
	primary, err := l.PrimaryRouter(ctx)
	if err != nil || primary != primaries[0] {
		t.Fatalf("PrimaryRouter = %q, %v; headscale's node list says %q", primary, err, primaries[0])
	}
	p := l.MustSite(primary)
	other := l.Other(p)

	// Both private hosts, each in its own AZ, answer the admin through the primary router: its
	// VPC address is what they see (198.18.0.x for AZ a, 198.18.1.x for AZ b).
	for _, host := range l.Sites() {
		seen, err := l.AdminCurl(ctx, host.ServiceURL(), 5*time.Second)
		if err != nil {
			t.Fatalf("admin -> %s: %v", host.ServiceURL(), err)
		}
		if !strings.HasPrefix(seen, "198.18.0.") && !strings.HasPrefix(seen, "198.18.1.") {
			t.Fatalf("host-%s's service saw %q, want a NAT's VPC address", host.AZ, seen)
		}
		if seen != p.NATIP {
			t.Fatalf("host-%s's service saw %q, want the primary router nat-%s's %s", host.AZ, seen, p.Name, p.NATIP)
		}
	}

	// The primary's instance dies; the admin's access comes back through the other NAT.
	if err := l.Kill(p.Name); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for _, host := range l.Sites() {
		var seen string
		var lastErr error
		ok, err := lab.Poll(ctx, 30*time.Second-time.Since(killed), 200*time.Millisecond, func() bool {
			seen, lastErr = l.AdminCurl(ctx, host.ServiceURL(), 500*time.Millisecond)
			return lastErr == nil && seen == other.NATIP
		})
		if err != nil || !ok {
			t.Fatalf("admin -> host-%s: no answer through nat-%s (%s) within 30s of killing nat-%s: last saw %q, err %v",
				host.AZ, other.Name, other.NATIP, p.Name, seen, lastErr)
		}
	}
	t.Logf("admin reached both private hosts through nat-%s %s after nat-%s died", other.Name, time.Since(killed).Round(10*time.Millisecond), p.Name)
	if now, err := l.PrimaryRouter(ctx); err != nil || now != other.Name {
		t.Errorf("after the kill, PrimaryRouter = %q, %v; want nat-%s", now, err, other.Name)
	}
}

package tailnetlab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestMeasureFailover measures how fast headscale moves a subnet route from its primary
// router to the standby when the primary's tailscaled is SIGKILLed, when its only link drops
// every packet (link down), and when it withdraws its routes. It only runs with
// HEADNAT_TAILNET_MEASURE=<runs per fault> and reports times with t.Log; it asserts only that
// the route moves at all.
func TestMeasureFailover(t *testing.T) {
	runs, _ := strconv.Atoi(os.Getenv("HEADNAT_TAILNET_MEASURE"))
	if runs <= 0 {
		t.Skip("set HEADNAT_TAILNET_MEASURE=<runs> to measure headscale's failover times")
	}
	tn := NewTailnet(t, TailnetOptions{Policy: testPolicy(t)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if _, err := tn.HS.CreateUser(ctx, "admin"); err != nil {
		t.Fatal(err)
	}
	key, err := tn.HS.PreAuthKey(ctx, "", []string{"tag:nat"}, true, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	akey, err := tn.HS.PreAuthKey(ctx, "admin", nil, false, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	routers := map[string]*TNode{"nat-1": tn.AddNode(t, "r1"), "nat-2": tn.AddNode(t, "r2")}
	for name, n := range routers {
		if err := n.TS.Up(ctx, tn.HS.ServerURL, key, name, vpc); err != nil {
			t.Fatal(err)
		}
	}
	adm := tn.AddNode(t, "adm")
	if err := adm.TS.Up(ctx, tn.HS.ServerURL, akey, "admin-1"); err != nil {
		t.Fatal(err)
	}

	// primaryHS is the router headscale has as primary ("" if none).
	primaryHS := func() string {
		nodes, err := tn.HS.Nodes(ctx)
		if err != nil {
			return ""
		}
		for _, n := range nodes {
			if slices.Contains(n.Primary, vpc) {
				return n.Name
			}
		}
		return ""
	}
	// primarySeen is the router the admin's tailscaled routes the VPC through.
	primarySeen := func() string {
		st, err := adm.TS.Status(ctx)
		if err != nil {
			return ""
		}
		for _, p := range st.Peer {
			if slices.Contains(p.PrimaryRoutes, vpc) {
				return p.HostName
			}
		}
		return ""
	}
	settle := func(what string) string {
		t.Helper()
		var p string
		err := poll(90*time.Second, 200*time.Millisecond, func() error {
			nodes, err := tn.HS.Nodes(ctx)
			if err != nil {
				return err
			}
			p = ""
			for _, n := range nodes {
				if routers[n.Name] != nil && (!n.Online || !slices.Contains(n.Available, vpc)) {
					return fmt.Errorf("%s not back", n.Name)
				}
				if slices.Contains(n.Primary, vpc) {
					p = n.Name
				}
			}
			if p == "" || primarySeen() != p {
				return fmt.Errorf("no agreed primary")
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: not settled: %v", what, err)
		}
		// Let the HA prober see every session in two cycles, so none is "fresh".
		time.Sleep(5 * time.Second)
		return p
	}

	faults := []struct {
		name           string
		fault, restore func(n *TNode) error
	}{
		{"SIGKILL tailscaled", func(n *TNode) error { n.TS.Kill(); return nil }, func(n *TNode) error { return n.TS.Restart(ctx) }},
		{"link down (silent drop)", func(n *TNode) error { _, err := n.NS.Run("ip", "link", "set", "eth0", "down"); return err },
			func(n *TNode) error { _, err := n.NS.Run("ip", "link", "set", "eth0", "up"); return err }},
		{"withdraw routes", func(n *TNode) error { _, err := n.TS.CLI(ctx, "set", "--advertise-routes="); return err },
			func(n *TNode) error { _, err := n.TS.CLI(ctx, "set", "--advertise-routes="+vpc.String()); return err }},
	}
	for _, f := range faults {
		for i := range runs {
			p := settle(f.name)
			n := routers[p]
			t0 := time.Now()
			if err := f.fault(n); err != nil {
				t.Fatal(err)
			}
			var hsAt, seenAt time.Duration
			err := poll(90*time.Second, 100*time.Millisecond, func() error {
				if hsAt == 0 {
					if q := primaryHS(); q != "" && q != p {
						hsAt = time.Since(t0)
					}
				}
				if seenAt == 0 {
					if q := primarySeen(); q != "" && q != p {
						seenAt = time.Since(t0)
					}
				}
				if hsAt == 0 || seenAt == 0 {
					return fmt.Errorf("route still on %s", p)
				}
				return nil
			})
			if err != nil {
				t.Errorf("%s run %d: %v (headscale %s, client %s)", f.name, i, err, hsAt, seenAt)
			}
			t.Logf("MEASURE %-24s run %d: headscale moved the primary off %s after %5.1fs; a client saw it after %5.1fs",
				f.name, i, p, hsAt.Seconds(), seenAt.Seconds())
			if err := f.restore(n); err != nil {
				t.Fatal(err)
			}
		}
	}
}

package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
)

func TestPrintStatusShowsTailnet(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := api.Status{Time: now, Self: api.Healthz{Instance: "i-a", AZ: "us-east-1a", Healthy: true}}
	cases := []struct {
		name string
		tn   *api.Tailnet
		want []string
		not  []string
	}{
		{"no tailnet", nil, nil, []string{"tailnet:"}},
		{"primary", &api.Tailnet{Backend: "Running", Hostname: "nat-us-east-1a-i-a", IP: "100.64.0.1",
			Advertised: []string{"198.18.0.0/16"}, Approved: true, Primary: []string{"198.18.0.0/16"}, SSH: true},
			[]string{"tailnet: Running nat-us-east-1a-i-a (100.64.0.1), ok", "routes approved", "PRIMARY router for 198.18.0.0/16", "tailscale SSH on"}, []string{"NOT approved"}},
		{"standby, unapproved", &api.Tailnet{Backend: "Running", Advertised: []string{"198.18.0.0/16"}},
			[]string{"routes NOT approved by headscale", "standby router"}, []string{"PRIMARY", "SSH"}},
		{"degraded", &api.Tailnet{Backend: "NeedsLogin", Degraded: true, Error: "login failed: invalid key"},
			[]string{"DEGRADED", "tailnet: login failed: invalid key", "no tailnet IP"}, nil},
	}
	st.Peers = []api.PeerStatus{{ID: "i-b", AZ: "us-east-1b", LastError: "i/o timeout", PresumedAlive: "partitioned: unreachable over the VPC, answers healthy over the tailnet"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st.Self.Tailnet = tc.tn
			var b bytes.Buffer
			printStatus(&b, st)
			if !strings.Contains(b.String(), "keeps its tables: partitioned") {
				t.Errorf("status does not say the partitioned peer keeps its tables:\n%s", b.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("status lacks %q:\n%s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("status has %q:\n%s", n, b.String())
				}
			}
		})
	}
}

func TestPrintStatusShowsLifecycleAndAddresses(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	base := api.Status{
		Time:   now,
		Config: api.ConfigSummary{Cluster: "prod"},
		Self:   api.Healthz{Instance: "i-a", AZ: "us-east-1a", Healthy: true, Lifecycle: api.LifecycleInService, PublicIP: "203.0.113.1"},
		Peers: []api.PeerStatus{
			{ID: "i-b", AZ: "us-east-1b", Healthy: true, Lifecycle: api.LifecycleInService, PublicIP: "203.0.113.2", Since: now.Add(-time.Minute)},
		},
	}
	// row returns the fields of the instance table's row for id.
	row := func(out, id string) []string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == id {
				return f
			}
		}
		return nil
	}
	cases := []struct {
		name string
		edit func(*api.Status)
		want []string
		not  []string
		rows map[string][]string // id: the row's first fields
	}{
		{"in service", func(*api.Status) {},
			[]string{"INSTANCE  AZ          HEALTH   LIFECYCLE   PUBLIC IP    SINCE     DETAIL"}, []string{"egress address", "draining"},
			map[string][]string{"i-a": {"i-a", "us-east-1a", "healthy", "in-service", "203.0.113.1", "-", "this", "instance"}, "i-b": {"i-b", "us-east-1b", "healthy", "in-service", "203.0.113.2", "1m0s", "ago"}}},
		{"draining peer", func(st *api.Status) {
			st.Peers[0].Healthy, st.Peers[0].Draining, st.Peers[0].Lifecycle = false, true, api.LifecycleDraining
			st.Peers[0].DrainReason = "spot-interruption: stop at 2026-01-01T00:02:00Z"
		}, []string{"draining (spot-interruption: stop at 2026-01-01T00:02:00Z)"}, nil,
			map[string][]string{"i-b": {"i-b", "us-east-1b", "draining", "draining", "(spot-interruption:", "stop", "at", "2026-01-01T00:02:00Z)", "203.0.113.2"}}},
		{"draining peer of an older agent without lifecycle", func(st *api.Status) {
			st.Peers[0].Draining, st.Peers[0].Lifecycle, st.Peers[0].DrainReason = true, "", "sigterm"
		}, []string{"draining (sigterm)"}, nil, nil},
		{"drained self with an EIP", func(st *api.Status) {
			st.Self.Healthy, st.Self.Draining, st.Self.Lifecycle, st.Self.DrainReason = false, true, api.LifecycleDrained, "operator: kernel upgrade"
			st.Self.Reasons = []string{"draining"}
			st.Self.PublicIP = "198.51.100.9"
			st.Self.EIP = &api.EIP{AllocationID: "eipalloc-0123", AssociationID: "eipassoc-1", PublicIP: "198.51.100.9"}
		}, []string{"drained (operator: kernel upgrade)", "egress address 198.51.100.9: Elastic IP eipalloc-0123 from the pool"}, nil,
			map[string][]string{"i-a": {"i-a", "us-east-1a", "draining", "drained", "(operator:", "kernel", "upgrade)", "198.51.100.9"}}},
		{"self without a pool address", func(st *api.Status) {
			st.Self.EIP = &api.EIP{Error: "no free Elastic IP tagged headnat:cluster=prod"}
		}, []string{"egress address 203.0.113.1: not from the Elastic IP pool: no free Elastic IP tagged headnat:cluster=prod"}, nil, nil},
		{"no public IP anywhere", func(st *api.Status) {
			st.Self.PublicIP, st.Peers[0].PublicIP, st.Peers[0].Lifecycle = "", "", ""
			st.Self.EIP = &api.EIP{Error: "pool empty"}
		}, []string{"egress address unknown: no Elastic IP from the pool: pool empty"}, nil,
			map[string][]string{"i-a": {"i-a", "us-east-1a", "healthy", "in-service", "-", "-"}, "i-b": {"i-b", "us-east-1b", "healthy", "-", "-", "1m0s"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := base
			st.Self.Reasons = nil
			st.Peers = []api.PeerStatus{base.Peers[0]}
			tc.edit(&st)
			var b bytes.Buffer
			printStatus(&b, st)
			out := b.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("status lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(out, n) {
					t.Errorf("status has %q:\n%s", n, out)
				}
			}
			for id, want := range tc.rows {
				if got := row(out, id); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
					t.Errorf("row of %s is %q, want it to start with %q:\n%s", id, got, want, out)
				}
			}
		})
	}
}

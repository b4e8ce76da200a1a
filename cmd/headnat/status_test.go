package main

import (
	"bytes"
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
			Advertised: []string{"198.18.0.0/16"}, Approved: true, Primary: []string{"198.18.0.0/16"}},
			[]string{"tailnet: Running nat-us-east-1a-i-a (100.64.0.1), ok", "routes approved", "PRIMARY router for 198.18.0.0/16"}, []string{"NOT approved"}},
		{"standby, unapproved", &api.Tailnet{Backend: "Running", Advertised: []string{"198.18.0.0/16"}},
			[]string{"routes NOT approved by headscale", "standby router"}, []string{"PRIMARY"}},
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

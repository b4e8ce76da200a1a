package agent

import (
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/health"
)

func TestAliveNotHealthy(t *testing.T) {
	now := time.Unix(10_000, 0)
	dead := health.PeerState{Decided: true, LastErr: "i/o timeout"}
	refused := health.PeerState{Decided: true, LastErr: "connection refused", HostUp: true}
	rising := health.PeerState{Decided: true, Answer: api.Healthz{Healthy: true}}
	unhealthyAnswer := health.PeerState{Decided: true, Answer: api.Healthz{Healthy: false}}
	partitioned := health.PeerState{Decided: true, LastErr: "timeout", TailnetReachable: true, Answer: api.Healthz{Healthy: true}}
	brokenOverTailnet := health.PeerState{Decided: true, LastErr: "timeout", TailnetReachable: true, Answer: api.Healthz{Healthy: false}}
	cases := []struct {
		name  string
		l     liveness
		alive bool
	}{
		{"healthy is not 'alive but not healthy'", liveness{peer: health.PeerState{Healthy: true, Decided: true}}, false},
		{"dead", liveness{peer: dead}, false},
		{"no verdict yet", liveness{peer: health.PeerState{}}, true},
		{"rising", liveness{peer: rising}, true},
		{"answers unhealthy", liveness{peer: unhealthyAnswer}, false},
		{"partitioned", liveness{peer: partitioned}, true},
		{"tailnet answers unhealthy", liveness{peer: brokenOverTailnet}, false},
		{"acted within the window", liveness{peer: dead, now: now, actedAt: now.Add(-5 * time.Second), actedWindow: 10 * time.Second}, true},
		{"acted long ago", liveness{peer: dead, now: now, actedAt: now.Add(-11 * time.Second), actedWindow: 10 * time.Second}, false},
		{"agent restarting within grace", liveness{peer: refused, now: now, agentDownSince: now.Add(-9 * time.Second), restartGrace: 10 * time.Second}, true},
		{"agent down past grace", liveness{peer: refused, now: now, agentDownSince: now.Add(-10 * time.Second), restartGrace: 10 * time.Second}, false},
		{"grace zero", liveness{peer: refused, now: now, agentDownSince: now, restartGrace: 0}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			why := tc.l.aliveNotHealthy()
			if (why != "") != tc.alive {
				t.Fatalf("aliveNotHealthy() = %q, want alive=%v", why, tc.alive)
			}
		})
	}
}

package agent

import (
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/health"
)

func TestPresumedAlive(t *testing.T) {
	now := time.Unix(10_000, 0)
	dead := health.PeerState{Decided: true, LastErr: "i/o timeout"}
	refused := health.PeerState{Decided: true, LastErr: "connection refused", HostUp: true}
	rising := health.PeerState{Decided: true, Answer: api.Healthz{Healthy: true}}
	unhealthyAnswer := health.PeerState{Decided: true, Answer: api.Healthz{Healthy: false}}
	partitioned := health.PeerState{Decided: true, LastErr: "timeout", TailnetReachable: true, TailnetHealthy: true, Answer: api.Healthz{Healthy: true}}
	// The latest tailnet probe failed, but the tailnet verdict (rise/fall) still holds.
	partitionedFlap := health.PeerState{Decided: true, LastErr: "timeout", TailnetHealthy: true, Answer: api.Healthz{Healthy: true}}
	// The tailnet answers, but unhealthy for fall probes: the verdict is down.
	brokenOverTailnet := health.PeerState{Decided: true, LastErr: "timeout", TailnetReachable: true, Answer: api.Healthz{Healthy: false}}
	// A single healthy answer over the tailnet is not the verdict.
	notTheVerdict := health.PeerState{Decided: true, LastErr: "timeout", TailnetReachable: true, Answer: api.Healthz{Healthy: true}}
	cases := []struct {
		name   string
		l      liveness
		alive  bool
		claims bool
	}{
		{"healthy is not 'alive but not healthy'", liveness{peer: health.PeerState{Healthy: true, Decided: true}}, false, false},
		{"dead", liveness{peer: dead}, false, false},
		{"no verdict yet", liveness{peer: health.PeerState{}}, true, false},
		{"rising", liveness{peer: rising}, true, true},
		{"answers unhealthy", liveness{peer: unhealthyAnswer}, false, false},
		{"partitioned", liveness{peer: partitioned}, true, true},
		{"partitioned, the latest tailnet probe lost", liveness{peer: partitionedFlap}, true, true},
		{"tailnet answers unhealthy", liveness{peer: brokenOverTailnet}, false, false},
		{"tailnet verdict down despite one answer", liveness{peer: notTheVerdict}, false, false},
		{"partitioned beats restarting", liveness{peer: func() health.PeerState { s := partitioned; s.HostUp = true; return s }(), now: now, agentDownSince: now, restartGrace: time.Minute}, true, true},
		{"acted within the window", liveness{peer: dead, now: now, actedAt: now.Add(-5 * time.Second), actedWindow: 10 * time.Second}, true, true},
		{"acted long ago", liveness{peer: dead, now: now, actedAt: now.Add(-11 * time.Second), actedWindow: 10 * time.Second}, false, false},
		{"agent restarting within grace", liveness{peer: refused, now: now, agentDownSince: now.Add(-9 * time.Second), restartGrace: 10 * time.Second}, true, false},
		{"agent down past grace", liveness{peer: refused, now: now, agentDownSince: now.Add(-10 * time.Second), restartGrace: 10 * time.Second}, false, false},
		{"grace zero", liveness{peer: refused, now: now, agentDownSince: now, restartGrace: 0}, false, false},
		{"no verdict yet but answers healthy: rising, claims", liveness{peer: health.PeerState{Answer: api.Healthz{Healthy: true}}}, true, true},
		{"restarting and no verdict yet: claims nothing", liveness{peer: health.PeerState{LastErr: "connection refused", HostUp: true}, now: now, agentDownSince: now, restartGrace: time.Second}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			why, claims := tc.l.presumedAlive()
			if (why != "") != tc.alive || claims != tc.claims {
				t.Fatalf("presumedAlive() = %q, %v; want alive=%v claims=%v", why, claims, tc.alive, tc.claims)
			}
		})
	}
}

package agent

import (
	"time"

	"github.com/headnat/headnat/agent/health"
)

// liveness is what one agent knows about a peer beyond its rise/fall verdict.
type liveness struct {
	peer           health.PeerState
	now            time.Time
	actedAt        time.Time // when the peer was seen taking a table while failing my probes
	agentDownSince time.Time // since when its host answers but its agent does not
	actedWindow    time.Duration
	restartGrace   time.Duration
}

// aliveNotHealthy says why a peer that is not healthy must still not be treated as dead (its
// tables are not taken; failover.Instance.TailnetReachable), or "" when it may be.
func (l liveness) aliveNotHealthy() string {
	st := l.peer
	switch {
	case st.Healthy:
		return ""
	case st.TailnetReachable && st.Answer.Healthy:
		return "partitioned: answers healthy over the tailnet"
	case !st.Decided:
		return "no verdict yet"
	case st.LastErr == "" && st.Answer.Healthy:
		// Rise/fall gates who is preferred, not who is dead.
		return "rising: its latest answer says healthy"
	case !l.actedAt.IsZero() && l.now.Sub(l.actedAt) < l.actedWindow:
		return "partitioned: took a route table while failing my probes"
	case !l.agentDownSince.IsZero() && l.now.Sub(l.agentDownSince) < l.restartGrace:
		return "agent restarting: its host answers"
	}
	return ""
}

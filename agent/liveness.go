package agent

import (
	"time"

	"github.com/headnat/headnat/agent/health"
)

// liveness is what one agent knows about a peer beyond its rise/fall verdict.
type liveness struct {
	peer           health.PeerState
	now            time.Time
	actedAt        time.Time // when the peer was seen taking a table while failing my probes (on both paths)
	agentDownSince time.Time // since when its host answers but its agent does not
	actedWindow    time.Duration
	restartGrace   time.Duration
}

// presumedAlive says why a peer that is not healthy must still not be treated as dead (its
// tables are not taken; failover.Instance.PresumedAlive), or "" when it may be. claims is true
// when the peer decides for itself and will claim what it is preferred for: it answered
// healthy on some path, or was just seen taking a table. A peer whose agent is restarting
// keeps its tables (its kernel still forwards) but claims nothing. A partitioned peer (the
// tailnet verdict, health.PeerState.Partitioned) comes first: failover.Instance.Partitioned
// is set from the same test.
func (l liveness) presumedAlive() (why string, claims bool) {
	st := l.peer
	switch {
	case st.Healthy:
		return "", false
	case st.Partitioned():
		return "partitioned: unreachable over the VPC, answers healthy over the tailnet", true
	case st.LastErr == "" && st.Answer.Healthy:
		// Rise/fall gates who is preferred, not who is dead.
		return "rising: its latest answer says healthy", true
	case !l.actedAt.IsZero() && l.now.Sub(l.actedAt) < l.actedWindow:
		return "took a route table while failing my probes", true
	case !l.agentDownSince.IsZero() && l.now.Sub(l.agentDownSince) < l.restartGrace:
		return "agent restarting: its host answers", false
	case !st.Decided:
		return "no verdict yet", false
	}
	return "", false
}

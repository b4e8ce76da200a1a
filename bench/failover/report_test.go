package main

import (
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/lab"
)

func idleFixture(burners, moves int) *idleResult {
	id := &idleResult{Duration: 5 * time.Minute, Burners: burners, HealthLines: map[string]int{},
		AgentCPU: map[string]time.Duration{"a": time.Second, "b": time.Second}, RunDelay: map[string]time.Duration{"a": 0, "b": 0},
		Nice: map[string]string{"nat-a": "0", "nat-b": "0", "burners": "0"}, LoadStart: "0.10 0.20 0.30", LoadEnd: "4.50 3.00 1.00",
		Hosts: []hostResult{{Host: "a", Requests: 6000}, {Host: "b", Requests: 6000}}}
	for range moves {
		id.Moves = append(id.Moves, lab.Move{Action: "replace", TableAZ: "a", TargetAZ: "b"})
	}
	return id
}

func TestMarkdownKeepsBothIdleRuns(t *testing.T) {
	r := &report{cfg: &config{interval: 50 * time.Millisecond}, agentCfg: api.ConfigSummary{Fall: 3, ProbeTimeout: api.Duration(150 * time.Millisecond)},
		idle: idleFixture(0, 0), loaded: idleFixture(4, 2)}
	md := r.markdown()
	for _, want := range []string{
		"| route moves (false failovers) in 5m0s quiet idle | 0 | 0: **met** |",
		"| route moves (false failovers) in 5m0s idle with 4 CPU burners on",
		"| 2 | 0: **NOT met** |",
		"| idle run | quiet | loaded: 4 burners |",
		"loaded: route move replace private-a → nat-b",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("section lacks %q:\n%s", want, md)
		}
	}
	if got := r.summary(); !strings.Contains(got, "false failovers in 5m0s quiet idle: 0, target 0: met") ||
		!strings.Contains(got, "CPU burners on") || !strings.Contains(got, ": 2, target 0: NOT met") {
		t.Errorf("summary: %s", got)
	}

	r.loaded = nil
	if md := r.markdown(); strings.Contains(md, "burners") {
		t.Errorf("a quiet-only run mentions burners:\n%s", md)
	}
}

package dataplane

import (
	"context"
	"slices"
	"strings"
	"testing"
)

func TestAgentPortChainComesAndGoes(t *testing.T) {
	f := newFixture(t)
	f.spec.AgentPort = 7070
	f.apply(t)
	if n := len(f.ipt.Rules("filter", ChainInput)); n != 4 {
		t.Fatalf("HEADNAT-INPUT has %d rules", n)
	}
	if got := parentLines(f.ipt, "filter", "INPUT"); !slices.Equal(got, []string{ruleLine("INPUT", chainSpec{Name: ChainInput}.Jump())}) {
		t.Fatalf("INPUT: %q", got)
	}
	// Without the port, the chain is a deviation, and Apply removes it with its jump.
	f.spec.AgentPort = 0
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"chain-unexpected HEADNAT-INPUT", "rule-unexpected HEADNAT-INPUTINPUT"}) {
		t.Fatalf("findings %q", got)
	}
	f.apply(t)
	if ok, _ := f.ipt.ChainExists("filter", ChainInput); ok || len(f.ipt.Rules("filter", "INPUT")) != 0 {
		t.Fatalf("HEADNAT-INPUT left:\n%s", f.ipt.Save())
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify: %v", fs)
	}
	// Remove takes it away too.
	f.spec.AgentPort = 7070
	f.apply(t)
	if _, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(f.ipt.Save(), "HEADNAT") {
		t.Fatalf("left after Remove:\n%s", f.ipt.Save())
	}
}

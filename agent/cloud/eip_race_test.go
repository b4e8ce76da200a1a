package cloud

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/eip"
	"github.com/headnat/headnat/test/vpcsim"
)

// The EIP pool with real parts: eip.Claim over *Client and the SDK's EC2 client, against vpcsim.

// claimAll runs eip.Claim for every instance at once, each with its own client.
func claimAll(w *poolWorld, clients []*Client, log *slog.Logger) ([]eip.Address, []error) {
	got, errs := make([]eip.Address, len(clients)), make([]error, len(clients))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Go(func() {
			<-start
			got[i], errs[i] = eip.Claim(context.Background(), c, testCluster, w.ids[i], w.enis[i], log)
		})
	}
	close(start)
	wg.Wait()
	return got, errs
}

func raceCount(calls []vpcsim.Call) int {
	n := 0
	for _, c := range calls {
		if c.Action == "AssociateAddress" && c.Code == "Resource.AlreadyAssociated" {
			n++
		}
	}
	return n
}

// Two instances claim the one free address, 50 times: exactly one gets it, the other finds the
// pool empty, held by the winner. Every other round both list the pool before either
// associates, so AWS refuses one of them.
func TestClaimRaceOneAddress(t *testing.T) {
	w := newPoolWorld(t, 2, nil)
	alloc := w.addAddresses(t, 1, testCluster)[0]
	obs := &recorder{}
	var clients []*Client
	var logs []*logBuffer
	for range 2 {
		c, l := w.client(t, obs, raceTimeouts)
		clients, logs = append(clients, c), append(logs, l)
	}
	log, _ := testLogger(t)
	ctx := context.Background()
	wins := map[string]int{}
	const rounds = 50
	for round := range rounds {
		gated := round%2 == 0
		if gated {
			w.gate.arm(2)
		}
		before := len(w.sim.Calls())
		got, errs := claimAll(w, clients, log)
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("round %d: both won: %+v and %+v", round, got[winner], got[i])
			case err == nil:
				winner = i
			case !errors.Is(err, eip.ErrPoolEmpty):
				t.Fatalf("round %d: %s: %v, want eip.ErrPoolEmpty", round, w.ids[i], err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", round, errs)
		}
		w.mustBeOn(t, got[winner], w.enis[winner])
		loser := 1 - winner
		if want := fmt.Sprintf("pool empty: 1 address, all associated (with %s)", w.ids[winner]); !strings.Contains(errs[loser].Error(), want) {
			t.Errorf("round %d: loser's error %q does not say %q", round, errs[loser], want)
		}
		if n := raceCount(w.sim.Calls()[before:]); gated && n != 1 {
			t.Errorf("round %d: %d refused associations, want 1 (both saw the address free)", round, n)
		}
		wins[w.ids[winner]]++
		if err := eip.Release(ctx, clients[winner], got[winner]); err != nil {
			t.Fatalf("round %d: release: %v", round, err)
		}
		if v, _ := w.sim.Address(alloc); v.AssociationID != "" {
			t.Fatalf("round %d: after release: %+v", round, v)
		}
	}
	t.Logf("wins: %v; refused associations: %d", wins, raceCount(w.sim.Calls()))
	if keys := obs.keys(); len(keys) != 0 {
		t.Errorf("API errors observed: %v", keys)
	}
	for i, l := range logs {
		if strings.Contains(l.String(), "aws call failed") {
			t.Errorf("client %d logged a failure:\n%s", i, l)
		}
	}
}

// Two instances, two free addresses: each gets its own, whoever ranks which first. A third
// instance then finds the pool empty, and the error names who holds it.
func TestClaimRaceTwoAddresses(t *testing.T) {
	w := newPoolWorld(t, 3, nil)
	w.addAddresses(t, 2, testCluster)
	var clients []*Client
	for range 3 {
		c, _ := w.client(t, nil, raceTimeouts)
		clients = append(clients, c)
	}
	log, _ := testLogger(t)
	ctx := context.Background()
	for round := range 20 {
		w.gate.arm(2)
		got, errs := claimAll(w, clients[:2], log)
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, w.ids[i], err)
			}
			w.mustBeOn(t, got[i], w.enis[i])
		}
		if got[0].AllocationID == got[1].AllocationID {
			t.Fatalf("round %d: both got %s", round, got[0].AllocationID)
		}
		if round == 19 {
			_, err := eip.Claim(ctx, clients[2], testCluster, w.ids[2], w.enis[2], log)
			if !errors.Is(err, eip.ErrPoolEmpty) || !strings.Contains(err.Error(), w.ids[0]) || !strings.Contains(err.Error(), w.ids[1]) {
				t.Fatalf("third instance: %v, want eip.ErrPoolEmpty naming %s and %s", err, w.ids[0], w.ids[1])
			}
			break
		}
		for i := range got {
			if err := eip.Release(ctx, clients[i], got[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// Addresses associated elsewhere, of another cluster or untagged are never taken.
func TestClaimNeverTakesOthers(t *testing.T) {
	w := newPoolWorld(t, 1, nil)
	held := w.addAddresses(t, 1, testCluster)[0]
	outsider, outsiderENI := w.sim.AddInstance(vpcsim.InstanceSpec{SubnetID: w.subnet})
	if _, err := w.sim.AssociateAddress(held, outsiderENI); err != nil {
		t.Fatal(err)
	}
	others := append(w.addAddresses(t, 1, "other"), w.addAddresses(t, 1, "")...)
	c, _ := w.client(t, nil, Timeouts{})
	log, _ := testLogger(t)

	_, err := eip.Claim(context.Background(), c, testCluster, w.ids[0], w.enis[0], log)
	if !errors.Is(err, eip.ErrPoolEmpty) || !strings.Contains(err.Error(), "1 address, all associated (with "+outsider+")") {
		t.Fatalf("claim: %v, want eip.ErrPoolEmpty naming %s", err, outsider)
	}
	if v, _ := w.sim.Address(held); v.ENI != outsiderENI {
		t.Errorf("the held address moved: %+v", v)
	}
	for _, id := range others {
		if v, _ := w.sim.Address(id); v.AssociationID != "" {
			t.Errorf("an address outside the pool was taken: %+v", v)
		}
	}
	if calls := w.sim.Calls(); len(calls) != 0 {
		t.Errorf("writes, want none: %+v", calls)
	}
}

// A restarted agent (a new client) keeps the address on its ENI without a write.
func TestClaimAfterRestartKeepsMine(t *testing.T) {
	w := newPoolWorld(t, 1, nil)
	w.addAddresses(t, 3, testCluster)
	log, _ := testLogger(t)
	ctx := context.Background()
	c1, _ := w.client(t, nil, Timeouts{})
	first, err := eip.Claim(ctx, c1, testCluster, w.ids[0], w.enis[0], log)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := w.client(t, nil, Timeouts{})
	again, err := eip.Claim(ctx, c2, testCluster, w.ids[0], w.enis[0], log)
	if err != nil {
		t.Fatal(err)
	}
	if again != first {
		t.Errorf("after restart: %+v, want %+v", again, first)
	}
	w.mustBeOn(t, again, w.enis[0])
	if n := w.sim.CountCalls("AssociateAddress"); n != 1 {
		t.Errorf("%d associations, want 1", n)
	}
}

// An association whose answer comes after the client gave up (it landed): Claim finds it on
// its ENI when it lists the pool again, and keeps it.
func TestClaimAssociationThatTimedOut(t *testing.T) {
	slow := func(c vpcsim.Call) {
		if c.Action == "AssociateAddress" && c.Code == "" {
			time.Sleep(400 * time.Millisecond)
		}
	}
	w := newPoolWorld(t, 1, slow)
	w.addAddresses(t, 2, testCluster)
	c, logs := w.client(t, nil, Timeouts{Mutate: 300 * time.Millisecond, Attempt: 150 * time.Millisecond})
	log, buf := testLogger(t)

	a, err := eip.Claim(context.Background(), c, testCluster, w.ids[0], w.enis[0], log)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	w.mustBeOn(t, a, w.enis[0])
	if !strings.Contains(logs.String(), "op=AssociateAddress") || !strings.Contains(logs.String(), "code=timeout") {
		t.Errorf("the association did not time out:\n%s", logs)
	}
	if !strings.Contains(buf.String(), "keeping the address on my ENI") {
		t.Errorf("Claim did not keep the address it found:\n%s", buf)
	}
	for _, call := range w.sim.Calls() {
		if id := call.Params["AllocationId"]; id != a.AllocationID {
			t.Errorf("%s of %s, kept %s", call.Action, id, a.AllocationID)
		}
	}
}

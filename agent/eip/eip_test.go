package eip

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

const (
	me    = "i-a"
	myENI = "eni-a"
)

func free(n int) Address {
	return Address{AllocationID: fmt.Sprintf("eipalloc-%d", n), PublicIP: fmt.Sprintf("203.0.113.%d", n)}
}

func on(a Address, eni, instance string) Address {
	a.AssociationID, a.NetworkInterfaceID, a.InstanceID = "eipassoc-"+strings.TrimPrefix(a.AllocationID, "eipalloc-"), eni, instance
	return a
}

func allocs(as []Address) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.AllocationID)
	}
	return out
}

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name       string
		pool       []Address
		wantMine   string
		wantCands  []string
		wantReason string
	}{{
		name:       "empty pool",
		wantReason: "pool empty: no address in the pool",
	}, {
		name:       "all associated",
		pool:       []Address{on(free(3), "eni-c", "i-c"), on(free(1), "eni-b", "i-b"), on(free(2), "eni-x", "")},
		wantReason: "pool empty: 3 addresses, all associated (with i-b, eni-x, i-c)",
	}, {
		name:       "mine kept, free ones ignored",
		pool:       []Address{free(1), on(free(2), myENI, me), free(3)},
		wantMine:   "eipalloc-2",
		wantReason: "eipalloc-2 (203.0.113.2) is already associated with my ENI eni-a",
	}, {
		name:       "mine kept when EC2 does not name the instance",
		pool:       []Address{on(free(2), myENI, "")},
		wantMine:   "eipalloc-2",
		wantReason: "eipalloc-2 (203.0.113.2) is already associated with my ENI eni-a",
	}, {
		name:       "two on my ENI: the lowest allocation id is kept",
		pool:       []Address{on(free(4), myENI, me), on(free(3), myENI, me)},
		wantMine:   "eipalloc-3",
		wantReason: "eipalloc-3 (203.0.113.3) is already associated with my ENI eni-a (1 more on it: eipalloc-4 (203.0.113.4))",
	}, {
		name:       "on another ENI of mine: neither kept nor taken",
		pool:       []Address{on(free(1), "eni-a2", me), free(2)},
		wantCands:  []string{"eipalloc-2"},
		wantReason: "1 of 2 addresses free (the others associated with i-a); trying in rendezvous order eipalloc-2",
	}, {
		name:       "on another ENI of mine and nothing free",
		pool:       []Address{on(free(1), "eni-a2", me)},
		wantReason: "pool empty: 1 address, all associated (with i-a)",
	}, {
		name:       "free ones by rendezvous weight",
		pool:       []Address{free(1), free(2), on(free(5), "eni-b", "i-b"), free(3), free(4)},
		wantCands:  []string{"eipalloc-1", "eipalloc-3", "eipalloc-4", "eipalloc-2"},
		wantReason: "4 of 5 addresses free (the others associated with i-b); trying in rendezvous order eipalloc-1, eipalloc-3, eipalloc-4, eipalloc-2",
	}} {
		t.Run(c.name, func(t *testing.T) {
			d := Decide(me, myENI, c.pool)
			if d.Mine.AllocationID != c.wantMine || d.Kept() != (c.wantMine != "") {
				t.Errorf("mine = %+v (kept %v), want %q", d.Mine, d.Kept(), c.wantMine)
			}
			if got := allocs(d.Candidates); !slices.Equal(got, c.wantCands) {
				t.Errorf("candidates = %v, want %v", got, c.wantCands)
			}
			if d.Empty() != (c.wantMine == "" && len(c.wantCands) == 0) {
				t.Errorf("empty = %v", d.Empty())
			}
			if d.Reason != c.wantReason {
				t.Errorf("reason\n got %q\nwant %q", d.Reason, c.wantReason)
			}
		})
	}
}

// The order is the same whatever order the pool comes in, and follows the weights.
func TestDecideOrderIndependent(t *testing.T) {
	var pool []Address
	for n := 1; n <= 12; n++ {
		a := free(n)
		if n%4 == 0 {
			a = on(a, "eni-x", "i-x")
		}
		pool = append(pool, a)
	}
	want := Decide(me, myENI, pool)
	if len(want.Candidates) != 9 {
		t.Fatalf("candidates = %v, want the 9 free addresses", allocs(want.Candidates))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		p := slices.Clone(pool)
		rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
		got := Decide(me, myENI, p)
		if !slices.Equal(allocs(got.Candidates), allocs(want.Candidates)) || got.Reason != want.Reason {
			t.Fatalf("shuffled pool: %v (%s), want %v (%s)", allocs(got.Candidates), got.Reason, allocs(want.Candidates), want.Reason)
		}
	}
}

// Instances launching together mostly start with different addresses.
func TestDecideSpreadsInstances(t *testing.T) {
	pool := []Address{free(1), free(2), free(3), free(4)}
	first := map[string]int{}
	for i := 0; i < 100; i++ {
		first[Decide(fmt.Sprintf("i-%03d", i), "eni-x", pool).Candidates[0].AllocationID]++
	}
	for _, a := range pool {
		if n := first[a.AllocationID]; n < 10 {
			t.Errorf("%s is the first choice of %d of 100 instances, want about 25: %v", a.AllocationID, n, first)
		}
	}
}

func TestDecideNamesAtMostEightHolders(t *testing.T) {
	var pool []Address
	for n := 1; n <= 10; n++ {
		pool = append(pool, on(free(n), fmt.Sprintf("eni-%d", n), fmt.Sprintf("i-%02d", n)))
	}
	d := Decide(me, myENI, pool)
	want := "pool empty: 10 addresses, all associated (with i-01, i-10, i-02, i-03, i-04, i-05, i-06, i-07, 2 more)"
	if d.Reason != want {
		t.Errorf("reason\n got %q\nwant %q", d.Reason, want)
	}
}

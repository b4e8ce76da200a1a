package eip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

func testLog(t *testing.T) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	var mu sync.Mutex
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("log:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)), &buf
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// pool of four free addresses; my ENI, eni-b of i-b and eni-c of i-c are attached.
func newPool() *Fake {
	f := NewFake(free(1), free(2), free(3), free(4))
	f.Attach(myENI, me)
	f.Attach("eni-b", "i-b")
	f.Attach("eni-c", "i-c")
	return f
}

// takeByOther associates an address with the ENI of another instance of its own, i-other-N for
// eipalloc-N (an ENI holds one address: taking a second one frees the first).
func takeByOther(f *Fake, alloc string) error {
	n := strings.TrimPrefix(alloc, "eipalloc-")
	f.Attach("eni-other-"+n, "i-other-"+n)
	return f.Take(alloc, "eni-other-"+n)
}

func count(calls []string, op string) int {
	n := 0
	for _, c := range calls {
		if strings.HasPrefix(c, op+" ") {
			n++
		}
	}
	return n
}

// mustHold checks that the fake has alloc associated with eni under the returned address.
func mustHold(t *testing.T, f *Fake, got Address, alloc, eni string) {
	t.Helper()
	now, _ := f.Get(alloc)
	if got.AllocationID != alloc || got.AssociationID == "" || got.NetworkInterfaceID != eni ||
		now.NetworkInterfaceID != eni || now.AssociationID != got.AssociationID || got.PublicIP != now.PublicIP {
		t.Fatalf("claimed %+v, pool has %+v; want %s on %s", got, now, alloc, eni)
	}
}

func TestClaimTakesTheBestFree(t *testing.T) {
	f := newPool()
	log, logs := testLog(t)
	a, err := Claim(context.Background(), f, "lab", me, myENI, log)
	if err != nil {
		t.Fatal(err)
	}
	best := Decide(me, myENI, []Address{free(1), free(2), free(3), free(4)}).Candidates[0].AllocationID
	mustHold(t, f, a, best, myENI)
	if a.InstanceID != me {
		t.Errorf("instance = %q, want %s", a.InstanceID, me)
	}
	if got := f.Calls(); strings.Join(got, ";") != "Addresses ;AssociateAddress "+best {
		t.Errorf("calls = %v", got)
	}
	if !strings.Contains(logs.String(), "EIP pool: claimed an address") || !strings.Contains(logs.String(), "allocation="+best) {
		t.Errorf("claim not logged:\n%s", logs)
	}
}

// A restarted agent keeps the address on its ENI and writes nothing.
func TestClaimKeepsMine(t *testing.T) {
	f := newPool()
	if err := f.Take("eipalloc-3", myENI); err != nil {
		t.Fatal(err)
	}
	log, _ := testLog(t)
	a, err := Claim(context.Background(), f, "lab", me, myENI, log)
	if err != nil {
		t.Fatal(err)
	}
	mustHold(t, f, a, "eipalloc-3", myENI)
	if n := count(f.Calls(), "AssociateAddress"); n != 0 {
		t.Errorf("%d associations, want none", n)
	}
}

// Another instance takes my first choice between my list and my association: I get the next.
func TestClaimRaceTakesTheNext(t *testing.T) {
	f := newPool()
	cands := Decide(me, myENI, []Address{free(1), free(2), free(3), free(4)}).Candidates
	f.Hook = func(op, id string, apply func() error) error {
		if op == "AssociateAddress" && id == cands[0].AllocationID {
			if err := f.Take(id, "eni-b"); err != nil {
				return err
			}
		}
		return apply()
	}
	log, logs := testLog(t)
	a, err := Claim(context.Background(), f, "lab", me, myENI, log)
	if err != nil {
		t.Fatal(err)
	}
	mustHold(t, f, a, cands[1].AllocationID, myENI)
	if first, _ := f.Get(cands[0].AllocationID); first.NetworkInterfaceID != "eni-b" {
		t.Errorf("the raced address is now %+v, want it left on eni-b", first)
	}
	if !strings.Contains(logs.String(), "another instance took the address first") {
		t.Errorf("race not logged:\n%s", logs)
	}
}

// Others take every address I try: the pool ends empty, and the error says who holds what.
func TestClaimEveryCandidateRaced(t *testing.T) {
	f := newPool()
	f.Hook = func(op, id string, apply func() error) error {
		if op == "AssociateAddress" {
			if err := takeByOther(f, id); err != nil {
				return err
			}
		}
		return apply()
	}
	log, _ := testLog(t)
	_, err := Claim(context.Background(), f, "lab", me, myENI, log)
	if !errors.Is(err, ErrPoolEmpty) {
		t.Fatalf("err = %v, want ErrPoolEmpty", err)
	}
	want := "claim an Elastic IP from the pool of cluster lab for i-a: pool empty: 4 addresses, all associated (with i-other-1, i-other-2, i-other-3, i-other-4)"
	if err.Error() != want {
		t.Errorf("err\n got %q\nwant %q", err, want)
	}
	if n := count(f.Calls(), "AssociateAddress"); n != 4 {
		t.Errorf("%d associations, want one per address", n)
	}
}

// A list that keeps showing free addresses that are not: Claim gives up after MaxRounds.
func TestClaimRoundsAreBounded(t *testing.T) {
	f := newPool()
	stale, _ := f.Addresses(context.Background(), "lab", "")
	for _, a := range stale {
		if err := takeByOther(f, a.AllocationID); err != nil {
			t.Fatal(err)
		}
	}
	p := &staleList{Fake: f, snapshot: stale}
	log, _ := testLog(t)
	_, err := Claim(context.Background(), p, "lab", me, myENI, log)
	if !errors.Is(err, ErrPoolEmpty) || !strings.Contains(err.Error(), fmt.Sprintf("another instance took each address first, %d rounds in a row", MaxRounds)) {
		t.Fatalf("err = %v, want ErrPoolEmpty after %d rounds", err, MaxRounds)
	}
	if n := count(f.Calls(), "AssociateAddress"); n != 4*MaxRounds {
		t.Errorf("%d associations, want %d", n, 4*MaxRounds)
	}
	if p.lists != MaxRounds+1 {
		t.Errorf("%d lists, want %d", p.lists, MaxRounds+1)
	}
}

// staleList answers every list with an old snapshot, as an eventually consistent describe may.
type staleList struct {
	*Fake
	snapshot []Address
	lists    int
}

func (s *staleList) Addresses(context.Context, string, string) ([]Address, error) {
	s.lists++
	return s.snapshot, nil
}

// An association that times out after it landed: the next list shows it on my ENI, kept.
func TestClaimTimeoutThatLanded(t *testing.T) {
	f := newPool()
	f.Hook = func(op, id string, apply func() error) error {
		if op == "AssociateAddress" {
			if err := apply(); err != nil {
				return err
			}
			return fmt.Errorf("operation error EC2: AssociateAddress: %w", context.DeadlineExceeded)
		}
		return apply()
	}
	log, logs := testLog(t)
	a, err := Claim(context.Background(), f, "lab", me, myENI, log)
	if err != nil {
		t.Fatal(err)
	}
	best := Decide(me, myENI, []Address{free(1), free(2), free(3), free(4)}).Candidates[0].AllocationID
	mustHold(t, f, a, best, myENI)
	if n := count(f.Calls(), "AssociateAddress"); n != 1 {
		t.Errorf("%d associations, want 1 (no blind retry)", n)
	}
	if !strings.Contains(logs.String(), "keeping the address on my ENI") {
		t.Errorf("keep not logged:\n%s", logs)
	}
}

// An association that fails and did not land is the error, after one list to check.
func TestClaimFailureIsReturned(t *testing.T) {
	f := newPool()
	denied := errors.New("UnauthorizedOperation: not allowed")
	f.Hook = func(op, id string, apply func() error) error {
		if op == "AssociateAddress" {
			return denied
		}
		return apply()
	}
	log, _ := testLog(t)
	_, err := Claim(context.Background(), f, "lab", me, myENI, log)
	if !errors.Is(err, denied) || errors.Is(err, ErrPoolEmpty) {
		t.Fatalf("err = %v, want the association's error", err)
	}
	if !strings.Contains(err.Error(), "associate eipalloc-") || !strings.Contains(err.Error(), "with eni-a") {
		t.Errorf("err = %v, want it to name the address and the ENI", err)
	}
	calls := f.Calls()
	if count(calls, "AssociateAddress") != 1 || count(calls, "Addresses") != 2 {
		t.Errorf("calls = %v, want list, associate, list", calls)
	}
}

func TestClaimErrors(t *testing.T) {
	log, _ := testLog(t)
	ctx := context.Background()

	_, err := Claim(ctx, NewFake(), "lab", me, myENI, log)
	if !errors.Is(err, ErrPoolEmpty) || !strings.Contains(err.Error(), "pool empty: no address in the pool") {
		t.Errorf("empty pool: %v", err)
	}

	f := newPool()
	listErr := errors.New("throttled")
	f.Hook = func(op, _ string, apply func() error) error {
		if op == "Addresses" {
			return listErr
		}
		return apply()
	}
	if _, err := Claim(ctx, f, "lab", me, myENI, log); !errors.Is(err, listErr) || errors.Is(err, ErrPoolEmpty) {
		t.Errorf("list failure: %v", err)
	}

	for _, args := range [][3]string{{"", me, myENI}, {"lab", "", myENI}, {"lab", me, ""}} {
		if _, err := Claim(ctx, newPool(), args[0], args[1], args[2], log); err == nil {
			t.Errorf("Claim%q: no error", args)
		}
	}
}

// Many instances claim at once: every address goes to one of them, the others find the pool
// empty.
func TestClaimConcurrent(t *testing.T) {
	for _, n := range []int{1, 3, 4, 6} {
		t.Run(fmt.Sprint(n, " instances"), func(t *testing.T) {
			f := newPool()
			log, _ := testLog(t)
			got := make([]Address, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				id, eni := fmt.Sprintf("i-%d", i), fmt.Sprintf("eni-%d", i)
				f.Attach(eni, id)
				wg.Go(func() { got[i], errs[i] = Claim(context.Background(), f, "lab", id, eni, log) })
			}
			wg.Wait()
			held := map[string]string{}
			for i := range n {
				if errs[i] != nil {
					if !errors.Is(errs[i], ErrPoolEmpty) {
						t.Errorf("i-%d: %v", i, errs[i])
					}
					continue
				}
				eni := fmt.Sprintf("eni-%d", i)
				mustHold(t, f, got[i], got[i].AllocationID, eni)
				if other, dup := held[got[i].AllocationID]; dup {
					t.Errorf("%s claimed by %s and %s", got[i].AllocationID, other, eni)
				}
				held[got[i].AllocationID] = eni
			}
			if want := min(n, 4); len(held) != want {
				t.Errorf("%d addresses claimed by %d instances, want %d", len(held), n, want)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	ctx := context.Background()
	f := newPool()
	if err := f.Take("eipalloc-2", myENI); err != nil {
		t.Fatal(err)
	}
	mine, _ := f.Get("eipalloc-2")

	if err := Release(ctx, f, mine); err != nil {
		t.Fatal(err)
	}
	if a, _ := f.Get("eipalloc-2"); a.Associated() {
		t.Errorf("after release: %+v", a)
	}

	// Released twice, or reassociated by someone else since: success, and theirs stays.
	if err := Release(ctx, f, mine); err != nil {
		t.Errorf("second release: %v", err)
	}
	if err := f.Take("eipalloc-2", "eni-b"); err != nil {
		t.Fatal(err)
	}
	if err := Release(ctx, f, mine); err != nil {
		t.Errorf("release after reassociation: %v", err)
	}
	if a, _ := f.Get("eipalloc-2"); a.NetworkInterfaceID != "eni-b" {
		t.Errorf("someone else's association was removed: %+v", a)
	}

	// Nothing associated: nothing to do.
	n := len(f.Calls())
	if err := Release(ctx, f, free(3)); err != nil || len(f.Calls()) != n {
		t.Errorf("release of an unassociated address: %v, calls %v", err, f.Calls()[n:])
	}

	boom := errors.New("network down")
	f.Hook = func(string, string, func() error) error { return boom }
	b, _ := f.Get("eipalloc-2")
	if err := Release(ctx, f, b); !errors.Is(err, boom) || !strings.Contains(err.Error(), b.AssociationID) {
		t.Errorf("failed release: %v", err)
	}
}

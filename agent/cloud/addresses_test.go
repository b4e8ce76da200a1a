package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/headnat/headnat/agent/eip"
	"github.com/headnat/headnat/test/vpcsim"
)

func TestParseAddress(t *testing.T) {
	for _, c := range []struct {
		name    string
		in      types.Address
		want    eip.Address
		wantErr string
	}{{
		name: "free",
		in:   types.Address{AllocationId: aws.String("eipalloc-1"), PublicIp: aws.String("203.0.113.1")},
		want: eip.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.1"},
	}, {
		name: "associated",
		in: types.Address{AllocationId: aws.String("eipalloc-1"), PublicIp: aws.String("203.0.113.1"),
			AssociationId: aws.String("eipassoc-1"), NetworkInterfaceId: aws.String("eni-1"), InstanceId: aws.String("i-1")},
		want: eip.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.1", AssociationID: "eipassoc-1", NetworkInterfaceID: "eni-1", InstanceID: "i-1"},
	}, {
		name:    "no allocation id",
		in:      types.Address{PublicIp: aws.String("203.0.113.1")},
		wantErr: `DescribeAddresses: bad response: address "203.0.113.1" without allocation id`,
	}, {
		name:    "no public IP",
		in:      types.Address{AllocationId: aws.String("eipalloc-1")},
		wantErr: `DescribeAddresses: bad response: address eipalloc-1: public IP "" is not IPv4`,
	}, {
		name:    "unparsable public IP",
		in:      types.Address{AllocationId: aws.String("eipalloc-1"), PublicIp: aws.String("203.0.113")},
		wantErr: `DescribeAddresses: bad response: address eipalloc-1: public IP "203.0.113" is not IPv4`,
	}, {
		name:    "IPv6",
		in:      types.Address{AllocationId: aws.String("eipalloc-1"), PublicIp: aws.String("2001:db8::1")},
		wantErr: `DescribeAddresses: bad response: address eipalloc-1: public IP "2001:db8::1" is not IPv4`,
	}} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseAddress(c.in)
			if c.wantErr != "" {
				var br *BadResponseError
				if err == nil || err.Error() != c.wantErr || !errors.As(err, &br) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, c.want)
			}
		})
	}
}

// poolWorld is a subnet with cluster instances and a pool of Elastic IPs in vpcsim. The first
// DescribeAddresses of a round can be held by a gate so that racing claimers all see the same
// free addresses.
type poolWorld struct {
	sim       *vpcsim.Sim
	url       string
	subnet    string
	ids, enis []string
	gate      *listGate
	nextIP    int
}

func newPoolWorld(t *testing.T, instances int, onCall func(vpcsim.Call)) *poolWorld {
	t.Helper()
	w := &poolWorld{sim: vpcsim.New(vpcsim.Options{Region: testRegion, Seed: 8, OnCall: onCall}), gate: &listGate{}}
	vpc := w.sim.AddVPC("198.18.0.0/16", nil)
	w.subnet = w.sim.AddSubnet(vpc, azA, "198.18.0.0/24", nil)
	for range instances {
		id, eni := w.sim.AddInstance(vpcsim.InstanceSpec{SubnetID: w.subnet, Tags: map[string]string{TagCluster: testCluster}})
		w.ids, w.enis = append(w.ids, id), append(w.enis, eni)
	}
	srv := httptest.NewServer(w.gate.wrap(w.sim.Handler()))
	t.Cleanup(srv.Close)
	w.url = srv.URL
	return w
}

// addAddresses allocates n addresses tagged headnat:cluster=cluster ("" = untagged).
func (w *poolWorld) addAddresses(t *testing.T, n int, cluster string) []string {
	t.Helper()
	var ids []string
	for range n {
		w.nextIP++
		id := w.sim.AddAddress(fmt.Sprintf("203.0.113.%d", w.nextIP))
		if cluster != "" {
			if err := w.sim.Tag(id, map[string]string{TagCluster: cluster}); err != nil {
				t.Fatal(err)
			}
		}
		ids = append(ids, id)
	}
	return ids
}

func (w *poolWorld) client(t *testing.T, obs Observer, to Timeouts) (*Client, *logBuffer) {
	t.Helper()
	log, buf := testLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := New(ctx, Options{Region: testRegion, EC2Endpoint: w.url, Credentials: testCreds, Logger: log, Observer: obs, Timeouts: to})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c, buf
}

// mustBeOn checks that vpcsim has the address associated with eni, as a claim returned it.
func (w *poolWorld) mustBeOn(t *testing.T, a eip.Address, eni string) {
	t.Helper()
	v, ok := w.sim.Address(a.AllocationID)
	if !ok || v.ENI != eni || v.AssociationID == "" || v.AssociationID != a.AssociationID || v.PublicIP.String() != a.PublicIP {
		t.Fatalf("vpcsim has %+v, the claim returned %+v; want it on %s", v, a, eni)
	}
}

// listGate holds the answers to the next n DescribeAddresses until all n have read the pool.
type listGate struct {
	mu   sync.Mutex
	left int
	open chan struct{}
}

func (g *listGate) arm(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.left, g.open = n, make(chan struct{})
}

func (g *listGate) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.Form.Get("Action") != "DescribeAddresses" {
			h.ServeHTTP(w, r)
			return
		}
		g.mu.Lock()
		if g.left == 0 {
			g.mu.Unlock()
			h.ServeHTTP(w, r)
			return
		}
		g.left--
		last, open := g.left == 0, g.open
		g.mu.Unlock()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if last {
			close(open)
		}
		// Bounded below raceTimeouts.Describe; a second is too short for the other
		// claimant on a machine loaded with -race and the lab's tests.
		select {
		case <-open:
		case <-time.After(4 * time.Second):
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// raceTimeouts leave room for a gated list.
var raceTimeouts = Timeouts{Describe: 5 * time.Second, Attempt: 3 * time.Second}

func TestAddressesListsTheClusterPool(t *testing.T) {
	w := newPoolWorld(t, 1, nil)
	pool := w.addAddresses(t, 2, testCluster)
	w.addAddresses(t, 1, "other")
	w.addAddresses(t, 1, "")
	if _, err := w.sim.AssociateAddress(pool[1], w.enis[0]); err != nil {
		t.Fatal(err)
	}
	c, _ := w.client(t, nil, Timeouts{})
	got, err := c.Addresses(context.Background(), testCluster, "test")
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := w.sim.Address(pool[1])
	want := []eip.Address{
		{AllocationID: pool[0], PublicIP: "203.0.113.1"},
		{AllocationID: pool[1], PublicIP: "203.0.113.2", AssociationID: v1.AssociationID, NetworkInterfaceID: w.enis[0], InstanceID: w.ids[0]},
	}
	if pool[0] > pool[1] {
		want[0], want[1] = want[1], want[0]
	}
	if !slices.Equal(got, want) {
		t.Errorf("pool\n got %#v\nwant %#v", got, want)
	}
	if _, err := c.Addresses(context.Background(), "", "test"); err == nil {
		t.Error("listed the pool of an empty cluster name")
	}
}

func TestAssociateAndDisassociateAddress(t *testing.T) {
	w := newPoolWorld(t, 2, nil)
	alloc := w.addAddresses(t, 1, testCluster)[0]
	obs := &recorder{}
	c, logs := w.client(t, obs, Timeouts{})
	ctx := context.Background()

	assoc, err := c.AssociateAddress(ctx, alloc, w.enis[0], "claim")
	if err != nil {
		t.Fatal(err)
	}
	w.mustBeOn(t, eip.Address{AllocationID: alloc, PublicIP: "203.0.113.1", AssociationID: assoc}, w.enis[0])
	if !strings.Contains(logs.String(), "op=AssociateAddress reason=claim") {
		t.Errorf("association not logged with its reason:\n%s", logs)
	}

	// Another ENI is refused, and the address stays; the refusal is an answer, not a failure.
	_, err = c.AssociateAddress(ctx, alloc, w.enis[1], "claim too")
	if !errors.Is(err, eip.ErrTaken) || ErrorCode(err) != "Resource.AlreadyAssociated" {
		t.Fatalf("association with a second ENI: %v (code %q), want eip.ErrTaken", err, ErrorCode(err))
	}
	w.mustBeOn(t, eip.Address{AllocationID: alloc, PublicIP: "203.0.113.1", AssociationID: assoc}, w.enis[0])
	if n := w.sim.CountCalls("AssociateAddress"); n != 1 {
		t.Errorf("%d successful associations, want 1", n)
	}

	if err := c.DisassociateAddress(ctx, assoc, "release"); err != nil {
		t.Fatal(err)
	}
	if v, _ := w.sim.Address(alloc); v.AssociationID != "" {
		t.Errorf("after disassociation: %+v", v)
	}
	err = c.DisassociateAddress(ctx, assoc, "release again")
	if !errors.Is(err, eip.ErrNotAssociated) || ErrorCode(err) != "InvalidAssociationID.NotFound" {
		t.Errorf("second disassociation: %v, want eip.ErrNotAssociated", err)
	}

	if keys := obs.keys(); len(keys) != 0 {
		t.Errorf("answers observed as API errors: %v", keys)
	}
	if strings.Contains(logs.String(), "aws call failed") {
		t.Errorf("answers logged as failures:\n%s", logs)
	}

	// A real failure is one.
	_, err = c.AssociateAddress(ctx, "eipalloc-0ffffffffffffffff", w.enis[0], "claim")
	if errors.Is(err, eip.ErrTaken) || ErrorCode(err) != "InvalidAllocationID.NotFound" || obs.counts()["AssociateAddress/InvalidAllocationID.NotFound"] != 1 {
		t.Errorf("unknown allocation: %v, observed %v", err, obs.counts())
	}
	if _, err := c.AssociateAddress(ctx, "", w.enis[0], "claim"); err == nil {
		t.Error("associated an empty allocation id")
	}
	if err := c.DisassociateAddress(ctx, "", "release"); err == nil {
		t.Error("disassociated an empty association id")
	}
}

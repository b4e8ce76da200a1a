package lab

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// apiStaleness is how old a Describe answer may be in TestStaleAPIConverges: the agents read
// routes up to a second behind their own writes and each other's.
const apiStaleness = time.Second

// With eventually consistent Describe calls the agents still converge: nothing moves while all
// is well, and when a NAT dies its peer takes its table without any table moving back and forth.
func TestStaleAPIConverges(t *testing.T) {
	l := ownLab(t, Options{Name: "stale", FailbackAfter: testFailback, APIStaleness: apiStaleness})
	ctx := context.Background()
	a, b := l.MustSite("a"), l.MustSite("b")
	for _, s := range l.Sites() {
		waitTarget(t, l, s.RouteTable, s.Name, 30*time.Second)
	}
	// Start-up writes may still be read stale for a moment; the quiet period starts after.
	time.Sleep(2 * apiStaleness)

	quiet := time.Now()
	time.Sleep(10 * time.Second)
	if ms := l.MovesSince(quiet); len(ms) != 0 {
		t.Fatalf("routes moved while every NAT was healthy (a false failover): %+v", ms)
	}
	for _, s := range l.Sites() {
		if site, st := l.Target(s.RouteTable); site != s.Name || st != "active" {
			t.Fatalf("table private-%s points at %q (%s) after the quiet period", s.Name, site, st)
		}
	}

	killed := time.Now()
	if err := l.Kill(a.Name); err != nil {
		t.Fatal(err)
	}
	waitTarget(t, l, a.RouteTable, b.Name, 30*time.Second)
	// The API really is stale: for a while after the take-over, reads may still show nat-a.
	var moved time.Time
	for _, m := range l.MovesSince(killed) {
		if m.Table == a.RouteTable && moved.IsZero() {
			moved = m.Time
		}
	}
	stale := false
	for i := 0; i < 10000 && !stale && time.Since(moved) < apiStaleness/2; i++ {
		stale = describesTarget(l, a.RouteTable, a.ENI)
	}
	if !stale && time.Since(moved) < apiStaleness {
		t.Errorf("no Describe call showed private-a's old target within %s of the take-over", apiStaleness/2)
	}
	if err := l.WaitEgress(ctx, a, b, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Several refreshes (every 2s) read answers from both sides of the take-over.
	time.Sleep(4*apiStaleness + 4*time.Second)

	moves := map[string][]string{} // table -> target sites, in order
	for _, m := range l.MovesSince(killed) {
		moves[m.Table] = append(moves[m.Table], m.TargetAZ)
	}
	t.Logf("route moves since nat-a died: private-a %v, private-b %v", moves[a.RouteTable], moves[b.RouteTable])
	if got := moves[b.RouteTable]; len(got) != 0 {
		t.Errorf("private-b, served by the surviving nat-b, moved: %v", got)
	}
	got := moves[a.RouteTable]
	if len(got) == 0 || slices.ContainsFunc(got, func(site string) bool { return site != b.Name }) {
		t.Errorf("private-a moved to %v, want nat-b only", got)
	}
	for _, tbl := range []string{a.RouteTable, b.RouteTable} {
		if back := backAndForth(moves[tbl]); back != "" {
			t.Errorf("table %s moved back and forth: %v (back to %s)", tbl, moves[tbl], back)
		}
	}
	for _, s := range l.Sites() {
		if site, st := l.Target(s.RouteTable); site != b.Name || st != "active" {
			t.Errorf("table private-%s points at %q (%s), want nat-b", s.Name, site, st)
		}
	}
}

// backAndForth returns a target that a sequence of moves returns to after leaving it, "" if
// none: [b b] is a repeated write, [b a b] a fight.
func backAndForth(targets []string) string {
	left := map[string]bool{}
	for i, t := range targets {
		if left[t] {
			return t
		}
		if i > 0 && targets[i-1] != t {
			left[targets[i-1]] = true
		}
	}
	return ""
}

// describesTarget asks the simulated API (in process, not through the lab's request log)
// whether a table's default route targets eni.
func describesTarget(l *Lab, table, eni string) bool {
	form := url.Values{"Action": {"DescribeRouteTables"}, "Version": {"2016-11-15"}, "RouteTableId.1": {table}}
	req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	l.Sim.Handler().ServeHTTP(rec, req)
	return strings.Contains(rec.Body.String(), "<networkInterfaceId>"+eni+"</networkInterfaceId>")
}

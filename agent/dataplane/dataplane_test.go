package dataplane

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

type fixture struct {
	ipt   *FakeIPTables
	sys   *FakeSysctl
	links *FakeLinks
	dp    *Dataplane
	spec  Spec
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ipt, sys, links := newFakes()
	return &fixture{ipt: ipt, sys: sys, links: links, dp: newTestDataplane(t, ipt, sys, links),
		spec: Spec{VPCCIDRs: pfx("198.18.0.0/16"), StatePath: filepath.Join(t.TempDir(), "run", "dataplane.json")}}
}

func (f *fixture) apply(t *testing.T) Result {
	t.Helper()
	res, err := f.dp.Apply(context.Background(), f.spec)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return res
}

func (f *fixture) verify(t *testing.T) []Finding {
	t.Helper()
	fs, err := f.dp.Verify(context.Background(), f.spec)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return fs
}

func kinds(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Kind+" "+f.Key+f.Chain)
	}
	slices.Sort(out)
	return out
}

func TestApplySetsSysctlsAndIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.spec.EgressInterface = "" // from the default route
	res := f.apply(t)
	if res.Interface != "eth0" {
		t.Fatalf("interface %q", res.Interface)
	}
	want := map[string]string{
		KeyIPForward:                        "1",
		KeyLocalPortRange:                   "1024 65535",
		KeyAllSendRedirects:                 "0",
		"net.ipv4.conf.eth0.send_redirects": "0",
		KeyConntrackMax:                     "262144",
		KeyTCPTimeoutEstablised:             "7440",
		KeyUDPTimeout:                       "30",
		KeyUDPTimeoutStream:                 "120",
		"net.ipv4.conf.eth0.rp_filter":      "0", // loose already: untouched
	}
	got := f.sys.Snapshot()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if got["net.ipv4.conf.eth1.send_redirects"] != "1" {
		t.Errorf("another interface's sysctl changed")
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify after Apply: %v", fs)
	}
	for i := range 5 {
		res := f.apply(t)
		if len(res.Changes) != 0 {
			t.Fatalf("Apply #%d changed %v", i+2, res.Changes)
		}
	}
}

func TestApplyRelaxesStrictRPFilterOnly(t *testing.T) {
	for _, tt := range []struct {
		all, iface, want string
	}{
		{"1", "0", "2"}, {"0", "1", "2"}, {"0", "0", "0"}, {"2", "1", "1"}, {"1", "2", "2"},
	} {
		f := newFixture(t)
		f.sys.Values[KeyAllRPFilter] = tt.all
		f.sys.Values["net.ipv4.conf.eth0.rp_filter"] = tt.iface
		f.apply(t)
		if got := f.sys.Values["net.ipv4.conf.eth0.rp_filter"]; got != tt.want {
			t.Errorf("all=%s eth0=%s: eth0 became %s, want %s", tt.all, tt.iface, got, tt.want)
		}
		if f.sys.Values[KeyAllRPFilter] != tt.all {
			t.Errorf("all.rp_filter changed")
		}
		if fs := f.verify(t); len(fs) != 0 {
			t.Errorf("Verify: %v", fs)
		}
		// Tightening it again is a deviation, unless all is loose.
		f.sys.Values["net.ipv4.conf.eth0.rp_filter"] = "1"
		fs := f.verify(t)
		if tt.all == "2" && len(fs) != 0 {
			t.Errorf("Verify with all loose: %v", fs)
		}
		if tt.all != "2" && (len(fs) != 1 || fs[0].Key != "net.ipv4.conf.eth0.rp_filter") {
			t.Errorf("Verify after tightening: %v", fs)
		}
	}
}

func TestConntrackMaxReadOnlyIsANoteNotADeviation(t *testing.T) {
	f := newFixture(t)
	f.sys.ReadOnly[KeyConntrackMax] = true
	f.spec.ConntrackMax = 100000
	res := f.apply(t)
	if f.sys.Values[KeyConntrackMax] != "262144" {
		t.Fatal("read-only value changed")
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, KeyConntrackMax) }) {
		t.Fatalf("no note about %s: %v", KeyConntrackMax, res.Notes)
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify: %v", fs)
	}
	// Absent conntrack keys (module not loaded) are notes too.
	delete(f.sys.Values, KeyUDPTimeoutStream)
	if _, err := f.dp.Apply(context.Background(), f.spec); err != nil {
		t.Fatal(err)
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify: %v", fs)
	}
}

func TestRemoveRestoresExactlyWhatApplyChanged(t *testing.T) {
	f := newFixture(t)
	addForeign(t, f.ipt)
	f.sys.Values[KeyAllRPFilter] = "1"
	sysBefore := f.sys.Snapshot()
	iptBefore := f.ipt.Save()
	f.apply(t)
	if _, err := os.Stat(f.spec.StatePath); err != nil {
		t.Fatalf("no state file: %v", err)
	}
	// A second Apply must not overwrite the recorded previous values.
	f.apply(t)
	res, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.sys.Snapshot(); !maps.Equal(got, sysBefore) {
		t.Fatalf("sysctls after Remove:\n%v\nwant\n%v", got, sysBefore)
	}
	if got := f.ipt.Save(); got != iptBefore {
		t.Fatalf("iptables after Remove:\n%s\nwant\n%s", got, iptBefore)
	}
	if _, err := os.Stat(f.spec.StatePath); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state file left: %v", err)
	}
	// ip_forward is restored before the filter chain goes.
	iFwd := slices.IndexFunc(res.Changes, func(c Change) bool { return c.Key == KeyIPForward })
	iFilter := slices.IndexFunc(res.Changes, func(c Change) bool { return c.Kind == ChangeChainDelete && c.Table == "filter" })
	if iFwd < 0 || iFilter < 0 || iFwd > iFilter {
		t.Fatalf("order of Remove: %v", res.Changes)
	}
	// Idempotent.
	writes := f.ipt.Writes
	res, err = f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath})
	if err != nil || len(res.Changes) != 0 || f.ipt.Writes != writes {
		t.Fatalf("second Remove: %v, %v", res.Changes, err)
	}
}

func TestRemoveLeavesSysctlChangedSinceApply(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	f.sys.Values[KeyTCPTimeoutEstablised] = "9000" // the operator's later choice
	res, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath})
	if err != nil {
		t.Fatal(err)
	}
	if f.sys.Values[KeyTCPTimeoutEstablised] != "9000" {
		t.Fatal("operator's value overwritten")
	}
	if f.sys.Values[KeyIPForward] != "0" {
		t.Fatal("ip_forward not restored")
	}
	if !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, KeyTCPTimeoutEstablised) }) {
		t.Fatalf("no note: %v", res.Notes)
	}
}

func TestRemoveKeepsStateWhenRestoreFails(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	f.sys.ReadOnly[KeyIPForward] = true
	if _, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath}); err == nil {
		t.Fatal("Remove succeeded although ip_forward could not be restored")
	}
	st, err := loadState(f.spec.StatePath)
	if err != nil || len(st.Sysctls) != 1 || st.Sysctls[0].Key != KeyIPForward {
		t.Fatalf("state after failed restore: %+v %v", st, err)
	}
	delete(f.sys.ReadOnly, KeyIPForward)
	if _, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath}); err != nil {
		t.Fatal(err)
	}
	if f.sys.Values[KeyIPForward] != "0" {
		t.Fatal("ip_forward not restored on retry")
	}
}

func TestApplyRefusesBadInputBeforeWriting(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*fixture)
		want string
	}{
		{"unknown interface", func(f *fixture) { f.spec.EgressInterface = "nope0" }, `egress interface "nope0" does not exist`},
		{"interface down", func(f *fixture) { f.spec.EgressInterface = "eth2" }, "egress interface eth2 is down"},
		{"no default route", func(f *fixture) { f.links.Default = "" }, "no IPv4 default route"},
		{"default route to a missing interface", func(f *fixture) { f.links.Default = "gone0" }, `"gone0" does not exist`},
		{"no CIDR", func(f *fixture) { f.spec.VPCCIDRs = nil }, "no VPC CIDR"},
		{"host bits", func(f *fixture) { f.spec.VPCCIDRs = pfx("198.18.0.1/16") }, "host bits"},
		{"unreadable rp_filter", func(f *fixture) { delete(f.sys.Values, "net.ipv4.conf.eth0.rp_filter") }, "rp_filter"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.mod(f)
			sysBefore := f.sys.Snapshot()
			_, err := f.dp.Apply(context.Background(), f.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Apply = %v, want %q", err, tt.want)
			}
			if f.ipt.Writes != 0 || !maps.Equal(f.sys.Snapshot(), sysBefore) {
				t.Fatalf("Apply wrote despite the error: %d iptables writes", f.ipt.Writes)
			}
			if _, err := os.Stat(filepath.Dir(f.spec.StatePath)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("state directory created: %v", err)
			}
			// Plan refuses the same input.
			if _, err := f.dp.Plan(context.Background(), f.spec); err == nil {
				t.Fatal("Plan accepted it")
			}
		})
	}
}

func TestVerifyReportsEachDeviation(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	masq := desiredChains(f.spec.WithDefaults(), hostView{iface: "eth0"})[1].Rules[1]
	if err := f.ipt.Delete("nat", ChainPostrouting, masq...); err != nil {
		t.Fatal(err)
	}
	drop := desiredChains(f.spec, hostView{iface: "eth0"})[0].Rules[0]
	if err := f.ipt.Append("filter", ChainForward, drop...); err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.Append("filter", ChainForward, r("-j ACCEPT")...); err != nil {
		t.Fatal(err)
	}
	mj := chainSpec{Name: ChainMangleFwd}.Jump()
	if err := f.ipt.Delete("mangle", "FORWARD", mj...); err != nil {
		t.Fatal(err)
	}
	fj := chainSpec{Name: ChainForward}.Jump()
	if err := f.ipt.Append("filter", "FORWARD", fj...); err != nil {
		t.Fatal(err)
	}
	f.sys.Values[KeyIPForward] = "0"
	got := kinds(f.verify(t))
	want := []string{
		"jump-duplicate HEADNAT-FORWARDFORWARD",
		"jump-missing HEADNAT-MANGLE-FWDFORWARD",
		"rule-duplicate HEADNAT-FORWARD",
		"rule-missing HEADNAT-POSTROUTING",
		"rule-unexpected HEADNAT-FORWARD",
		"sysctl net.ipv4.ip_forward",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %q\nwant %q", got, want)
	}
	for _, fd := range f.verify(t) {
		if fd.String() == "" || strings.Contains(fd.String(), "\n") {
			t.Fatalf("bad String(): %q", fd.String())
		}
	}
	res := f.apply(t)
	if len(res.Changes) == 0 {
		t.Fatal("Apply repaired nothing")
	}
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify after repair: %v", fs)
	}
	// Order only.
	rules := f.ipt.Rules("filter", ChainForward)
	if err := f.ipt.DeleteById("filter", ChainForward, 1); err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.Append("filter", ChainForward, rules[0]...); err != nil {
		t.Fatal(err)
	}
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"rule-order HEADNAT-FORWARD"}) {
		t.Fatalf("findings %q", got)
	}
}

func TestVerifyInterfaceFindings(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	f.links.Links["eth0"] = Link{Name: "eth0", AdminUp: true, OperState: "lowerlayerdown"}
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"interface-down eth0"}) {
		t.Fatalf("findings %q", got)
	}
	delete(f.links.Links, "eth0")
	got := kinds(f.verify(t))
	if !slices.Equal(got, []string{"interface-missing (from the default route)"}) && !slices.Equal(got, []string{"interface-missing eth0"}) {
		t.Fatalf("findings %q", got)
	}
	f.spec.EgressInterface = "eth0"
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"interface-missing eth0"}) {
		t.Fatalf("findings %q", got)
	}
	f.links.Default = ""
	f.spec.EgressInterface = ""
	if got := kinds(f.verify(t)); !slices.Equal(got, []string{"interface-missing (from the default route)"}) {
		t.Fatalf("findings %q", got)
	}
}

func TestVerifyOnCleanHost(t *testing.T) {
	f := newFixture(t)
	got := kinds(f.verify(t))
	for _, w := range []string{"chain-missing HEADNAT-FORWARD", "jump-missing HEADNAT-POSTROUTINGPOSTROUTING", "sysctl net.ipv4.ip_forward"} {
		if !slices.Contains(got, w) {
			t.Errorf("missing %q in %q", w, got)
		}
	}
	if f.ipt.Writes != 0 {
		t.Fatal("Verify wrote")
	}
}

func TestApplyMovesToANewInterfaceAndSpec(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	f.spec.EgressInterface = "eth1"
	f.spec.ExtraSourceCIDRs = pfx("100.64.0.0/10")
	f.apply(t)
	if fs := f.verify(t); len(fs) != 0 {
		t.Fatalf("Verify: %v", fs)
	}
	for _, l := range strings.Split(f.ipt.Save(), "\n") {
		if strings.Contains(l, "HEADNAT") && strings.Contains(l, "eth0") {
			t.Fatalf("stale rule: %s", l)
		}
	}
	// Remove restores both interfaces' sysctls.
	if _, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"net.ipv4.conf.eth0.send_redirects", "net.ipv4.conf.eth1.send_redirects"} {
		if f.sys.Values[k] != "1" {
			t.Errorf("%s = %s after Remove", k, f.sys.Values[k])
		}
	}
}

func TestApplyFailureMidwayThenRecovers(t *testing.T) {
	for n := 1; ; n++ {
		f := newFixture(t)
		boom := errors.New("boom")
		f.ipt.AfterWrite = func(string) error {
			if f.ipt.Writes == n {
				return boom
			}
			return nil
		}
		_, err := f.dp.Apply(context.Background(), f.spec)
		if err == nil {
			if n < 10 {
				t.Fatalf("Apply made only %d writes", n-1)
			}
			break
		}
		if !errors.Is(err, boom) {
			t.Fatalf("write %d: Apply = %v", n, err)
		}
		if f.sys.Values[KeyIPForward] != "0" {
			t.Fatalf("write %d: forwarding switched on after a failed rule write", n)
		}
		f.ipt.AfterWrite = nil
		f.apply(t)
		if fs := f.verify(t); len(fs) != 0 {
			t.Fatalf("write %d: Verify: %v", n, fs)
		}
	}
}

func TestRemoveFailsWhenAForeignRuleUsesOurChain(t *testing.T) {
	f := newFixture(t)
	f.apply(t)
	if err := f.ipt.NewChain("filter", "OPERATOR"); err != nil {
		t.Fatal(err)
	}
	if err := f.ipt.Append("filter", "OPERATOR", "-j", ChainForward); err != nil {
		t.Fatal(err)
	}
	_, err := f.dp.Remove(context.Background(), RemoveOptions{StatePath: f.spec.StatePath})
	if err == nil || !strings.Contains(err.Error(), "delete chain filter HEADNAT-FORWARD") {
		t.Fatalf("Remove = %v", err)
	}
	if got := f.ipt.Rules("filter", "OPERATOR"); len(got) != 1 {
		t.Fatalf("foreign rule touched: %q", got)
	}
	// The rest was still removed and restored.
	if f.sys.Values[KeyIPForward] != "0" {
		t.Fatal("ip_forward not restored")
	}
}

func TestPlanWritesNothing(t *testing.T) {
	f := newFixture(t)
	p, err := f.dp.Plan(context.Background(), f.spec)
	if err != nil {
		t.Fatal(err)
	}
	if f.ipt.Writes != 0 {
		t.Fatal("Plan wrote")
	}
	if _, err := os.Stat(filepath.Dir(f.spec.StatePath)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Plan created the state directory")
	}
	s := p.String()
	for _, w := range []string{"egress interface: eth0", "net.ipv4.ip_forward = 1 (now 0)", "-A HEADNAT-POSTROUTING -s 198.18.0.0/16 -o eth0", "apply would fix:"} {
		if !strings.Contains(s, w) {
			t.Errorf("plan lacks %q:\n%s", w, s)
		}
	}
	f.apply(t)
	p, err = f.dp.Plan(context.Background(), f.spec)
	if err != nil || len(p.Findings) != 0 {
		t.Fatalf("Plan after Apply: %v %v", p.Findings, err)
	}
}

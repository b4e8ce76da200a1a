package dataplane

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
)

// FakeIPTables is an in-memory iptables for unit tests of the reconcile logic. It stores
// rules as argument lists and lists them the way `iptables -S` does, so rules added in the
// canonical form read back identically.
type FakeIPTables struct {
	mu     sync.Mutex
	tables map[string]*fakeTable
	// AfterWrite, when set, runs after every successful write with the write's description;
	// a non-nil error from it is returned by the write (the write itself stays done).
	AfterWrite func(op string) error
	// Writes counts successful writes.
	Writes int
}

type fakeTable struct {
	order  []string
	chains map[string]*fakeChain
}

type fakeChain struct {
	builtin bool
	rules   [][]string
}

// NewFakeIPTables returns an iptables with the built-in chains of filter, nat and mangle.
func NewFakeIPTables() *FakeIPTables {
	f := &FakeIPTables{tables: map[string]*fakeTable{}}
	for t, chains := range map[string][]string{
		"filter": {"INPUT", "FORWARD", "OUTPUT"},
		"nat":    {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"},
		"mangle": {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"},
	} {
		ft := &fakeTable{chains: map[string]*fakeChain{}}
		for _, c := range chains {
			ft.order = append(ft.order, c)
			ft.chains[c] = &fakeChain{builtin: true}
		}
		f.tables[t] = ft
	}
	return f
}

var errFakeNoChain = errors.New("iptables: No chain/target/match by that name")

func (f *FakeIPTables) chain(table, chain string) (*fakeTable, *fakeChain, error) {
	t, ok := f.tables[table]
	if !ok {
		return nil, nil, fmt.Errorf("table %s: %w", table, errFakeNoChain)
	}
	c, ok := t.chains[chain]
	if !ok {
		return t, nil, fmt.Errorf("%s %s: %w", table, chain, errFakeNoChain)
	}
	return t, c, nil
}

func (f *FakeIPTables) wrote(op string) error {
	f.Writes++
	if f.AfterWrite != nil {
		return f.AfterWrite(op)
	}
	return nil
}

// checkTarget refuses a rule jumping to a chain that does not exist, as iptables does.
func (f *FakeIPTables) checkTarget(t *fakeTable, rule []string) error {
	tg := target(rule)
	switch tg {
	case "", "ACCEPT", "DROP", "RETURN", "REJECT", "MASQUERADE", "SNAT", "DNAT", "TCPMSS", "MARK", "LOG", "CONNMARK":
		return nil
	}
	if _, ok := t.chains[tg]; !ok {
		return fmt.Errorf("target %s: %w", tg, errFakeNoChain)
	}
	return nil
}

func (f *FakeIPTables) List(table, chain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, c, err := f.chain(table, chain)
	if err != nil {
		return nil, err
	}
	var out []string
	if c.builtin {
		out = append(out, "-P "+chain+" ACCEPT")
	} else {
		out = append(out, "-N "+chain)
	}
	for _, r := range c.rules {
		out = append(out, ruleLine(chain, r))
	}
	return out, nil
}

func (f *FakeIPTables) ListById(table, chain string, id int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, c, err := f.chain(table, chain)
	if err != nil {
		return "", err
	}
	if id < 1 || id > len(c.rules) {
		return "", fmt.Errorf("iptables: Index of rule %d too big", id)
	}
	return ruleLine(chain, c.rules[id-1]), nil
}

func (f *FakeIPTables) ChainExists(table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, _, err := f.chain(table, chain)
	return err == nil, nil
}

func (f *FakeIPTables) NewChain(table, chain string) error {
	f.mu.Lock()
	t, _, err := f.chain(table, chain)
	if t == nil {
		f.mu.Unlock()
		return err
	}
	if err == nil {
		f.mu.Unlock()
		return errors.New("iptables: Chain already exists")
	}
	t.order = append(t.order, chain)
	t.chains[chain] = &fakeChain{}
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -N %s", table, chain))
}

func (f *FakeIPTables) Insert(table, chain string, pos int, rulespec ...string) error {
	f.mu.Lock()
	t, c, err := f.chain(table, chain)
	if err == nil {
		err = f.checkTarget(t, rulespec)
	}
	if err == nil && (pos < 1 || pos > len(c.rules)+1) {
		err = fmt.Errorf("iptables: Index of insertion too big (%d)", pos)
	}
	if err != nil {
		f.mu.Unlock()
		return err
	}
	c.rules = slices.Insert(c.rules, pos-1, slices.Clone(rulespec))
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -I %s %d %s", table, chain, pos, strings.Join(rulespec, " ")))
}

// Append is not in the IPTables interface; tests use it to build foreign state.
func (f *FakeIPTables) Append(table, chain string, rulespec ...string) error {
	f.mu.Lock()
	t, c, err := f.chain(table, chain)
	if err == nil {
		err = f.checkTarget(t, rulespec)
	}
	if err != nil {
		f.mu.Unlock()
		return err
	}
	c.rules = append(c.rules, slices.Clone(rulespec))
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -A %s %s", table, chain, strings.Join(rulespec, " ")))
}

func (f *FakeIPTables) Delete(table, chain string, rulespec ...string) error {
	f.mu.Lock()
	_, c, err := f.chain(table, chain)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	i := slices.IndexFunc(c.rules, func(r []string) bool { return slices.Equal(r, rulespec) })
	if i < 0 {
		f.mu.Unlock()
		return errors.New("iptables: Bad rule (does a matching rule exist in that chain?)")
	}
	c.rules = slices.Delete(c.rules, i, i+1)
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -D %s %s", table, chain, strings.Join(rulespec, " ")))
}

func (f *FakeIPTables) DeleteById(table, chain string, id int) error {
	f.mu.Lock()
	_, c, err := f.chain(table, chain)
	if err == nil && (id < 1 || id > len(c.rules)) {
		err = fmt.Errorf("iptables: Index of deletion too big (%d)", id)
	}
	if err != nil {
		f.mu.Unlock()
		return err
	}
	c.rules = slices.Delete(c.rules, id-1, id)
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -D %s %d", table, chain, id))
}

func (f *FakeIPTables) ClearChain(table, chain string) error {
	f.mu.Lock()
	t, c, err := f.chain(table, chain)
	if t == nil {
		f.mu.Unlock()
		return err
	}
	if c == nil {
		t.order = append(t.order, chain)
		t.chains[chain] = &fakeChain{}
	} else {
		c.rules = nil
	}
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -F %s", table, chain))
}

func (f *FakeIPTables) DeleteChain(table, chain string) error {
	f.mu.Lock()
	t, c, err := f.chain(table, chain)
	switch {
	case err != nil:
	case c.builtin:
		err = errors.New("iptables: Can't delete built-in chain")
	case len(c.rules) > 0:
		err = errors.New("iptables: Directory not empty")
	default:
		for _, other := range t.chains {
			for _, r := range other.rules {
				if target(r) == chain {
					err = errors.New("iptables: Too many links")
				}
			}
		}
	}
	if err != nil {
		f.mu.Unlock()
		return err
	}
	delete(t.chains, chain)
	t.order = slices.DeleteFunc(t.order, func(s string) bool { return s == chain })
	f.mu.Unlock()
	return f.wrote(fmt.Sprintf("-t %s -X %s", table, chain))
}

// Save renders every table like `iptables -S` per table, tables in name order.
func (f *FakeIPTables) Save() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, tn := range slices.Sorted(maps.Keys(f.tables)) {
		t := f.tables[tn]
		fmt.Fprintf(&b, "*%s\n", tn)
		for _, cn := range t.order {
			if t.chains[cn].builtin {
				fmt.Fprintf(&b, "-P %s ACCEPT\n", cn)
			} else {
				fmt.Fprintf(&b, "-N %s\n", cn)
			}
		}
		for _, cn := range t.order {
			for _, r := range t.chains[cn].rules {
				fmt.Fprintf(&b, "%s\n", ruleLine(cn, r))
			}
		}
	}
	return b.String()
}

// Rules returns a copy of the rules of a chain (nil when it does not exist).
func (f *FakeIPTables) Rules(table, chain string) [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, c, err := f.chain(table, chain)
	if err != nil {
		return nil
	}
	out := make([][]string, len(c.rules))
	for i, r := range c.rules {
		out[i] = slices.Clone(r)
	}
	return out
}

// FakeSysctl is an in-memory sysctl tree. Keys in ReadOnly refuse writes with
// fs.ErrPermission; absent keys read as fs.ErrNotExist.
type FakeSysctl struct {
	mu       sync.Mutex
	Values   map[string]string
	ReadOnly map[string]bool
}

// NewFakeSysctl returns the values of a fresh Linux network namespace with interface iface.
func NewFakeSysctl(ifaces ...string) *FakeSysctl {
	v := map[string]string{
		KeyIPForward:            "0",
		KeyLocalPortRange:       "32768\t60999",
		KeyAllSendRedirects:     "1",
		KeyAllRPFilter:          "0",
		KeyConntrackMax:         "262144",
		KeyTCPTimeoutEstablised: "432000",
		KeyUDPTimeout:           "30",
		KeyUDPTimeoutStream:     "120",
	}
	for _, i := range ifaces {
		v[ConfKey(i, "send_redirects")] = "1"
		v[ConfKey(i, "rp_filter")] = "0"
	}
	return &FakeSysctl{Values: v, ReadOnly: map[string]bool{}}
}

func (s *FakeSysctl) Get(key string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.Values[key]
	if !ok {
		return "", &fs.PathError{Op: "open", Path: key, Err: fs.ErrNotExist}
	}
	return v, nil
}

func (s *FakeSysctl) Set(key, value string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.Values[key]; !ok {
		return &fs.PathError{Op: "open", Path: key, Err: fs.ErrNotExist}
	}
	if s.ReadOnly[key] {
		return &fs.PathError{Op: "open", Path: key, Err: fs.ErrPermission}
	}
	s.Values[key] = value
	return nil
}

func (s *FakeSysctl) Writable(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.Values[key]
	return ok && !s.ReadOnly[key]
}

// Snapshot returns a copy of the values.
func (s *FakeSysctl) Snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.Values)
}

// FakeLinks holds interfaces, the default route's interface and the other routes.
type FakeLinks struct {
	mu      sync.Mutex
	Links   map[string]Link
	Default string // "" means no default route
	// Routes of the main table besides the default route.
	RouteList []Route
}

func (l *FakeLinks) Link(name string) (Link, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.Links[name]
	if !ok {
		return Link{}, fmt.Errorf("%s: %w", name, ErrLinkNotFound)
	}
	return k, nil
}

func (l *FakeLinks) Routes() ([]Route, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.RouteList)
	if l.Default != "" {
		out = append(out, Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Interface: l.Default})
	}
	return out, nil
}

func (l *FakeLinks) DefaultRouteInterface() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Default == "" {
		return "", errors.New("no IPv4 default route in the main table")
	}
	return l.Default, nil
}

// FakeLock records the locks taken, as Deps.Lock. It does not block: tests run one
// Dataplane at a time.
type FakeLock struct {
	mu sync.Mutex
	// Taken lists the paths locked, in order; Deleted, the paths whose release deleted the
	// file.
	Taken, Deleted []string
	Held           bool
}

func (l *FakeLock) Lock(path string) (func(deleteFile bool), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Held {
		return nil, errors.New("fake lock: already held")
	}
	l.Held = true
	l.Taken = append(l.Taken, path)
	return func(deleteFile bool) {
		l.mu.Lock()
		defer l.mu.Unlock()
		if deleteFile {
			l.Deleted = append(l.Deleted, path)
		}
		l.Held = false
	}, nil
}

//go:build linux

package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/headnat/headnat/test/vpcsim"
)

// KernelSink applies vpcsim's data path to the vpc-router namespace with ip and iptables, run
// through `ip netns exec`:
//
//   - each configured route table is a kernel table N with `ip rule add iif <leg> lookup N`,
//     `throw <Local>` and `default via <ENI IP>`, `blackhole default` (dead target) or
//     `unreachable default` (no default route, so the lookup never falls through to main);
//   - source/dest check on drops, in chain VPCSIM-SDC (from FORWARD), forwarded packets out of
//     the ENI's leg whose destination is not the ENI's own address;
//   - an EIP is the public address on the IGW leg plus 1:1 NAT in chains VPCSIM-EIP
//     (POSTROUTING, SNAT) and VPCSIM-EIP-IN (PREROUTING, DNAT).
//
// Every operation is idempotent. Close removes everything the sink added.
type KernelSink struct {
	cfg KernelConfig

	mu      sync.Mutex
	setUp   bool
	eipAddr map[netip.Addr]bool // public addresses added to the IGW leg
}

var (
	_              vpcsim.Sink = (*KernelSink)(nil)
	errUnreachable             = errors.New("no route from the router")
)

// NewKernelSink validates cfg; the kernel is touched on Setup or on the first change.
func NewKernelSink(cfg KernelConfig) (*KernelSink, error) {
	cfg.Tables = cloneTables(cfg.Tables)
	cfg.SDCLegs = slices.Clone(cfg.SDCLegs)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("kernel sink: %w", err)
	}
	return &KernelSink{cfg: cfg, eipAddr: map[netip.Addr]bool{}}, nil
}

func cloneTables(m map[string]KernelTable) map[string]KernelTable {
	out := make(map[string]KernelTable, len(m))
	for k, v := range m {
		v.Iifs = slices.Clone(v.Iifs)
		out[k] = v
	}
	return out
}

// run runs a command inside the router namespace.
func (k *KernelSink) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), k.cfg.Timeout)
	defer cancel()
	full := append([]string{"netns", "exec", k.cfg.Namespace}, args...)
	out, err := exec.CommandContext(ctx, "ip", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (k *KernelSink) ipt(table string, args ...string) (string, error) {
	return k.run(append([]string{"iptables", "-w", "5", "-t", table}, args...)...)
}

var ownChains = []struct{ table, chain, from string }{
	{"filter", ChainSDC, "FORWARD"},
	{"nat", ChainEIP, "POSTROUTING"},
	{"nat", ChainEIPIn, "PREROUTING"},
}

// Setup creates the sink's chains and jumps, and each kernel table's ip rules and throw route.
func (k *KernelSink) Setup() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.setup()
}

func (k *KernelSink) setup() error {
	if k.setUp {
		return nil
	}
	for _, c := range ownChains {
		if _, err := k.ipt(c.table, "-S", c.chain); err != nil {
			if _, err := k.ipt(c.table, "-N", c.chain); err != nil {
				return fmt.Errorf("kernel sink setup: %w", err)
			}
		}
		if _, err := k.ipt(c.table, "-C", c.from, "-j", c.chain); err != nil {
			if _, err := k.ipt(c.table, "-I", c.from, "1", "-j", c.chain); err != nil {
				return fmt.Errorf("kernel sink setup: %w", err)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(k.cfg.Tables)) {
		t := k.cfg.Tables[id]
		n := strconv.Itoa(t.Table)
		for _, iif := range t.Iifs {
			out, err := k.run("ip", "rule", "list", "iif", iif, "lookup", n)
			if err != nil {
				return fmt.Errorf("kernel sink setup %s: %w", id, err)
			}
			if strings.TrimSpace(out) == "" {
				if _, err := k.run("ip", "rule", "add", "iif", iif, "lookup", n); err != nil {
					return fmt.Errorf("kernel sink setup %s: %w", id, err)
				}
			}
		}
		if _, err := k.run("ip", "route", "replace", "throw", k.cfg.Local.String(), "table", n); err != nil {
			return fmt.Errorf("kernel sink setup %s: %w", id, err)
		}
	}
	k.setUp = true
	return nil
}

// AddSDCLeg adds a router leg to KernelConfig.SDCLegs, for a NAT instance added at runtime:
// call it before the simulator learns of the instance's ENI.
func (k *KernelSink) AddSDCLeg(leg string) error {
	if !ifaceName.MatchString(leg) {
		return fmt.Errorf("kernel sink: invalid SDC leg %q", leg)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cfg.SDCLegs) > 0 && !slices.Contains(k.cfg.SDCLegs, leg) {
		k.cfg.SDCLegs = append(k.cfg.SDCLegs, leg)
	}
	return nil
}

// DefaultRoute implements vpcsim.Sink.
func (k *KernelSink) DefaultRoute(tableID string, r vpcsim.KernelRoute) error {
	t, ok := k.cfg.Tables[tableID]
	if !ok {
		k.cfg.Logger.Debug("route table not mirrored", "table", tableID)
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.setup(); err != nil {
		return err
	}
	n := strconv.Itoa(t.Table)
	var err error
	switch {
	case r.Absent:
		// Not a missing route: the lookup would fall through to the main table and reach
		// the internet, where AWS drops.
		_, err = k.run("ip", "route", "replace", "unreachable", "default", "table", n)
	case r.Blackhole:
		_, err = k.run("ip", "route", "replace", "blackhole", "default", "table", n)
	case !r.Target.Is4():
		err = fmt.Errorf("no IPv4 target")
	default:
		_, err = k.run("ip", "route", "replace", "default", "via", r.Target.String(), "table", n)
	}
	if err != nil {
		return fmt.Errorf("default route of %s (table %s): %w", tableID, n, err)
	}
	k.cfg.Logger.Info("default route", "table", tableID, "kernel_table", t.Table, "target", r.Target,
		"blackhole", r.Blackhole, "absent", r.Absent)
	return nil
}

// legOf returns the router interface through which the router reaches ip.
func (k *KernelSink) legOf(ip netip.Addr) (string, error) {
	out, err := k.run("ip", "-o", "route", "get", ip.String())
	if err != nil {
		if strings.Contains(out, "unreachable") {
			return "", fmt.Errorf("%w: %s", errUnreachable, ip)
		}
		return "", err
	}
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "dev" && ifaceName.MatchString(f[i+1]) {
			return f[i+1], nil
		}
	}
	return "", fmt.Errorf("no interface for %s in %q", ip, strings.TrimSpace(out))
}

// deleteTagged deletes the rules of a chain carrying the comment tag.
func (k *KernelSink) deleteTagged(table, chain, tag string) error {
	out, err := k.ipt(table, "-S", chain)
	if err != nil {
		return err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		for i := range f {
			// iptables -S quotes comments; ours hold no spaces, so unquoting is exact.
			f[i] = strings.Trim(f[i], `"`)
		}
		if len(f) < 2 || f[0] != "-A" || !slices.Contains(f, tag) {
			continue
		}
		f[0] = "-D"
		if _, err := k.ipt(table, f...); err != nil {
			return err
		}
	}
	return nil
}

// SourceDestCheck implements vpcsim.Sink.
func (k *KernelSink) SourceDestCheck(eniID string, ip netip.Addr, on bool) error {
	if !ip.Is4() {
		return fmt.Errorf("source/dest check of %s: invalid address %v", eniID, ip)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.setup(); err != nil {
		return err
	}
	tag := "vpcsim-sdc:" + eniID
	if err := k.deleteTagged("filter", ChainSDC, tag); err != nil {
		return fmt.Errorf("source/dest check of %s: %w", eniID, err)
	}
	if !on {
		return nil
	}
	leg, err := k.legOf(ip)
	if errors.Is(err, errUnreachable) {
		// Not behind any router leg: nothing is ever forwarded to it.
		k.cfg.Logger.Debug("source/dest check not modelled: unreachable", "eni", eniID, "ip", ip)
		return nil
	}
	if err != nil {
		return fmt.Errorf("source/dest check of %s: %w", eniID, err)
	}
	if len(k.cfg.SDCLegs) > 0 && !slices.Contains(k.cfg.SDCLegs, leg) {
		return nil
	}
	if leg == "" || leg == "lo" {
		return fmt.Errorf("source/dest check of %s: %s is not behind a router leg", eniID, ip)
	}
	if _, err := k.ipt("filter", "-A", ChainSDC, "-o", leg, "!", "-d", ip.String()+"/32",
		"-m", "comment", "--comment", tag, "-j", "DROP"); err != nil {
		return fmt.Errorf("source/dest check of %s: %w", eniID, err)
	}
	k.cfg.Logger.Info("source/dest check on", "eni", eniID, "ip", ip, "leg", leg)
	return nil
}

// ElasticIP implements vpcsim.Sink.
func (k *KernelSink) ElasticIP(private, public netip.Addr, associated bool) error {
	if !private.Is4() || !public.Is4() {
		return fmt.Errorf("elastic IP %v -> %v: invalid address", public, private)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.setup(); err != nil {
		return err
	}
	tag := "vpcsim-eip:" + public.String()
	err := errors.Join(k.deleteTagged("nat", ChainEIP, tag), k.deleteTagged("nat", ChainEIPIn, tag))
	if err != nil {
		return fmt.Errorf("elastic IP %s: %w", public, err)
	}
	pub32 := public.String() + "/32"
	if !associated {
		if err := k.delAddr(public); err != nil {
			return fmt.Errorf("elastic IP %s: %w", public, err)
		}
		return nil
	}
	steps := [][]string{
		{"ip", "addr", "replace", pub32, "dev", k.cfg.IGW},
		{"iptables", "-w", "5", "-t", "nat", "-A", ChainEIP, "-o", k.cfg.IGW, "-s", private.String() + "/32",
			"-m", "comment", "--comment", tag, "-j", "SNAT", "--to-source", public.String()},
		{"iptables", "-w", "5", "-t", "nat", "-A", ChainEIPIn, "-i", k.cfg.IGW, "-d", pub32,
			"-m", "comment", "--comment", tag, "-j", "DNAT", "--to-destination", private.String()},
	}
	k.eipAddr[public] = true
	for _, s := range steps {
		if _, err := k.run(s...); err != nil {
			return fmt.Errorf("elastic IP %s: %w", public, err)
		}
	}
	k.cfg.Logger.Info("elastic IP associated", "public", public, "private", private)
	return nil
}

func (k *KernelSink) delAddr(public netip.Addr) error {
	out, err := k.run("ip", "-o", "addr", "show", "dev", k.cfg.IGW, "to", public.String()+"/32")
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) != "" {
		if _, err := k.run("ip", "addr", "del", public.String()+"/32", "dev", k.cfg.IGW); err != nil {
			return err
		}
	}
	delete(k.eipAddr, public)
	return nil
}

// Close removes the jumps, the sink's chains, the ip rules, the kernel tables' routes and the
// EIP addresses it added. The namespace itself is left alone.
func (k *KernelSink) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	var errs []error
	for _, c := range ownChains {
		for range 8 {
			if _, err := k.ipt(c.table, "-D", c.from, "-j", c.chain); err != nil {
				break
			}
		}
		if _, err := k.ipt(c.table, "-S", c.chain); err == nil {
			if _, err := k.ipt(c.table, "-F", c.chain); err != nil {
				errs = append(errs, err)
			}
			if _, err := k.ipt(c.table, "-X", c.chain); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(k.cfg.Tables)) {
		t := k.cfg.Tables[id]
		n := strconv.Itoa(t.Table)
		for _, iif := range t.Iifs {
			for range 8 {
				if _, err := k.run("ip", "rule", "del", "iif", iif, "lookup", n); err != nil {
					break
				}
			}
		}
		if _, err := k.run("ip", "route", "flush", "table", n); err != nil && !strings.Contains(err.Error(), "FIB table does not exist") {
			errs = append(errs, err)
		}
	}
	for _, a := range sortedAddrKeys(k.eipAddr) {
		if err := k.delAddr(a); err != nil {
			errs = append(errs, err)
		}
	}
	k.setUp = false
	return errors.Join(errs...)
}

func sortedAddrKeys(m map[netip.Addr]bool) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

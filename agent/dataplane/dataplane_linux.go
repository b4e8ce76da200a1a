//go:build linux

package dataplane

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var _ IPTables = (*iptables.IPTables)(nil)

const lockWait = 30 * time.Second

// New returns a Dataplane over the host's iptables (IPv4), /proc/sys and netlink.
func New(log *slog.Logger) (*Dataplane, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4), iptables.Timeout(30))
	if err != nil {
		return nil, fmt.Errorf("iptables: %w", err)
	}
	return NewWith(Deps{
		IPTables: ipt,
		Sysctl:   ProcSysctl{Root: "/proc/sys"},
		Links:    netlinkLinks{},
		MemTotal: memTotal,
		Lock:     flock,
		Log:      log,
	}), nil
}

// ProcSysctl reads and writes sysctls under Root (normally /proc/sys).
type ProcSysctl struct{ Root string }

func (p ProcSysctl) path(key string) string {
	if strings.Contains(key, "/") {
		return filepath.Join(p.Root, filepath.Clean("/"+key))
	}
	return filepath.Join(p.Root, strings.ReplaceAll(key, ".", "/"))
}

func (p ProcSysctl) Get(key string) (string, error) {
	b, err := os.ReadFile(p.path(key))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func (p ProcSysctl) Set(key, value string) error {
	f, err := os.OpenFile(p.path(key), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(value + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", p.path(key), err)
	}
	return f.Close()
}

// Writable checks the permission bits the kernel gives the entry: nf_conntrack_max is 0444
// outside the initial network namespace, and root is refused writing it there too.
func (p ProcSysctl) Writable(key string) bool {
	fi, err := os.Stat(p.path(key))
	return err == nil && fi.Mode().Perm()&0o200 != 0
}

type netlinkLinks struct{}

func (netlinkLinks) Link(name string) (Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return Link{}, fmt.Errorf("%s: %w", name, ErrLinkNotFound)
		}
		return Link{}, err
	}
	a := l.Attrs()
	return Link{Name: a.Name, AdminUp: a.Flags&net.FlagUp != 0, OperState: a.OperState.String()}, nil
}

func mainRoutes() ([]netlink.Route, error) {
	var routes []netlink.Route
	var err error
	for range 3 { // a dump interrupted by a concurrent change is retried
		routes, err = netlink.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("list routes: %w", err)
	}
	return routes, nil
}

// linkIndex is the route's interface, or 0 when it has none or several.
func linkIndex(r netlink.Route) int {
	idx := r.LinkIndex
	if idx == 0 {
		for _, nh := range r.MultiPath {
			if idx != 0 && nh.LinkIndex != idx {
				return 0
			}
			idx = nh.LinkIndex
		}
	}
	return idx
}

func (netlinkLinks) DefaultRouteInterface() (string, error) {
	routes, err := mainRoutes()
	if err != nil {
		return "", err
	}
	var best *netlink.Route
	for i, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.Type != unix.RTN_UNICAST {
			continue // blackhole, unreachable, ...
		}
		if best == nil || r.Priority < best.Priority {
			best = &routes[i]
		}
	}
	if best == nil {
		return "", errors.New("no IPv4 default route in the main table")
	}
	idx := linkIndex(*best)
	if idx == 0 && len(best.MultiPath) > 0 {
		return "", errors.New("the default route is multipath over several interfaces")
	}
	if idx == 0 {
		return "", errors.New("the default route names no interface")
	}
	l, err := netlink.LinkByIndex(idx)
	if err != nil {
		return "", fmt.Errorf("default route interface #%d: %w", idx, err)
	}
	return l.Attrs().Name, nil
}

func (netlinkLinks) Routes() ([]Route, error) {
	routes, err := mainRoutes()
	if err != nil {
		return nil, err
	}
	names := map[int]string{}
	var out []Route
	for _, r := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if r.Dst != nil {
			a, ok := netip.AddrFromSlice(r.Dst.IP)
			ones, _ := r.Dst.Mask.Size()
			if !ok || !a.Unmap().Is4() {
				continue
			}
			dst = netip.PrefixFrom(a.Unmap(), ones)
		}
		rt := Route{Dst: dst, Priority: r.Priority}
		if idx := linkIndex(r); idx != 0 && r.Type == unix.RTN_UNICAST {
			name, ok := names[idx]
			if !ok {
				l, err := netlink.LinkByIndex(idx)
				if err != nil {
					return nil, fmt.Errorf("route %s interface #%d: %w", dst, idx, err)
				}
				name = l.Attrs().Name
				names[idx] = name
			}
			rt.Interface = name
		}
		out = append(out, rt)
	}
	return out, nil
}

func memTotal() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "MemTotal:" && f[2] == "kB" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("/proc/meminfo: no MemTotal")
}

// flock takes an exclusive advisory lock on path, creating it and its directory, waiting at
// most lockWait for another holder. The file it locks must still be the one at path: a
// Remove deletes the file while it holds the lock, and a waiter that then gets the old,
// unlinked file tries again on the new one.
func flock(path string) (func(deleteFile bool), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			if same, serr := samePath(f, path); serr != nil || same {
				if serr != nil {
					f.Close()
					return nil, serr
				}
				return func(deleteFile bool) {
					if deleteFile {
						_ = os.Remove(path)
					}
					_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
					f.Close()
				}, nil
			}
			f.Close()
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s: replaced while being locked, for over %s", path, lockWait)
			}
			continue // deleted by a Remove while we waited: lock the new file
		}
		f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return nil, &fs.PathError{Op: "flock", Path: path, Err: err}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: held by another headnat process for over %s", path, lockWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// samePath reports whether f is still the file at path.
func samePath(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	pi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, pi), nil
}

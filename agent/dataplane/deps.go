package dataplane

import (
	"errors"
	"log/slog"
	"net/netip"
)

// IPTables is the part of github.com/coreos/go-iptables that headnat uses;
// *iptables.IPTables satisfies it as is.
type IPTables interface {
	List(table, chain string) ([]string, error)
	ListById(table, chain string, id int) (string, error)
	ChainExists(table, chain string) (bool, error)
	NewChain(table, chain string) error
	Insert(table, chain string, pos int, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
	DeleteById(table, chain string, id int) error
	ClearChain(table, chain string) error
	DeleteChain(table, chain string) error
}

// Sysctl reads and writes kernel parameters by dotted key ("net.ipv4.ip_forward"). A key
// that holds an interface name with a dot uses '/' as separator instead, as sysctl(8) does
// ("net/ipv4/conf/eth0.100/rp_filter"). Errors wrap fs.ErrNotExist for an unknown key and
// fs.ErrPermission for a key that cannot be written here.
type Sysctl interface {
	Get(key string) (string, error)
	Set(key, value string) error
	// Writable reports whether the key can be set here (nf_conntrack_max, for one, is
	// read-only outside the initial network namespace).
	Writable(key string) bool
}

// ErrLinkNotFound is wrapped by Links when no interface has the name.
var ErrLinkNotFound = errors.New("no such interface")

// Link is the state of a network interface.
type Link struct {
	Name      string
	AdminUp   bool   // IFF_UP
	OperState string // "up", "down", "lowerlayerdown", "unknown", ...
}

// Up reports whether the link can carry traffic.
func (l Link) Up() bool {
	switch l.OperState {
	case "down", "lowerlayerdown", "notpresent":
		return false
	}
	return l.AdminUp
}

// Links looks up interfaces and the default route.
type Links interface {
	// Link returns the named interface, or an error wrapping ErrLinkNotFound.
	Link(name string) (Link, error)
	// DefaultRouteInterface returns the interface of the IPv4 default route of the main
	// table (the lowest metric one), or an error when there is none or it is ambiguous.
	DefaultRouteInterface() (string, error)
	// Routes lists the IPv4 routes of the main table.
	Routes() ([]Route, error)
}

// Route is one IPv4 route of the main table.
type Route struct {
	Dst netip.Prefix
	// Interface is where the route sends traffic; "" for a route over several interfaces
	// or one that sends nowhere (blackhole, unreachable, ...).
	Interface string
	Priority  int // the metric; the lowest wins among routes to the same Dst
}

// Deps are the side effects of a Dataplane.
type Deps struct {
	IPTables IPTables
	Sysctl   Sysctl
	Links    Links
	// MemTotal returns the host's memory in bytes (sizes nf_conntrack_max).
	MemTotal func() (uint64, error)
	// Lock takes the host-wide lock at path that serialises Apply and Remove across
	// processes, whatever their state paths; release unlocks it, and deletes the lock file
	// first when deleteFile is set (Remove). Nil means no locking.
	Lock func(path string) (release func(deleteFile bool), err error)
	// LockPath is the lock's file; "" means DefaultLockPath.
	LockPath string
	Log      *slog.Logger
}

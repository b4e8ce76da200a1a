package dataplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sysctl keys headnat sets.
const (
	KeyIPForward            = "net.ipv4.ip_forward"
	KeyLocalPortRange       = "net.ipv4.ip_local_port_range"
	KeyAllSendRedirects     = "net.ipv4.conf.all.send_redirects"
	KeyAllRPFilter          = "net.ipv4.conf.all.rp_filter"
	KeyConntrackMax         = "net.netfilter.nf_conntrack_max"
	KeyTCPTimeoutEstablised = "net.netfilter.nf_conntrack_tcp_timeout_established"
	KeyUDPTimeout           = "net.netfilter.nf_conntrack_udp_timeout"
	KeyUDPTimeoutStream     = "net.netfilter.nf_conntrack_udp_timeout_stream"

	LocalPortRange = "1024 65535"
)

// ConfKey is the per-interface key net.ipv4.conf.<iface>.<leaf>, in the '/' form when the
// interface name holds a dot.
func ConfKey(iface, leaf string) string {
	if strings.Contains(iface, ".") {
		return "net/ipv4/conf/" + iface + "/" + leaf
	}
	return "net.ipv4.conf." + iface + "." + leaf
}

// sysctlWant is one kernel parameter to set.
type sysctlWant struct {
	Key   string
	Value string
	// Tunable: a performance setting. Absent or read-only here (nf_conntrack_max in a
	// network namespace) is a note, not an error, and not a deviation.
	Tunable bool
}

func normValue(v string) string { return strings.Join(strings.Fields(v), " ") }

// desiredSysctls lists the parameters to set, ip_forward last: forwarding is only switched
// on once everything else (including the filter rules) is in place. Without a host view
// (Verify when the interface cannot be resolved) the per-interface keys are left out.
func (d *Dataplane) desiredSysctls(s Spec, h *hostView) ([]sysctlWant, error) {
	s = s.WithDefaults()
	ctMax := s.ConntrackMax
	if ctMax == 0 {
		mem, err := d.deps.MemTotal()
		if err != nil {
			return nil, fmt.Errorf("size nf_conntrack_max: %w", err)
		}
		ctMax = conntrackMaxFor(mem)
	}
	secs := func(v interface{ Seconds() float64 }) string { return strconv.Itoa(int(v.Seconds())) }
	// send_redirects is effective when all or the interface has it: clear both.
	want := []sysctlWant{{Key: KeyAllSendRedirects, Value: "0"}}
	if h != nil {
		iface := h.iface
		want = append(want, sysctlWant{Key: ConfKey(iface, "send_redirects"), Value: "0"})
		// The effective rp_filter is max(all, iface). On a single-interface NAT strict (1)
		// can drop what it forwards when policy routing (tailscaled's table 52) gives a
		// source arriving on iface another reverse path, so relax the interface to loose (2)
		// only then. On a two-interface NAT strict is what drops a VPC source forged on the
		// egress side, so it is left alone (the spoofed-source rule drops those anyway).
		all, err := d.getInt(KeyAllRPFilter)
		if err != nil {
			return nil, err
		}
		ifKey := ConfKey(iface, "rp_filter")
		ifv, err := d.getInt(ifKey)
		if err != nil {
			return nil, err
		}
		if max(all, ifv) == 1 && len(h.inside) == 0 {
			want = append(want, sysctlWant{Key: ifKey, Value: "2"})
		}
	}
	want = append(want,
		sysctlWant{Key: KeyLocalPortRange, Value: LocalPortRange, Tunable: true},
		sysctlWant{Key: KeyConntrackMax, Value: strconv.Itoa(ctMax), Tunable: true},
		sysctlWant{Key: KeyTCPTimeoutEstablised, Value: secs(s.TCPEstablishedTimeout), Tunable: true},
		sysctlWant{Key: KeyUDPTimeout, Value: secs(s.UDPTimeout), Tunable: true},
		sysctlWant{Key: KeyUDPTimeoutStream, Value: secs(s.UDPStreamTimeout), Tunable: true},
		sysctlWant{Key: KeyIPForward, Value: "1"},
	)
	return want, nil
}

func (d *Dataplane) getInt(key string) (int, error) {
	v, err := d.deps.Sysctl.Get(key)
	if err != nil {
		return 0, fmt.Errorf("read sysctl %s: %w", key, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return 0, fmt.Errorf("read sysctl %s: not a number: %q", key, v)
	}
	return n, nil
}

// sysctlSkip explains why a tunable that differs is left alone, or returns "".
func (d *Dataplane) sysctlSkip(w sysctlWant, getErr error) string {
	if !w.Tunable {
		return ""
	}
	if errors.Is(getErr, fs.ErrNotExist) {
		return fmt.Sprintf("%s does not exist here; not set", w.Key)
	}
	if getErr == nil && !d.deps.Sysctl.Writable(w.Key) {
		return fmt.Sprintf("%s is read-only here (e.g. outside the initial network namespace); not set", w.Key)
	}
	return ""
}

// state is what Apply records so that Remove restores exactly what it changed.
type state struct {
	Version int           `json:"version"`
	Sysctls []savedSysctl `json:"sysctls"`
}

type savedSysctl struct {
	Key      string `json:"key"`
	Previous string `json:"previous"` // the value before headnat first changed it
	Applied  string `json:"applied"`  // the value headnat last wrote
}

func (s *state) find(key string) *savedSysctl {
	for i := range s.Sysctls {
		if s.Sysctls[i].Key == key {
			return &s.Sysctls[i]
		}
	}
	return nil
}

func loadState(path string) (state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return state{Version: 1}, nil
	}
	if err != nil {
		return state{}, fmt.Errorf("read state %s: %w", path, err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("read state %s: %w", path, err)
	}
	if st.Version != 1 {
		return state{}, fmt.Errorf("read state %s: unknown version %d", path, st.Version)
	}
	return st, nil
}

// saveState writes the state atomically (temporary file, fsync, rename).
func saveState(path string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write state %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write state %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write state %s: %w", f.Name(), err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

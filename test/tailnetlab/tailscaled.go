package tailnetlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// TailscaledOptions configure StartTailscaled.
type TailscaledOptions struct {
	Bin  string // directory with tailscaled and tailscale; default FindBin
	Dir  string // state dir (state, socket, log); default a new temp dir, removed by Stop
	Port int    // WireGuard UDP port; default 41641
	TUN  string // TUN interface; default tailscale0
	// Env is appended to tailscaled's environment (TS_DEBUG_USE_DERP_HTTP=1 is always set).
	Env          []string
	ReadyTimeout time.Duration // default 20s
}

// Tailscaled is a tailscaled running in a namespace.
type Tailscaled struct {
	NS      *netns.NS
	Dir     string
	LogPath string

	opts  TailscaledOptions
	bin   string
	cli   string
	rmDir bool
	mu    sync.Mutex
	p     *proc
}

// StartTailscaled starts tailscaled in ns and waits until its LocalAPI answers. ns needs a
// non-loopback interface for tailscaled ever to come online.
func StartTailscaled(ctx context.Context, ns *netns.NS, opts TailscaledOptions) (*Tailscaled, error) {
	if ns == nil {
		return nil, errors.New("tailscaled: no namespace")
	}
	if opts.Port == 0 {
		opts.Port = 41641
	}
	if opts.TUN == "" {
		opts.TUN = "tailscale0"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 20 * time.Second
	}
	bin, err := binDir(opts.Bin)
	if err != nil {
		return nil, err
	}
	t := &Tailscaled{NS: ns, opts: opts, bin: filepath.Join(bin, "tailscaled"), cli: filepath.Join(bin, "tailscale")}
	for _, b := range []string{t.bin, t.cli} {
		if _, err := os.Stat(b); err != nil {
			return nil, fmt.Errorf("tailscaled: %w", err)
		}
	}
	t.Dir = opts.Dir
	if t.Dir == "" {
		if t.Dir, err = os.MkdirTemp("", "ts-"); err != nil {
			return nil, fmt.Errorf("tailscaled: %w", err)
		}
		t.rmDir = true
	} else if err := os.MkdirAll(t.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("tailscaled: %w", err)
	}
	t.LogPath = filepath.Join(t.Dir, "tailscaled.log")
	if err := t.start(ctx); err != nil {
		t.Stop()
		return nil, err
	}
	return t, nil
}

// Socket is tailscaled's LocalAPI socket.
func (t *Tailscaled) Socket() string { return filepath.Join(t.Dir, "ts.sock") }

func (t *Tailscaled) start(ctx context.Context) error {
	env := append([]string{"TS_DEBUG_USE_DERP_HTTP=1"}, t.opts.Env...)
	p, err := startProc(t.NS, "tailscaled", env, t.LogPath, t.bin,
		"--tun="+t.opts.TUN, "--statedir="+t.Dir, "--socket="+t.Socket(),
		fmt.Sprintf("--port=%d", t.opts.Port), "--no-logs-no-support")
	if err != nil {
		return fmt.Errorf("tailscaled: %w", err)
	}
	t.mu.Lock()
	t.p = p
	t.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, t.opts.ReadyTimeout)
	defer cancel()
	for {
		if p.exited() {
			return fmt.Errorf("tailscaled exited at start; log %s:\n%s", t.LogPath, tail(t.LogPath, 2000))
		}
		_, err := t.Status(rctx)
		if err == nil {
			return nil
		}
		select {
		case <-rctx.Done():
			return fmt.Errorf("tailscaled not ready after %s: %v; log %s", t.opts.ReadyTimeout, err, t.LogPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// CLI runs the tailscale CLI against this tailscaled and returns its combined output. Do not
// pass secrets: use Up for keys.
func (t *Tailscaled) CLI(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	cmd := t.NS.Cmd(ctx, t.cli, append([]string{"--socket=" + t.Socket()}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.Dir}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("tailscale %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out.Bytes()))
	}
	return out.String(), nil
}

// Status is the part of `tailscale status --json` tests need.
type Status struct {
	BackendState string
	Self         *PeerStatus
	Peer         map[string]*PeerStatus
	Health       []string
}

// PeerStatus is one node in Status.
type PeerStatus struct {
	HostName      string
	TailscaleIPs  []netip.Addr
	Online        bool
	Tags          []string
	PrimaryRoutes []netip.Prefix
	AllowedIPs    []netip.Prefix
	// Relay is the peer's DERP home region code ("" until the node knows it: then its first
	// packets to the peer wait for a WireGuard handshake retry, 5s); CurAddr is its direct
	// UDP address in use, "" if none.
	Relay, CurAddr string
}

// Status returns tailscaled's status (from the CLI, so this package needs no tailscale.com).
func (t *Tailscaled) Status(ctx context.Context) (Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := t.NS.Cmd(ctx, t.cli, "--socket="+t.Socket(), "status", "--json")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.Dir}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var st Status
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil || st.BackendState == "" {
		return Status{}, fmt.Errorf("tailscale status: %v %v: %s", runErr, err, bytes.TrimSpace(stderr.Bytes()))
	}
	return st, nil
}

// Up logs the node in the way an admin would: `tailscale up --login-server loginURL
// --authkey ... --hostname hostname --advertise-routes routes --accept-dns=false`. The key goes
// through a private file, never the command line, and is scrubbed from errors.
func (t *Tailscaled) Up(ctx context.Context, loginURL, key, hostname string, routes ...netip.Prefix) error {
	return t.UpWith(ctx, UpOptions{LoginURL: loginURL, Key: key, Hostname: hostname, Routes: routes})
}

// UpOptions are the arguments of `tailscale up` that UpWith passes.
type UpOptions struct {
	LoginURL, Key, Hostname string
	Routes                  []netip.Prefix // --advertise-routes
	AcceptRoutes            bool           // --accept-routes: use the subnet routes of others
}

// UpWith is Up with more of `tailscale up`'s flags.
func (t *Tailscaled) UpWith(ctx context.Context, o UpOptions) error {
	kf := filepath.Join(t.Dir, ".authkey")
	if err := os.WriteFile(kf, []byte(o.Key), 0o600); err != nil {
		return err
	}
	defer os.Remove(kf)
	rs := make([]string, len(o.Routes))
	for i, r := range o.Routes {
		rs[i] = r.String()
	}
	_, err := t.CLI(ctx, "up", "--login-server="+o.LoginURL, "--authkey=file:"+kf, "--hostname="+o.Hostname,
		"--advertise-routes="+strings.Join(rs, ","), "--accept-dns=false", fmt.Sprintf("--accept-routes=%t", o.AcceptRoutes),
		"--timeout=60s")
	if err != nil {
		return errors.New(scrub(err.Error(), o.Key))
	}
	return nil
}

func (t *Tailscaled) proc() *proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.p
}

// Pid is the process id of tailscaled (0 if not running).
func (t *Tailscaled) Pid() int {
	if p := t.proc(); p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Kill stops tailscaled with SIGKILL: no logout, no cleanup of its TUN or iptables chains.
func (t *Tailscaled) Kill() { t.proc().stop(syscall.SIGKILL, 5*time.Second) }

// Terminate stops tailscaled with SIGTERM, as systemd would, and keeps its state dir.
func (t *Tailscaled) Terminate() { t.proc().stop(syscall.SIGTERM, 10*time.Second) }

// Restart terminates tailscaled and starts it again with the same state.
func (t *Tailscaled) Restart(ctx context.Context) error {
	t.Terminate()
	return t.start(ctx)
}

// Stop terminates tailscaled and removes its state dir if StartTailscaled made it.
func (t *Tailscaled) Stop() {
	if p := t.proc(); p != nil {
		p.stop(syscall.SIGTERM, 10*time.Second)
	}
	if t.rmDir && t.Dir != "" {
		_ = os.RemoveAll(t.Dir)
	}
}

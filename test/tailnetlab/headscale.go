package tailnetlab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// headscale's own defaults of the tuning HeadscaleOptions can set.
const (
	HeadscaleDefaultBatchChangeDelay      = 800 * time.Millisecond
	HeadscaleDefaultNodeStoreBatchTimeout = 500 * time.Millisecond
)

// HeadscaleOptions configure StartHeadscale. NS, Addr and Policy are required.
type HeadscaleOptions struct {
	NS   *netns.NS  // namespace headscale runs in
	Addr netip.Addr // its address there: listen address, embedded DERP's IPv4 and STUN
	Port int        // HTTP (control and DERP) port; default 8080
	// ServerURL is what nodes log in to; default http://127.0.0.1:Port, reached through a
	// Forward in each node's namespace (tailscale wants a loopback or private control URL).
	ServerURL string
	Policy    []byte // the ACL policy file (see package policy)
	// ProbeInterval and ProbeTimeout are node.routes.ha.*: how often headscale probes HA
	// subnet routers and how long it waits. Defaults 2s and 1s, the fastest headscale allows.
	ProbeInterval, ProbeTimeout time.Duration
	// BatchChangeDelay and NodeStoreBatchTimeout are tuning.batch_change_delay and
	// tuning.node_store_batch_timeout: how long headscale gathers changes before it sends the
	// nodes new maps, and node updates before it rebuilds its peer maps. Zero: headscale's
	// defaults (HeadscaleDefault*). Together they are most of the time a route withdrawal takes.
	BatchChangeDelay, NodeStoreBatchTimeout time.Duration
	LogLevel                                string        // default "info"
	Bin                                     string        // directory with headscale; default FindBin
	Dir                                     string        // config, database, socket, log; default a new temp dir, removed by Stop
	ReadyTimeout                            time.Duration // default 30s
}

// Headscale is a running headscale server.
type Headscale struct {
	Dir       string
	ServerURL string
	Addr      netip.Addr
	Port      int
	Config    string // config file path
	LogPath   string

	opts    HeadscaleOptions
	bin     string
	rmDir   bool
	mu      sync.Mutex
	p       *proc
	users   map[string]uint64
	stopped bool
}

// StartHeadscale writes a config and policy into a directory, starts `headscale serve` in
// opts.NS and waits until its CLI and HTTP port answer. On error nothing is left running.
func StartHeadscale(ctx context.Context, opts HeadscaleOptions) (*Headscale, error) {
	if opts.NS == nil || !opts.Addr.Is4() || len(opts.Policy) == 0 {
		return nil, errors.New("headscale: NS, an IPv4 Addr and Policy are required")
	}
	if opts.Port == 0 {
		opts.Port = 8080
	}
	if opts.ServerURL == "" {
		opts.ServerURL = fmt.Sprintf("http://127.0.0.1:%d", opts.Port)
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 2 * time.Second
	}
	if opts.ProbeTimeout == 0 {
		opts.ProbeTimeout = time.Second
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 30 * time.Second
	}
	bin, err := binDir(opts.Bin)
	if err != nil {
		return nil, err
	}
	h := &Headscale{opts: opts, bin: filepath.Join(bin, "headscale"), users: map[string]uint64{},
		ServerURL: opts.ServerURL, Addr: opts.Addr, Port: opts.Port}
	if _, err := os.Stat(h.bin); err != nil {
		return nil, fmt.Errorf("headscale: %w", err)
	}
	h.Dir = opts.Dir
	if h.Dir == "" {
		// Short: the unix socket path must fit in 108 bytes.
		if h.Dir, err = os.MkdirTemp("", "hs-"); err != nil {
			return nil, fmt.Errorf("headscale: %w", err)
		}
		h.rmDir = true
	} else if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("headscale: %w", err)
	}
	h.Config = filepath.Join(h.Dir, "config.yaml")
	h.LogPath = filepath.Join(h.Dir, "headscale.log")
	if err := os.WriteFile(filepath.Join(h.Dir, "policy.hujson"), opts.Policy, 0o600); err != nil {
		h.Stop()
		return nil, fmt.Errorf("headscale: policy: %w", err)
	}
	if err := os.WriteFile(h.Config, []byte(h.config()), 0o600); err != nil {
		h.Stop()
		return nil, fmt.Errorf("headscale: config: %w", err)
	}
	if err := h.start(ctx); err != nil {
		h.Stop()
		return nil, err
	}
	return h, nil
}

// Options returns the options the server runs with, defaults filled in.
func (h *Headscale) Options() HeadscaleOptions { return h.opts }

// Socket is headscale's unix socket (gRPC, used by its CLI).
func (h *Headscale) Socket() string { return filepath.Join(h.Dir, "headscale.sock") }

func (h *Headscale) config() string {
	d, a := h.Dir, h.opts.Addr.String()
	return fmt.Sprintf(`# written by test/tailnetlab
server_url: %s
listen_addr: 0.0.0.0:%d
metrics_listen_addr: 127.0.0.1:9090
grpc_listen_addr: 127.0.0.1:50443
grpc_allow_insecure: false
disable_check_updates: true
noise:
  private_key_path: %s/noise_private.key
prefixes:
  v4: 100.64.0.0/10
  allocation: sequential
derp:
  server:
    enabled: true
    region_id: 999
    region_code: headnat
    region_name: headnat lab
    stun_listen_addr: %s:3478
    private_key_path: %s/derp_server_private.key
    automatically_add_embedded_derp_region: true
    ipv4: %s
  urls: []
  paths: []
  auto_update_enabled: false
node:
  routes:
    ha:
      probe_interval: %s
      probe_timeout: %s
database:
  type: sqlite
  sqlite:
    path: %s/db.sqlite
    write_ahead_log: true
log:
  level: %s
  format: text
policy:
  mode: file
  path: %s/policy.hujson
dns:
  magic_dns: false
  override_local_dns: false
  nameservers:
    global: []
unix_socket: %s
unix_socket_permission: "0700"
logtail:
  enabled: false
`, h.ServerURL, h.opts.Port, d, a, d, a, h.opts.ProbeInterval, h.opts.ProbeTimeout, d, h.opts.LogLevel, d, h.Socket()) + h.tuning()
}

// tuning is the config's tuning section, empty when headscale's defaults apply.
func (h *Headscale) tuning() string {
	var b strings.Builder
	if d := h.opts.BatchChangeDelay; d > 0 {
		fmt.Fprintf(&b, "  batch_change_delay: %s\n", d)
	}
	if d := h.opts.NodeStoreBatchTimeout; d > 0 {
		fmt.Fprintf(&b, "  node_store_batch_timeout: %s\n", d)
	}
	if b.Len() == 0 {
		return ""
	}
	return "tuning:\n" + b.String()
}

func (h *Headscale) start(ctx context.Context) error {
	p, err := startProc(h.opts.NS, "headscale", nil, h.LogPath, h.bin, "-c", h.Config, "serve")
	if err != nil {
		return fmt.Errorf("headscale: %w", err)
	}
	h.mu.Lock()
	h.p, h.stopped = p, false
	h.mu.Unlock()
	rctx, cancel := context.WithTimeout(ctx, h.opts.ReadyTimeout)
	defer cancel()
	url := fmt.Sprintf("http://%s:%d/health", h.opts.Addr, h.opts.Port)
	for {
		if p.exited() {
			return fmt.Errorf("headscale exited at start; log %s:\n%s", h.LogPath, tail(h.LogPath, 2000))
		}
		_, cliErr := h.cli(rctx, "users", "list", "-o", "json")
		_, httpErr := h.opts.NS.Run("curl", "-sf", "--max-time", "2", url)
		if cliErr == nil && httpErr == nil {
			return nil
		}
		select {
		case <-rctx.Done():
			return fmt.Errorf("headscale not ready after %s (cli: %v; http: %v); log %s", h.opts.ReadyTimeout, cliErr, httpErr, h.LogPath)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// cli runs the headscale CLI against the server's unix socket and returns its stdout. Errors
// carry stderr; callers that pass secrets must scrub them.
func (h *Headscale) cli(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, h.bin, append([]string{"-c", h.Config, "--force"}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + h.Dir, "HEADSCALE_CONFIG=" + h.Config}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("headscale %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

// User is a headscale user.
type User struct {
	ID   uint64 `json:"id"`
	Name string `json:"name"`
}

// CreateUser creates a user (its policy identity is name + "@").
func (h *Headscale) CreateUser(ctx context.Context, name string) (User, error) {
	out, err := h.cli(ctx, "users", "create", name, "-o", "json")
	if err != nil {
		return User{}, err
	}
	var u User
	if err := json.Unmarshal(out, &u); err != nil || u.ID == 0 {
		return User{}, fmt.Errorf("headscale users create %s: cannot parse %q: %v", name, out, err)
	}
	h.mu.Lock()
	h.users[name] = u.ID
	h.mu.Unlock()
	return u, nil
}

func (h *Headscale) userID(ctx context.Context, name string) (uint64, error) {
	h.mu.Lock()
	id, ok := h.users[name]
	h.mu.Unlock()
	if ok {
		return id, nil
	}
	out, err := h.cli(ctx, "users", "list", "-o", "json")
	if err != nil {
		return 0, err
	}
	var us []User
	if err := json.Unmarshal(out, &us); err != nil {
		return 0, fmt.Errorf("headscale users list: %w", err)
	}
	for _, u := range us {
		if u.Name == name {
			return u.ID, nil
		}
	}
	return 0, fmt.Errorf("headscale: no user %q", name)
}

// PreAuthKey creates a pre-auth key for user ("" for a key owned by its tags only) with
// tags, reusable or not, valid for expiry (rounded to seconds; default 1h).
func (h *Headscale) PreAuthKey(ctx context.Context, user string, tags []string, reusable bool, expiry time.Duration) (string, error) {
	args := []string{"preauthkeys", "create", "-o", "json"}
	if user != "" {
		id, err := h.userID(ctx, user)
		if err != nil {
			return "", err
		}
		args = append(args, "--user", strconv.FormatUint(id, 10))
	}
	if len(tags) > 0 {
		args = append(args, "--tags", strings.Join(tags, ","))
	}
	if reusable {
		args = append(args, "--reusable")
	}
	if expiry <= 0 {
		expiry = time.Hour
	}
	args = append(args, "-e", fmt.Sprintf("%ds", int(expiry.Seconds())))
	out, err := h.cli(ctx, args...)
	if err != nil {
		return "", err
	}
	var k struct {
		Key string `json:"key"`
	}
	if err := json.Unmarshal(out, &k); err != nil || k.Key == "" {
		return "", fmt.Errorf("headscale preauthkeys create: cannot parse its output (%d bytes)", len(out))
	}
	return k.Key, nil
}

// Node is one node as `headscale nodes list` shows it.
type Node struct {
	ID        uint64
	Name      string // the hostname the node reported
	GivenName string
	User      string
	IPs       []netip.Addr
	Online    bool
	Tags      []string
	// Approved routes, routes the node announces (Available), and the routes it is the
	// primary router for (Primary; headscale's "subnet_routes").
	Approved, Available, Primary []netip.Prefix
}

// IPv4 returns the node's tailnet IPv4 address, if any.
func (n Node) IPv4() netip.Addr {
	for _, a := range n.IPs {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// Nodes lists the registered nodes.
func (h *Headscale) Nodes(ctx context.Context) ([]Node, error) {
	out, err := h.cli(ctx, "nodes", "list", "-o", "json")
	if err != nil {
		return nil, err
	}
	var raw []struct {
		ID              uint64   `json:"id"`
		Name            string   `json:"name"`
		GivenName       string   `json:"given_name"`
		IPAddresses     []string `json:"ip_addresses"`
		Online          bool     `json:"online"`
		Tags            []string `json:"tags"`
		ApprovedRoutes  []string `json:"approved_routes"`
		AvailableRoutes []string `json:"available_routes"`
		SubnetRoutes    []string `json:"subnet_routes"`
		User            *struct {
			Name string `json:"name"`
		} `json:"user"`
	}
	// An empty list prints "null" or nothing.
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &raw); err != nil {
			return nil, fmt.Errorf("headscale nodes list: %w", err)
		}
	}
	nodes := make([]Node, 0, len(raw))
	for _, r := range raw {
		n := Node{ID: r.ID, Name: r.Name, GivenName: r.GivenName, Online: r.Online, Tags: r.Tags}
		if r.User != nil {
			n.User = r.User.Name
		}
		for _, s := range r.IPAddresses {
			if a, err := netip.ParseAddr(s); err == nil {
				n.IPs = append(n.IPs, a)
			}
		}
		n.Approved = parsePrefixes(r.ApprovedRoutes)
		n.Available = parsePrefixes(r.AvailableRoutes)
		n.Primary = parsePrefixes(r.SubnetRoutes)
		nodes = append(nodes, n)
	}
	return nodes, nil
}

// Node returns the node named name (its reported hostname).
func (h *Headscale) Node(ctx context.Context, name string) (Node, error) {
	nodes, err := h.Nodes(ctx)
	if err != nil {
		return Node{}, err
	}
	for _, n := range nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("headscale: no node %q", name)
}

func parsePrefixes(ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// CheckPolicy asks the running server whether policy is valid (`headscale policy check`).
func (h *Headscale) CheckPolicy(ctx context.Context, policy []byte) error {
	f := filepath.Join(h.Dir, "check.hujson")
	if err := os.WriteFile(f, policy, 0o600); err != nil {
		return err
	}
	defer os.Remove(f)
	_, err := h.cli(ctx, "policy", "check", "--file", f)
	return err
}

// SetPolicy checks policy with the running server, replaces the policy file and makes the
// server reload it (SIGHUP; in file mode headscale re-reads the file).
func (h *Headscale) SetPolicy(ctx context.Context, policy []byte) error {
	if err := h.CheckPolicy(ctx, policy); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "policy.hujson"), policy, 0o600); err != nil {
		return err
	}
	h.mu.Lock()
	p := h.p
	h.mu.Unlock()
	if p == nil || p.exited() {
		return errors.New("headscale is not running")
	}
	return syscall.Kill(-p.cmd.Process.Pid, syscall.SIGHUP)
}

// Kill stops the server at once (SIGKILL) and keeps its directory, so Restart can bring it
// back with the same database and keys.
func (h *Headscale) Kill() {
	h.mu.Lock()
	p := h.p
	h.stopped = true
	h.mu.Unlock()
	p.stop(syscall.SIGKILL, 5*time.Second)
}

// Restart starts a killed server again with the same directory.
func (h *Headscale) Restart(ctx context.Context) error {
	h.Kill()
	return h.start(ctx)
}

// Pid is the process id of headscale (0 if not running).
func (h *Headscale) Pid() int {
	h.mu.Lock()
	p := h.p
	h.mu.Unlock()
	if p != nil && !p.exited() {
		return p.cmd.Process.Pid
	}
	return 0
}

// Stop kills the server and removes its directory if StartHeadscale made it.
func (h *Headscale) Stop() {
	h.mu.Lock()
	p := h.p
	h.mu.Unlock()
	if p != nil {
		p.stop(syscall.SIGTERM, 5*time.Second)
	}
	if h.rmDir && h.Dir != "" {
		_ = os.RemoveAll(h.Dir)
	}
}

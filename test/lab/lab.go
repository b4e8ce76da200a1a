// Package lab is the headnat lab as a library: one kernel, network namespaces for the internet,
// the VPC router with its IGW, two AZs each with one or more NAT instances (real agent, own IMDS
// mock, restarted like the AMI's systemd unit restarts it) and a private client host, and the
// in-process VPC simulator whose route tables drive the router's kernel routes. cmd/headnat-lab
// and the end-to-end tests in this package both build on it.
//
// # NAT instances come and go
//
// The NATs are the lab's Auto Scaling group (ASGName) with two lifecycle hooks: LaunchHook
// (EC2_INSTANCE_LAUNCHING, default result ABANDON, heartbeat timeout Options.LaunchHookTimeout)
// and DrainHook (EC2_INSTANCE_TERMINATING, default result CONTINUE, 5 minutes). The NATs Up
// seeds are InService from the start. While the lab runs, a ticker applies the hooks' heartbeat
// and global timeouts (vpcsim's ExpireLifecycleActions), and the lab removes every NAT whose
// instance the simulator terminated (an abandoned launch, a completed terminate action).
//
//   - Launch(ctx, az) adds a NAT as a scale-out does and returns once its agent runs; it waits
//     in Pending:Wait until its agent completes LaunchHook. WaitInService(ctx, nat, timeout)
//     waits for InService and fails at once, saying why, when the launch was abandoned.
//   - Terminate(ctx, nat, timeout) is a scale-in: the DrainHook action starts, the NAT's IMDS
//     target lifecycle state becomes Terminated, and once the agent completes the action (or it
//     times out) the instance is terminated.
//   - TerminateNow(nat) is EC2 terminating the instance: routes to it become blackholes, its
//     agent is SIGKILLed for good, its namespace and processes go. WaitTerminated waits for it.
//   - Refresh(ctx, timeout) is an instance refresh: every NAT in turn is replaced (Launch,
//     WaitInService, Terminate); RefreshSteps reports each step.
//   - SpotNotice(nat, delay) serves a spot interruption notice in the NAT's IMDS and
//     terminates the instance (TerminateNow) at the interruption time it returns;
//     Rebalance(nat) serves a rebalance recommendation; SetTargetLifecycleState(nat,
//     TargetTerminated) the ASG's target state. Each restarts the NAT's IMDS mock (imdsEvents).
//   - LifecycleState(nat) is the NAT's state in the ASG ("Pending:Wait", "InService",
//     "Terminating:Wait", ..., "terminated"); Drain and Undrain run `headnat drain|undrain` on
//     its agent's ControlSocket.
//
// NATs() lists the live NATs and Sites() one NAT per AZ (for the AZ's host, subnet and route
// table, which outlive any NAT); both return copies, safe while NATs come and go. Launch names
// NATs on from the AZ's last name ("a2", "a3", ...), never reusing one, and gives each the
// lowest free slot of its AZ (Site.Index: addresses, EIP). Site and the lookups behind moves,
// status and traffic (by name, ENI, IP, EIP) also find terminated NATs; the actions on a NAT
// (StartAgent, Kill, Crash, SpotNotice, ...) refuse them. A published Site never changes.
package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/test/netns"
	"github.com/headnat/headnat/test/tailnetlab"
	"github.com/headnat/headnat/test/vpcsim"
)

// RunDir holds one directory per lab started by headnat-lab.
const RunDir = "/run/headnat-lab"

// Options configure Up. The zero value gives the default lab.
type Options struct {
	Name          string        // lab name; default "lab"
	StateDir      string        // state file, logs, agents' state; default RunDir/<Name>
	BinDir        string        // holds headnat and ec2-metadata-mock; default: see FindBinDir
	FailbackAfter time.Duration // agents' failback_after; default 10s
	// AgentEnv is appended to every agent's environment (later entries win), e.g.
	// "HEADNAT_PROBE_INTERVAL=100ms".
	AgentEnv []string
	NoAgents bool // build everything but do not start the agents
	// NATsPerAZ is the number of NAT instances in every AZ; default 1. NATs overrides it per
	// AZ, e.g. {"a": 2, "b": 1}. An AZ's first NAT is named after the AZ ("a"), the others
	// "a2", "a3", ... (see Site).
	NATsPerAZ int
	NATs      map[string]int
	// An agent that exits is started again after RestartDelay (default 1s), as the AMI's
	// systemd unit does (Restart=always, RestartSec=1, StartLimitIntervalSec=0). NoRestart
	// turns that off. StopAgent and Kill stop an agent for good (until StartAgent or Revive).
	NoRestart    bool
	RestartDelay time.Duration
	// ReadyTimeout bounds the wait for both hosts to reach the echo server through their own
	// AZ's NAT; default 90s.
	ReadyTimeout time.Duration
	Logger       *slog.Logger
	// APIStaleness makes the simulated API eventually consistent: each Describe call reads the
	// VPC as it was up to this long ago (vpcsim.Options.Staleness). Default 0.
	APIStaleness time.Duration
	// Tailnet adds a tailnet (see tailnet.go): headscale in inet at HeadscaleAddr, a real
	// tailscaled on every NAT that its agent logs in as the VPC's subnet router, and an admin
	// namespace outside the VPC (AdminAddr) logged in as an admin that accepts the routes.
	// Needs headscale, tailscaled and tailscale in the bin directory. Up waits for it too.
	Tailnet bool
	// TailnetAuthKey, if set, is what the SSM parameter holds instead of a valid pre-auth key
	// (to test a wrong key). The NATs cannot join then: Up waits only for the admin's login.
	TailnetAuthKey string
	// HeadscaleBatchChangeDelay and HeadscaleNodeStoreBatchTimeout set headscale's
	// tuning.batch_change_delay and tuning.node_store_batch_timeout (see
	// tailnetlab.HeadscaleOptions); zero: the lab's defaults, DefaultHeadscale*.
	HeadscaleBatchChangeDelay, HeadscaleNodeStoreBatchTimeout time.Duration
	// LaunchHookTimeout is the heartbeat timeout of the ASG's launch hook (LaunchHook);
	// default DefaultLaunchHookTimeout.
	LaunchHookTimeout time.Duration
}

// The lab's headscale tuning (Options.Headscale*), what docs/ADMIN.md recommends: headscale's
// own defaults (800ms, 500ms) make a drained router's withdrawal reach the admin after 0.7 to
// 1.5s, these after about 0.2s (bench/tailnet). The price, more map rebuilds and sends, is
// nothing for a tailnet of a few NATs and admins.
const (
	DefaultHeadscaleBatchChangeDelay      = 100 * time.Millisecond
	DefaultHeadscaleNodeStoreBatchTimeout = 50 * time.Millisecond
)

// Lab is a running lab.
type Lab struct {
	opts  Options
	log   *slog.Logger
	dir   string
	bin   string
	imdsB string

	Inet, Router *netns.NS
	Admin        *netns.NS // the tailnet's admin node; nil without Options.Tailnet
	Sim          *vpcsim.Sim
	sink         *lateSink

	nss     []*netns.NS
	servers []*http.Server
	tn      *tailnet // nil without Options.Tailnet

	agentMu  sync.Mutex // serialises agent starts, stops and restarts
	closing  chan struct{}
	mu       sync.Mutex
	state    *State
	agents   map[string]*agentSlot // by NAT name
	imds     map[string]*proc
	moves    []Move
	requests []APIRequest
	closed   bool

	// The NAT instances (nats.go): live ones, AZ by AZ, and terminated ones, oldest first.
	// Launch and TerminateNow replace these slices and never change a published Site.
	nats, gone []*Site
	natSeq     map[string]int        // per AZ: how many NATs the AZ has had, for unique names
	eipAlloc   map[string]string     // EIP -> its allocation in the simulator, reused by Launch
	launches   map[string]string     // NAT name -> its launch lifecycle action token
	imdsEvents map[string]imdsEvents // NAT name -> the events its IMDS mock serves
	reaping    map[string]bool       // NATs reap is removing
	removed    map[string]bool       // NATs TerminateNow has removed
	lifeMu     sync.Mutex            // serialises Launch and TerminateNow
	imdsMu     sync.Mutex            // serialises IMDS mock restarts

	decisions    []api.Decision
	seenDecision map[string]bool
	stopWatch    context.CancelFunc
}

// Move is one accepted route write, as the simulator saw it.
type Move struct {
	Time     time.Time `json:"time"`
	Table    string    `json:"table"`
	TableAZ  string    `json:"table_az"` // the table's home site ("a", "b")
	Action   string    `json:"action"`   // ReplaceRoute or CreateRoute
	ENI      string    `json:"eni"`
	TargetAZ string    `json:"target_az"` // the site whose NAT it now points at
}

// FindBinDir picks the directory with the headnat binaries: dir if set, else $HEADNAT_BIN, else
// the directory of the running executable if it holds headnat, else bin/ of the repository
// around the working directory.
func FindBinDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if os.Getenv("HEADNAT_BIN") == "" {
		if exe, err := os.Executable(); err == nil {
			d := filepath.Dir(exe)
			if _, err := os.Stat(filepath.Join(d, "headnat")); err == nil {
				return d, nil
			}
		}
	}
	return tailnetlab.FindBin()
}

// Up builds and starts a lab. On error everything already built is removed.
func Up(ctx context.Context, opts Options) (l *Lab, err error) {
	if opts.Name == "" {
		opts.Name = "lab"
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(RunDir, opts.Name)
	}
	if opts.FailbackAfter == 0 {
		opts.FailbackAfter = 10 * time.Second
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 90 * time.Second
	}
	if opts.RestartDelay == 0 {
		opts.RestartDelay = time.Second
	}
	if opts.HeadscaleBatchChangeDelay == 0 {
		opts.HeadscaleBatchChangeDelay = DefaultHeadscaleBatchChangeDelay
	}
	if opts.LaunchHookTimeout == 0 {
		opts.LaunchHookTimeout = DefaultLaunchHookTimeout
	}
	if opts.HeadscaleNodeStoreBatchTimeout == 0 {
		opts.HeadscaleNodeStoreBatchTimeout = DefaultHeadscaleNodeStoreBatchTimeout
	}
	counts, err := opts.NATCounts()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	need := []string{"ec2-metadata-mock"}
	if !opts.NoAgents {
		need = append(need, "headnat")
	}
	if opts.Tailnet {
		need = append(need, tailnetlab.Binaries...)
	}
	for _, b := range need {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s (run `make build tools` or set HEADNAT_BIN): %w", b, bin, err)
		}
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	l = &Lab{
		opts: opts, log: log, dir: opts.StateDir,
		bin: filepath.Join(bin, "headnat"), imdsB: filepath.Join(bin, "ec2-metadata-mock"),
		agents:   map[string]*agentSlot{},
		imds:     map[string]*proc{},
		eipAlloc: map[string]string{}, launches: map[string]string{}, imdsEvents: map[string]imdsEvents{},
		reaping: map[string]bool{}, removed: map[string]bool{},
		closing: make(chan struct{}),
		state: &State{
			Name: opts.Name, Pid: os.Getpid(), Namespaces: map[string]string{},
			Created: time.Now().UTC(),
		},
	}
	l.nats = newSites(counts)
	l.natSeq = maps.Clone(counts)
	defer func() {
		if err != nil {
			l.Close()
			l = nil
		}
	}()
	if err := l.saveState(); err != nil {
		return l, err
	}
	log.Info("building network namespaces")
	if err := l.buildNetwork(); err != nil {
		return l, fmt.Errorf("build network: %w", err)
	}
	log.Info("seeding the VPC simulator")
	if err := l.startSim(); err != nil {
		return l, fmt.Errorf("vpc simulator: %w", err)
	}
	if err := l.startEcho(); err != nil {
		return l, fmt.Errorf("echo server: %w", err)
	}
	if err := l.startServices(); err != nil {
		return l, fmt.Errorf("private hosts' services: %w", err)
	}
	for _, s := range l.NATs() {
		if err := l.startIMDS(ctx, s); err != nil {
			return l, fmt.Errorf("imds %s: %w", s.Name, err)
		}
	}
	if opts.Tailnet {
		log.Info("starting headscale, a tailscaled on every NAT and the admin node")
		if err := l.startTailnet(ctx); err != nil {
			return l, fmt.Errorf("tailnet: %w", err)
		}
	}
	if opts.NoAgents {
		return l, nil
	}
	for _, s := range l.NATs() {
		if err := l.StartAgent(s.Name); err != nil {
			return l, err
		}
	}
	wctx, stopWatch := context.WithCancel(context.Background())
	l.stopWatch = stopWatch
	go l.watchDecisions(wctx)
	log.Info("waiting for every private host to reach the internet through its own AZ's NAT")
	deadline := time.Now().Add(opts.ReadyTimeout)
	if err := l.WaitHome(ctx, opts.ReadyTimeout); err != nil {
		return l, err
	}
	switch {
	case opts.Tailnet && opts.TailnetAuthKey != "":
		log.Info("the NATs' key is replaced: waiting for the admin's login only")
		if err := l.waitAdmin(ctx, time.Until(deadline)); err != nil {
			return l, err
		}
	case opts.Tailnet:
		log.Info("waiting for the NATs' routes to be approved and the admin to reach the private hosts through the tailnet")
		if err := l.WaitTailnet(ctx, time.Until(deadline)); err != nil {
			return l, err
		}
	}
	return l, nil
}

// Dir is the lab's state directory (state file, logs).
func (l *Lab) Dir() string { return l.dir }

// WaitMove waits up to timeout until the simulator has recorded a write pointing table's
// default route at nat at or after since, and returns the first one. A route read from the
// simulator (Target) can show a write a moment before its record is added.
func (l *Lab) WaitMove(ctx context.Context, table, nat string, since time.Time, timeout time.Duration) (Move, error) {
	var found Move
	ok, err := Poll(ctx, timeout, 50*time.Millisecond, func() bool {
		for _, m := range l.MovesSince(since) {
			if m.Table == table && m.TargetAZ == nat {
				found = m
				return true
			}
		}
		return false
	})
	if err == nil && !ok {
		err = fmt.Errorf("no move of %s to nat-%s recorded within %s: %+v", table, nat, timeout, l.MovesSince(since))
	}
	return found, err
}

// startEcho serves the "internet" echo server on EchoAddr:80 inside inet: every request is
// answered with the client's address as the server saw it.
func (l *Lab) startEcho() error {
	ln, err := ListenIn(l.Inet.Name, net.JoinHostPort(EchoAddr, "80"))
	if err != nil {
		return err
	}
	l.serve(ln, EchoHandler())
	return nil
}

// EchoHandler answers every request with the client's IP address and a newline.
func EchoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			host = r.RemoteAddr
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = io.WriteString(w, host+"\n")
	})
}

func (l *Lab) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	l.mu.Lock()
	l.servers = append(l.servers, srv)
	l.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// startIMDS starts the site's ec2-metadata-mock on 169.254.169.254:80 in its NAT namespace and
// waits until it answers an IMDSv2 token request.
func (l *Lab) startIMDS(ctx context.Context, s *Site) error {
	l.mu.Lock()
	ev := l.imdsEvents[s.Name]
	l.mu.Unlock()
	b, err := imdsConfig(s, ev)
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(l.dir, "imds-"+s.Name+".json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		return err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + l.dir}
	p, err := startProc(s.NAT, "imds-"+s.Name, env, filepath.Join(l.dir, "imds-"+s.Name+".log"),
		l.imdsB, "-I", "-n", IMDSAddr, "-p", "80", "-c", cfgPath)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.imds[s.Name] = p
	l.mu.Unlock()
	l.recordPid("imds-"+s.Name, p.pid())
	c := l.Client(s.NAT.Name, time.Second)
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+IMDSAddr+"/latest/api/token", nil)
		req.Header.Set("X-aws-ec2-metadata-token-ttl-seconds", "60")
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("token: %s", resp.Status)
		}
		if ok, st := p.exited(); ok {
			return fmt.Errorf("ec2-metadata-mock exited (%v); see %s", st, filepath.Join(l.dir, "imds-"+s.Name+".log"))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("ec2-metadata-mock not answering: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// AgentLog is the path of a site's agent log (appended across restarts).
func (l *Lab) AgentLog(site string) string { return filepath.Join(l.dir, "agent-"+site+".log") }

// AgentStatePath is where a site's agent records its data-plane state.
func (l *Lab) AgentStatePath(site string) string {
	return filepath.Join(l.dir, "agent-"+site, "dataplane.json")
}

// UnitEnv is the Environment= of the AMI's headnat.service (ami/files), which the lab's
// agents run with too; test/ami checks that the two agree.
var UnitEnv = []string{"GOGC=50"}

// AgentEnv is the environment a site's agent runs with: endpoints pointing at the lab, static
// lab-only credentials, nothing inherited from the caller.
func (l *Lab) AgentEnv(s *Site, extra ...string) []string {
	env := append(slices.Clone(UnitEnv),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME="+filepath.Join(l.dir, "agent-"+s.Name),
		"AWS_ACCESS_KEY_ID=lab-only-access-key",
		"AWS_SECRET_ACCESS_KEY=lab-only-secret-key",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"HEADNAT_AWS_EC2_ENDPOINT="+APIURL(),
		"HEADNAT_AWS_AUTOSCALING_ENDPOINT="+APIURL(),
		"HEADNAT_AWS_SSM_ENDPOINT="+APIURL(),
		"HEADNAT_AWS_CLOUDWATCH_ENDPOINT="+APIURL(),
		"HEADNAT_AWS_IMDS_ENDPOINT=http://"+IMDSAddr,
		"HEADNAT_AWS_REGION="+Region,
		"HEADNAT_FAILBACK_AFTER="+l.opts.FailbackAfter.String(),
		"HEADNAT_EGRESS_TARGETS="+EchoURL(),
		"HEADNAT_STATE_PATH="+l.AgentStatePath(s.Name),
		"HEADNAT_CONTROL_SOCKET="+l.ControlSocket(s.Name),
		fmt.Sprintf("HEADNAT_LISTEN=:%d", AgentPort),
		fmt.Sprintf("HEADNAT_PEER_PORT=%d", AgentPort),
	)
	env = append(env, l.tailnetEnv(s)...)
	env = append(env, l.opts.AgentEnv...)
	return append(env, extra...)
}

// RunAgentOnce runs `headnat agent` in the site's namespace with extra environment and waits
// for it to exit (bounded by timeout). It returns the exit code (-1 if killed) and its output.
// Used for agents that must refuse to start.
func (l *Lab) RunAgentOnce(ctx context.Context, site string, timeout time.Duration, extraEnv ...string) (int, string, error) {
	return l.RunAgent(ctx, site, timeout, nil, extraEnv...)
}

// RunAgent is RunAgentOnce with extra command-line arguments (e.g. --once, --dry-run).
func (l *Lab) RunAgent(ctx context.Context, site string, timeout time.Duration, args []string, extraEnv ...string) (int, string, error) {
	s, err := l.liveSite(site)
	if err != nil {
		return 0, "", err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := s.NAT.Cmd(ctx, l.bin, append([]string{"agent"}, args...)...)
	cmd.Env = l.AgentEnv(s, extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return -1, string(out), fmt.Errorf("agent still running after %s", timeout)
	}
	if cmd.ProcessState == nil {
		return -1, string(out), err
	}
	return cmd.ProcessState.ExitCode(), string(out), nil
}

// Close stops every process and removes every namespace. Safe to call more than once.
func (l *Lab) Close() {
	// Holding lifeMu, no Launch or TerminateNow runs meanwhile; holding agentMu, no restart can
	// slip in between closing and collecting the processes.
	l.lifeMu.Lock()
	defer l.lifeMu.Unlock()
	l.agentMu.Lock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.agentMu.Unlock()
		return
	}
	l.closed = true
	close(l.closing)
	if l.stopWatch != nil {
		l.stopWatch()
	}
	procs := []*proc{}
	for _, a := range l.agents {
		if a.p != nil {
			procs = append(procs, a.p)
		}
	}
	for _, p := range l.imds {
		procs = append(procs, p)
	}
	servers, nss := l.servers, slices.Clone(l.nss)
	l.mu.Unlock()
	l.agentMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop(syscall.SIGKILL, 0) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); l.stopTailnet() }()
	wg.Wait()
	for _, srv := range servers {
		_ = srv.Close()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		if err := nss[i].Delete(); err != nil {
			l.log.Warn("delete namespace", "ns", nss[i].Name, "err", err)
		}
	}
	l.mu.Lock()
	l.state.Namespaces = map[string]string{}
	l.state.Pids = nil
	l.mu.Unlock()
	_ = l.saveState()
	l.log.Info("lab removed", "name", l.opts.Name)
}

// LogTails returns the last lines of the logs in a lab directory, for failure messages: the
// lab's and the agents' logs and the tailscaled logs (not headscale's: it may log keys).
func LogTails(dir string, lines int) string {
	var b strings.Builder
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(dir, "tailscaled-*", "tailscaled.log"))
	for _, p := range append(logs, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(ls) > lines {
			ls = ls[len(ls)-lines:]
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(&b, "\n=== %s (last %d lines)\n%s", rel, len(ls), strings.Join(ls, "\n"))
	}
	return b.String()
}

// State is what a lab records on disk so that another process can find it and remove it even
// after a crash.
type State struct {
	Name       string            `json:"name"`
	Pid        int               `json:"pid"` // the process hosting the lab (simulator, echo)
	Socket     string            `json:"socket,omitempty"`
	Namespaces map[string]string `json:"namespaces"` // role -> namespace name
	Pids       map[string]int    `json:"pids,omitempty"`
	Created    time.Time         `json:"created"`
}

// StatePath is the state file inside a lab directory.
func StatePath(dir string) string { return filepath.Join(dir, "state.json") }

func (l *Lab) recordPid(name string, pid int) {
	l.mu.Lock()
	if l.state.Pids == nil {
		l.state.Pids = map[string]int{}
	}
	l.state.Pids[name] = pid
	l.mu.Unlock()
	_ = l.saveState()
}

// SetSocket records the control socket of the process hosting the lab.
func (l *Lab) SetSocket(path string) error {
	l.mu.Lock()
	l.state.Socket = path
	l.mu.Unlock()
	return l.saveState()
}

func (l *Lab) saveState() error {
	l.mu.Lock()
	b, err := json.MarshalIndent(l.state, "", "  ")
	l.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := StatePath(l.dir) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return os.Rename(tmp, StatePath(l.dir))
}

// ReadState reads a lab's state file.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(StatePath(dir))
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("%s: %w", StatePath(dir), err)
	}
	return &st, nil
}

// Remove deletes whatever a lab's state file records (its namespaces and every process in
// them) without the process that built it, then sweeps namespaces orphaned by dead processes.
func Remove(dir string) error {
	var errs []error
	st, err := ReadState(dir)
	switch {
	case err == nil:
		for _, name := range st.Namespaces {
			if err := (&netns.NS{Name: name}).Delete(); err != nil {
				errs = append(errs, err)
			}
		}
	case !os.IsNotExist(err):
		errs = append(errs, err)
	}
	netns.Sweep()
	if len(errs) == 0 {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

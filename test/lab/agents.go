package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The lab runs each NAT's agent as the AMI's systemd unit does (Restart=always, RestartSec=1,
// StartLimitIntervalSec=0): an agent that exits, crashes or is SIGKILLed is started again after
// Options.RestartDelay, however often. StopAgent is `systemctl stop`: the agent stays down until
// StartAgent (or Revive).

// agentSlot is one NAT's agent "unit": its current process and whether it is restarted.
type agentSlot struct {
	p        *proc
	started  time.Time
	env      []string // extra environment of the last StartAgent, kept across restarts
	restart  bool     // started and not stopped: restart the agent when it exits
	restarts int      // restarts by the lab so far
	failed   string   // why the lab could not restart it
}

// Agent states (AgentProc.State).
const (
	ProcRunning    = "running"
	ProcRestarting = "restarting" // exited; the lab starts it again after RestartDelay
	ProcStopped    = "stopped"    // stopped (StopAgent, Kill) or never started
	ProcFailed     = "failed"     // could not be started again; see AgentProc.Failed
)

// AgentProc is a NAT's agent process as the lab runs it.
type AgentProc struct {
	State    string    `json:"state"`
	Pid      int       `json:"pid,omitempty"`    // 0 when not running
	Started  time.Time `json:"started,omitzero"` // when the current (or last) process started
	Restarts int       `json:"restarts"`         // how often the lab restarted it after an exit
	Failed   string    `json:"failed,omitempty"` // why the lab stopped restarting it
}

// Agent returns the state of a NAT's agent process.
func (l *Lab) Agent(site string) (AgentProc, error) {
	s, err := l.Site(site)
	if err != nil {
		return AgentProc{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.agents[s.Name]
	if a == nil || a.p == nil {
		return AgentProc{State: ProcStopped}, nil
	}
	ap := AgentProc{Started: a.started, Restarts: a.restarts, Failed: a.failed}
	switch done, _ := a.p.exited(); {
	case !done:
		ap.State, ap.Pid = ProcRunning, a.p.pid()
	case a.restart && !l.closed:
		ap.State = ProcRestarting
	case a.failed != "":
		ap.State = ProcFailed
	default:
		ap.State = ProcStopped
	}
	return ap, nil
}

// AgentRunning reports whether the NAT's agent process is alive.
func (l *Lab) AgentRunning(site string) bool {
	return l.AgentPid(site) != 0
}

// AgentPid returns the pid of the NAT's agent, 0 if none runs.
func (l *Lab) AgentPid(site string) int {
	a, err := l.Agent(site)
	if err != nil {
		return 0
	}
	return a.Pid
}

// StartAgent starts the NAT's agent (`headnat agent`) in its namespace, with extraEnv added to
// AgentEnv, and restarts it whenever it exits (unless Options.NoRestart) until StopAgent or Kill.
func (l *Lab) StartAgent(site string, extraEnv ...string) error {
	s, err := l.liveSite(site)
	if err != nil {
		return err
	}
	l.agentMu.Lock()
	defer l.agentMu.Unlock()
	l.mu.Lock()
	a := l.agents[s.Name]
	if a == nil {
		a = &agentSlot{}
		l.agents[s.Name] = a
	}
	if a.p != nil {
		if done, _ := a.p.exited(); !done {
			l.mu.Unlock()
			return fmt.Errorf("agent %s already running (pid %d)", s.Name, a.p.pid())
		}
	}
	a.env, a.failed = extraEnv, ""
	l.mu.Unlock()
	return l.launch(s, a, false)
}

// launch starts a's process; agentMu is held.
func (l *Lab) launch(s *Site, a *agentSlot, restart bool) error {
	l.mu.Lock()
	closed, env := l.closed, a.env
	l.mu.Unlock()
	if closed {
		return fmt.Errorf("agent %s: the lab is closed", s.Name)
	}
	if err := os.MkdirAll(filepath.Dir(l.AgentStatePath(s.Name)), 0o755); err != nil {
		return err
	}
	p, err := startProc(s.NAT, "agent-"+s.Name, l.AgentEnv(s, env...), l.AgentLog(s.Name), l.bin, "agent")
	if err != nil {
		return err
	}
	now := time.Now()
	l.mu.Lock()
	a.p, a.started, a.restart = p, now, !l.opts.NoRestart
	if restart {
		a.restarts++
	}
	l.mu.Unlock()
	l.recordPid("agent-"+s.Name, p.pid())
	l.log.Info("agent started", "nat", s.Name, "az", s.Zone, "pid", p.pid(), "restart", restart)
	go l.superviseAgent(s, a, p)
	return nil
}

// superviseAgent starts the agent again RestartDelay after p exits, unless it was stopped or
// replaced meanwhile.
func (l *Lab) superviseAgent(s *Site, a *agentSlot, p *proc) {
	select {
	case <-p.done:
	case <-l.closing:
		return
	}
	current := func() bool { return !l.closed && a.p == p && a.restart }
	l.mu.Lock()
	ok := current()
	l.mu.Unlock()
	if !ok {
		return
	}
	l.log.Info("agent exited; restarting it", "nat", s.Name, "after", l.opts.RestartDelay, "exit", p.cmd.ProcessState)
	t := time.NewTimer(l.opts.RestartDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-l.closing:
		return
	}
	l.agentMu.Lock()
	defer l.agentMu.Unlock()
	l.mu.Lock()
	ok = current()
	l.mu.Unlock()
	if !ok {
		return
	}
	if err := l.launch(s, a, true); err != nil {
		l.mu.Lock()
		a.restart, a.failed = false, "restart failed: "+err.Error()
		l.mu.Unlock()
		l.log.Warn("agent restart failed", "nat", s.Name, "err", err)
	}
}

// StopAgent stops the NAT's agent for good, as `systemctl stop` would: it is not restarted
// until StartAgent or Revive. sig SIGKILL stops it at once; SIGTERM waits up to grace for a
// graceful exit, then kills it.
func (l *Lab) StopAgent(site string, sig syscall.Signal, grace time.Duration) error {
	s, err := l.Site(site)
	if err != nil {
		return err
	}
	return l.stopAgent(s, sig, grace)
}

var errNoAgent = errors.New("no agent")

func (l *Lab) stopAgent(s *Site, sig syscall.Signal, grace time.Duration) error {
	l.agentMu.Lock()
	l.mu.Lock()
	a := l.agents[s.Name]
	var p *proc
	if a != nil {
		a.restart = false
		p = a.p
	}
	l.mu.Unlock()
	l.agentMu.Unlock()
	if p == nil {
		return fmt.Errorf("%w %s", errNoAgent, s.Name)
	}
	p.stop(sig, grace)
	l.log.Info("agent stopped", "nat", s.Name, "signal", sig.String())
	return nil
}

// Crash SIGKILLs the NAT's agent and nothing else, as a crash would: the host keeps forwarding
// and the lab restarts the agent after RestartDelay (unless NoRestart). It returns once the
// process is gone, with its pid.
func (l *Lab) Crash(site string) (pid int, err error) {
	s, err := l.liveSite(site)
	if err != nil {
		return 0, err
	}
	l.agentMu.Lock()
	defer l.agentMu.Unlock()
	l.mu.Lock()
	a := l.agents[s.Name]
	var p *proc
	if a != nil && a.p != nil {
		if done, _ := a.p.exited(); !done {
			p = a.p
		}
	}
	l.mu.Unlock()
	if p == nil {
		ag, _ := l.Agent(s.Name)
		return 0, fmt.Errorf("nat-%s has no running agent to crash (agent %s)", s.Name, ag.State)
	}
	p.signal(syscall.SIGKILL)
	if _, ok := p.wait(10 * time.Second); !ok {
		return p.pid(), fmt.Errorf("agent %s (pid %d) still running 10s after SIGKILL", s.Name, p.pid())
	}
	l.log.Info("agent crashed (SIGKILL)", "nat", s.Name, "pid", p.pid())
	return p.pid(), nil
}

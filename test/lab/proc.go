package lab

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// proc is a long-running process inside a namespace, in its own process group, killed if the
// lab process dies.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}

	mu   sync.Mutex
	err  error
	logf *os.File
}

// startProc starts argv inside ns with exactly env, appending its output to logPath.
func startProc(ns *netns.NS, name string, env []string, logPath string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	fmt.Fprintf(logf, "--- %s start %s: %s\n", time.Now().Format(time.RFC3339Nano), name, strings.Join(argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s in %s: %w", name, ns.Name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{}), logf: logf}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		fmt.Fprintf(logf, "--- %s exit %s: %v\n", time.Now().Format(time.RFC3339Nano), name, cmd.ProcessState)
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, *os.ProcessState) {
	select {
	case <-p.done:
		return true, p.cmd.ProcessState
	default:
		return false, nil
	}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) {
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// stop sends sig, waits up to grace, then kills the group and waits for the end.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if ok, _ := p.exited(); ok {
		return
	}
	p.signal(sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	p.signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// wait waits for the process to end, up to d.
func (p *proc) wait(d time.Duration) (*os.ProcessState, bool) {
	select {
	case <-p.done:
		return p.cmd.ProcessState, true
	case <-time.After(d):
		return nil, false
	}
}

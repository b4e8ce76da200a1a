// Package tailnetlab runs real headscale and tailscaled processes inside network namespaces
// for tests (root only): a headscale server with a policy from package policy, tailscaled
// nodes, loopback forwarders to headscale, and a small bridged LAN to put them on. Every
// process runs in its own process group, is killed if the test binary dies, and logs to a file
// in its own directory, never to the test output (the logs may hold keys).
package tailnetlab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// Binaries are the programs this package runs, looked up in the bin directory.
var Binaries = []string{"headscale", "tailscaled", "tailscale"}

// FindBin returns the directory holding headscale, tailscaled and tailscale: $HEADNAT_BIN if
// set, else bin/ of the repository around the working directory.
func FindBin() (string, error) {
	if d := os.Getenv("HEADNAT_BIN"); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/headnat/headnat\n") {
			return filepath.Join(d, "bin"), nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("cannot find the binaries: set HEADNAT_BIN or run `make build tools`")
		}
	}
}

// CheckBin reports the first of Binaries missing from dir.
func CheckBin(dir string) error {
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("%s not found in %s (build it: `cd tools && go build -o ../bin/ tool`, or set HEADNAT_BIN): %w", b, dir, err)
		}
	}
	return nil
}

func binDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return FindBin()
}

// proc is a long-running process inside a namespace, logging to a file.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// startProc starts argv inside ns (nil: this namespace) with env appended to a minimal
// environment; its output is appended to logPath.
func startProc(ns *netns.NS, name string, env []string, logPath string, argv ...string) (*proc, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	fmt.Fprintf(logf, "--- %s start %s\n", time.Now().Format(time.RFC3339Nano), name)
	var cmd *exec.Cmd
	if ns != nil {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns.Name}, argv...)...)
	} else {
		cmd = exec.Command(argv[0], argv[1:]...)
	}
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		fmt.Fprintf(logf, "--- %s exit %s: %v\n", time.Now().Format(time.RFC3339Nano), name, cmd.ProcessState)
		logf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig to the process group, waits up to grace, then kills the group.
func (p *proc) stop(sig syscall.Signal, grace time.Duration) {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// tail returns the last n bytes of a log file, for error messages of processes that never
// handle secrets on their command line.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - n
	if off < 0 {
		off = 0
	}
	b := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(b, off)
	return string(b)
}

// poll calls f every interval until it returns nil or timeout passes; it returns f's last error.
func poll(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}

// scrub replaces every secret in s with "[redacted]".
func scrub(s string, secrets ...string) string {
	for _, k := range secrets {
		if k != "" {
			s = strings.ReplaceAll(s, k, "[redacted]")
		}
	}
	return s
}

package tailnetlab

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/netns"
)

// Forwarder is a loopback TCP forwarder (socat) inside a namespace.
type Forwarder struct {
	NS        *netns.NS
	LocalPort int
	Target    string
	dir       string // removed by Stop; "" if the caller chose the log
	p         *proc
}

// Forward listens on 127.0.0.1:localPort inside ns and forwards each connection to target
// (host:port reachable from ns). tailscale needs a loopback or private control URL; the lab's
// addresses are neither, so each node reaches headscale through one of these.
func Forward(ns *netns.NS, localPort int, target string) (*Forwarder, error) {
	return ForwardWithLog(ns, localPort, target, "")
}

// ForwardWithLog is Forward with socat's log appended to logPath, in a directory that exists;
// "" puts it in a new temporary directory, removed by Stop.
func ForwardWithLog(ns *netns.NS, localPort int, target, logPath string) (*Forwarder, error) {
	if _, err := os.Stat("/usr/bin/socat"); err != nil {
		return nil, fmt.Errorf("forward: socat not installed (`make deps` installs it): %w", err)
	}
	f := &Forwarder{NS: ns, LocalPort: localPort, Target: target}
	if logPath == "" {
		dir, err := os.MkdirTemp("", "fwd-")
		if err != nil {
			return nil, err
		}
		f.dir, logPath = dir, filepath.Join(dir, "socat.log")
	}
	var err error
	f.p, err = startProc(ns, "socat", nil, logPath, "socat",
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork", localPort), "TCP:"+target)
	if err != nil {
		f.removeDir()
		return nil, err
	}
	want := fmt.Sprintf("127.0.0.1:%d ", localPort)
	err = poll(5*time.Second, 50*time.Millisecond, func() error {
		if f.p.exited() {
			return fmt.Errorf("socat exited: %s", tail(logPath, 500))
		}
		out, err := ns.Run("ss", "-ltnH")
		if err != nil {
			return err
		}
		if !strings.Contains(out, want) {
			return fmt.Errorf("forward: 127.0.0.1:%d not listening in %s", localPort, ns.Name)
		}
		return nil
	})
	if err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// Pid is the process id of the forwarder (0 if not running).
func (f *Forwarder) Pid() int {
	if f.p != nil && !f.p.exited() {
		return f.p.cmd.Process.Pid
	}
	return 0
}

// Stop kills the forwarder.
func (f *Forwarder) Stop() {
	f.p.stop(syscall.SIGTERM, 2*time.Second)
	f.removeDir()
}

func (f *Forwarder) removeDir() {
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

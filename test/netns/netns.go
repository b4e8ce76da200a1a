// Package netns builds Linux network namespaces, veth pairs and processes inside them, with
// unique names and reliable cleanup. It shells out to iproute2, as an operator would.
package netns

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix starts every namespace name this package creates: "hn<pid>-<role>-<rand>".
const Prefix = "hn"

// NS is a named network namespace.
type NS struct {
	Name string

	mu    sync.Mutex
	procs []*exec.Cmd
}

func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// Add creates a namespace with a unique name built from role, with lo up.
func Add(role string) (*NS, error) {
	if len(role) > 12 {
		role = role[:12]
	}
	name := fmt.Sprintf("%s%d-%s-%s", Prefix, os.Getpid(), role, randHex(3))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", name, err, bytes.TrimSpace(out))
	}
	n := &NS{Name: name}
	if _, err := n.Run("ip", "link", "set", "lo", "up"); err != nil {
		_ = n.Delete()
		return nil, err
	}
	return n, nil
}

// Cmd returns a command that runs inside the namespace.
func (n *NS) Cmd(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its combined output. The error carries
// the output so a failure explains itself.
func (n *NS) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := n.Cmd(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("[%s] %s: %w: %s", n.Name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Start starts a long-running process inside the namespace. Delete kills it.
func (n *NS) Start(cmd *exec.Cmd) error {
	full := append([]string{"netns", "exec", n.Name}, cmd.Args...)
	path, err := exec.LookPath("ip")
	if err != nil {
		return err
	}
	cmd.Path = path
	cmd.Args = append([]string{"ip"}, full...)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("[%s] start %s: %w", n.Name, strings.Join(full[3:], " "), err)
	}
	n.mu.Lock()
	n.procs = append(n.procs, cmd)
	n.mu.Unlock()
	return nil
}

// Delete kills the processes started in the namespace and removes it (and so its links).
func (n *NS) Delete() error {
	n.mu.Lock()
	procs := n.procs
	n.procs = nil
	n.mu.Unlock()
	for _, p := range procs {
		if p.Process != nil {
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			_ = p.Wait()
		}
	}
	killPids(n.Name)
	out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such file") {
		return fmt.Errorf("ip netns del %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// killPids kills any process still living in the namespace (started by others than Start).
func killPids(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Veth creates a veth pair with one end named aIf in a and the other named bIf in b, both up.
func Veth(a *NS, aIf string, b *NS, bIf string) error {
	ta, tb := "hv"+randHex(5), "hv"+randHex(5)
	steps := [][]string{
		{"ip", "link", "add", ta, "type", "veth", "peer", "name", tb},
		{"ip", "link", "set", ta, "netns", a.Name},
		{"ip", "link", "set", tb, "netns", b.Name},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			_ = exec.Command("ip", "link", "del", ta).Run()
			return fmt.Errorf("%s: %w: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	for _, e := range []struct {
		ns       *NS
		tmp, its string
	}{{a, ta, aIf}, {b, tb, bIf}} {
		if _, err := e.ns.Run("ip", "link", "set", e.tmp, "name", e.its); err != nil {
			return err
		}
		if _, err := e.ns.Run("ip", "link", "set", e.its, "up"); err != nil {
			return err
		}
	}
	return nil
}

// Sweep removes namespaces left behind by processes of this package that are no longer alive
// (a test binary killed by a timeout cannot run its cleanups).
func Sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if !strings.HasPrefix(name, Prefix) {
			continue
		}
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(name, Prefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid == os.Getpid() || alive(pid) {
			continue
		}
		killPids(name)
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

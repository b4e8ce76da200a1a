package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
)

// The lab started by `up` lives in a supervisor process (`headnat-lab supervise`, detached):
// it hosts the VPC simulator and the echo server and answers the other commands on a unix
// socket in the lab's directory.

func socketPath(dir string) string { return filepath.Join(dir, "ctl.sock") }

// labProcess reports whether pid is alive and is a headnat-lab process.
func labProcess(pid int) bool {
	if pid <= 0 || syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.Contains(b, []byte("headnat-lab"))
}

func up(ctx context.Context, o *options, log *slog.Logger) error {
	dir := o.dir()
	if st, err := lab.ReadState(dir); err == nil {
		if labProcess(st.Pid) {
			return fmt.Errorf("lab %q is already up (pid %d); run `headnat-lab -name %s down` first", o.Name, st.Pid, o.Name)
		}
		log.Info("removing a stale lab", "dir", dir)
		if err := lab.Remove(dir); err != nil {
			return fmt.Errorf("remove stale lab: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "supervisor.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"supervise", "-name", o.Name, "-failback-after", o.FailbackAfter.String(), "-timeout", o.Timeout.String(),
		"-nats-per-az", strconv.Itoa(o.NATsPerAZ)}
	if len(o.NATs) > 0 {
		args = append(args, "-nats", o.NATs.String())
	}
	if o.BinDir != "" {
		args = append(args, "-bin", o.BinDir)
	}
	if o.NoTailnet {
		args = append(args, "-no-tailnet")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(o.stdout, "building lab %q (log: %s) ...\n", o.Name, logPath)
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("lab supervisor exited (%v):\n%s", err, tail(logPath, 30))
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			waitExit(exited, 30*time.Second, cmd.Process)
			return ctx.Err()
		case <-deadline.C:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			waitExit(exited, 30*time.Second, cmd.Process)
			return fmt.Errorf("lab not up within %s:\n%s", o.Timeout, tail(logPath, 30))
		case <-tick.C:
		}
		st, err := fetchStatus(ctx, dir)
		if err != nil {
			continue
		}
		fmt.Fprintf(o.stdout, "lab %q is up (supervisor pid %d). Every private host egresses through its own AZ's NAT.\n\n", o.Name, cmd.Process.Pid)
		lab.WriteStatus(o.stdout, st)
		next := "status | kill a | crash a | revive a | break-egress a | partition | heal | spot a | terminate a | launch a | refresh | moves | exec host-a -- <cmd>"
		if st.Tailnet != nil {
			next += " | admin curl http://198.18.10.2/"
		}
		fmt.Fprintf(o.stdout, "\nnext: %s %s | down\n", labCmd(o), next)
		return nil
	}
}

func waitExit(exited <-chan error, d time.Duration, p *os.Process) {
	select {
	case <-exited:
	case <-time.After(d):
		_ = p.Kill()
		<-exited
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func supervise(ctx context.Context, o *options, log *slog.Logger) error {
	dir := o.dir()
	upCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	l, err := lab.Up(upCtx, o.labOptions(dir, log))
	if err != nil {
		return err
	}
	defer func() {
		l.Close()
		_ = os.RemoveAll(dir)
	}()
	sock := socketPath(dir)
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	if err := l.SetSocket(sock); err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	srv := &http.Server{Handler: controlHandler(l, stop), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("lab up, serving control socket", "socket", sock)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("tearing the lab down")
	return nil
}

func controlHandler(l *lab.Lab, stop func()) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l.Status(r.Context()))
	})
	mux.HandleFunc("GET /moves", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(l.MoveLog())
	})
	for _, cmd := range []string{"kill", "crash", "revive", "break-egress", "partition", "heal"} {
		mux.HandleFunc("POST /"+cmd, func(w http.ResponseWriter, r *http.Request) {
			msg, err := act(l, cmd, r.URL.Query().Get("nat"))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintln(w, msg)
		})
	}
	lifecycleHandlers(mux, l)
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "tearing down")
		stop()
	})
	return mux
}

// act runs one control command and says what it changed, or that it changed nothing.
func act(l *lab.Lab, cmd, nat string) (string, error) {
	switch cmd {
	case "partition", "heal":
		before, err := l.Faults()
		if err != nil {
			return "", err
		}
		if cmd == "partition" {
			err = l.Partition()
		} else {
			err = l.Heal()
		}
		if err != nil {
			return "", err
		}
		after, err := l.Faults()
		if err != nil {
			return "", err
		}
		return describeFaults(cmd, len(before), len(after)), nil
	case "crash":
		s, err := l.Site(nat)
		if err != nil {
			return "", err
		}
		pid, err := l.Crash(s.Name)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("nat-%s's agent (pid %d) SIGKILLed; its host keeps forwarding, and the lab starts the agent again in 1s, as systemd would", s.Name, pid), nil
	}
	s, err := l.Site(nat)
	if err != nil {
		return "", err
	}
	before, err := l.NATState(s.Name)
	if err != nil {
		return "", err
	}
	switch cmd {
	case "kill":
		err = l.Kill(s.Name)
	case "revive":
		err = l.Revive(s.Name)
	case "break-egress":
		err = l.BreakEgress(s.Name)
	default:
		return "", fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		return "", err
	}
	after, err := l.NATState(s.Name)
	if err != nil {
		return "", err
	}
	return describe(cmd, before, after), nil
}

// describe says what a kill, revive or break-egress changed on a NAT instance.
func describe(cmd string, before, after lab.NATState) string {
	nat := "nat-" + after.Name
	agentChanged := before.Agent.State != after.Agent.State || before.Agent.Pid != after.Agent.Pid
	if before.LinkUp == after.LinkUp && before.EgressBroken == after.EgressBroken && !agentChanged {
		switch cmd {
		case "kill":
			return nat + " is already down; nothing changed"
		case "revive":
			if after.Up() {
				return nat + " is already up; nothing changed"
			}
			return fmt.Sprintf("%s: nothing changed (link %s, agent %s)", nat, upDown(after.LinkUp), after.Agent.State)
		default:
			return nat + "'s egress is already broken; nothing changed"
		}
	}
	switch cmd {
	case "kill":
		return fmt.Sprintf("%s killed: link down, agent stopped; it stays down until `revive %s`", nat, after.Name)
	case "break-egress":
		return fmt.Sprintf("%s's internet traffic is dropped, its VPC paths stay; `revive %s` or `heal` undoes it", nat, after.Name)
	}
	var did []string
	if !before.LinkUp && after.LinkUp {
		did = append(did, "link up")
	}
	if before.EgressBroken && !after.EgressBroken {
		did = append(did, "egress restored")
	}
	if agentChanged && after.Agent.Pid != 0 {
		did = append(did, fmt.Sprintf("agent started (pid %d)", after.Agent.Pid))
	}
	if len(did) == 0 {
		return nat + " revived"
	}
	return fmt.Sprintf("%s revived: %s", nat, strings.Join(did, ", "))
}

func upDown(up bool) string {
	if up {
		return "up"
	}
	return "down"
}

// describeFaults says what partition or heal changed, from the number of fault rules.
func describeFaults(cmd string, before, after int) string {
	switch {
	case cmd == "partition" && after == before:
		return "the NAT instances are already partitioned; nothing changed"
	case cmd == "partition":
		return "the NAT instances cannot reach each other over the VPC; `heal` undoes it"
	case before == 0:
		return "no break-egress or partition in place; nothing changed"
	default:
		return fmt.Sprintf("healed: removed %d fault rule(s) (killed NATs stay down until revive)", before-after)
	}
}

func controlClient(dir string) *http.Client {
	sock := socketPath(dir)
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}},
	}
}

func fetchStatus(ctx context.Context, dir string) (lab.Status, error) {
	var st lab.Status
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lab/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := controlClient(dir).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("status: %s", resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// labCmd is how to address this lab on the command line.
func labCmd(o *options) string {
	if o.Name == "lab" {
		return "headnat-lab"
	}
	return "headnat-lab -name " + o.Name
}

// notUp turns a failure to reach the lab's control socket into one line.
func notUp(o *options, err error) error {
	if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
		if o.Name == "lab" {
			return errors.New("no lab is running (start one with headnat-lab up)")
		}
		return fmt.Errorf("no lab %q is running (start one with %s up)", o.Name, labCmd(o))
	}
	return fmt.Errorf("lab %q does not answer on %s: %v", o.Name, socketPath(o.dir()), err)
}

func status(ctx context.Context, o *options) error {
	st, err := fetchStatus(ctx, o.dir())
	if err != nil {
		return notUp(o, err)
	}
	if o.JSON {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	lab.WriteStatus(o.stdout, st)
	return nil
}

func moves(ctx context.Context, o *options) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://lab/moves", nil)
	if err != nil {
		return err
	}
	resp, err := controlClient(o.dir()).Do(req)
	if err != nil {
		return notUp(o, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("moves: %s", resp.Status)
	}
	var ml lab.MoveLog
	if err := json.NewDecoder(resp.Body).Decode(&ml); err != nil {
		return fmt.Errorf("moves: %w", err)
	}
	if o.JSON {
		enc := json.NewEncoder(o.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(ml)
	}
	lab.WriteMoves(o.stdout, ml)
	return nil
}

func control(ctx context.Context, o *options) error {
	q := url.Values{}
	if len(o.Args) == 1 {
		q.Set("nat", o.Args[0])
	}
	q.Set("timeout", o.Timeout.String())
	if o.Command == "spot" {
		q.Set("delay", o.Delay.String())
	}
	if o.Command == "refresh" {
		return streamControl(ctx, o, q)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/"+o.Command+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	c := controlClient(o.dir())
	if longCommands[o.Command] {
		c.Timeout = 0 // bounded by -timeout in the lab, and by ctx
	}
	resp, err := c.Do(req)
	if err != nil {
		return notUp(o, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", o.Command, strings.TrimSpace(string(b)))
	}
	fmt.Fprint(o.stdout, string(b))
	return nil
}

// execIn runs argv in one of the lab's namespaces (role: host-a, admin, ...), found in its
// state file, with this process's standard streams; a non-zero exit status is passed through.
func execIn(o *options, role string, argv []string) error {
	st, err := lab.ReadState(o.dir())
	if err != nil || len(st.Namespaces) == 0 {
		return notUp(o, syscall.ENOENT)
	}
	ns, ok := st.Namespaces[role]
	if !ok && role == lab.AdminHostname {
		return fmt.Errorf("lab %q runs without a tailnet (it was started with -no-tailnet): there is no admin node", o.Name)
	}
	if !ok {
		roles := make([]string, 0, len(st.Namespaces))
		for r := range st.Namespaces {
			roles = append(roles, r)
		}
		slices.Sort(roles)
		return fmt.Errorf("no namespace %q in lab %q (have %s)", role, o.Name, strings.Join(roles, ", "))
	}
	// Not bound to ctx: a ^C reaches the command from the terminal, and its status is passed on.
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = o.stdin, o.stdout, o.stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exitCode(128 + int(ws.Signal())) // as a shell reports it
		}
		return exitCode(ee.ExitCode())
	}
	return err
}

func down(ctx context.Context, o *options, log *slog.Logger) error {
	dir := o.dir()
	st, err := lab.ReadState(dir)
	if err != nil {
		netns.Sweep()
		if os.IsNotExist(err) {
			_ = os.RemoveAll(dir)
			fmt.Fprintf(o.stdout, "no lab %q is running; nothing to remove (swept orphaned namespaces)\n", o.Name)
			return nil
		}
		log.Warn("unreadable state, removing what can be found", "err", err)
	}
	if st != nil && labProcess(st.Pid) {
		if st.Socket != "" {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/down", nil)
			c := controlClient(dir)
			c.Timeout = 5 * time.Second
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		} else {
			_ = syscall.Kill(st.Pid, syscall.SIGTERM)
		}
		deadline := time.Now().Add(30 * time.Second)
		for labProcess(st.Pid) && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if labProcess(st.Pid) {
			log.Warn("supervisor did not exit, killing it", "pid", st.Pid)
			_ = syscall.Kill(st.Pid, syscall.SIGKILL)
		}
	}
	if err := lab.Remove(dir); err != nil {
		return err
	}
	pid := 0
	if st != nil {
		pid = st.Pid
	}
	fmt.Fprintf(o.stdout, "lab %q removed%s\n", o.Name, map[bool]string{true: " (supervisor pid " + strconv.Itoa(pid) + ")", false: ""}[pid != 0])
	return nil
}

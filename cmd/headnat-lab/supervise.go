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
		fmt.Fprintf(o.stdout, "\nnext: headnat-lab status | kill a | revive a | break-egress a | partition | heal | down\n")
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
	act := func(name string, fn func(az string) error) {
		mux.HandleFunc("POST /"+name, func(w http.ResponseWriter, r *http.Request) {
			az := r.URL.Query().Get("az")
			if err := fn(az); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintln(w, strings.TrimSpace(name+" "+az)+": done")
		})
	}
	act("kill", l.Kill)
	act("revive", l.Revive)
	act("break-egress", l.BreakEgress)
	act("partition", func(string) error { return l.Partition() })
	act("heal", func(string) error { return l.Heal() })
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "tearing down")
		stop()
	})
	return mux
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

func notUp(o *options, err error) error {
	return fmt.Errorf("lab %q is not up (%v); run `headnat-lab -name %s up`", o.Name, err, o.Name)
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

func control(ctx context.Context, o *options) error {
	q := url.Values{}
	if len(o.Args) == 1 {
		q.Set("az", o.Args[0])
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lab/"+o.Command+"?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	resp, err := controlClient(o.dir()).Do(req)
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

func down(ctx context.Context, o *options, log *slog.Logger) error {
	dir := o.dir()
	st, err := lab.ReadState(dir)
	if err != nil {
		netns.Sweep()
		if os.IsNotExist(err) {
			_ = os.RemoveAll(dir)
			fmt.Fprintf(o.stdout, "no lab %q (swept orphaned namespaces)\n", o.Name)
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

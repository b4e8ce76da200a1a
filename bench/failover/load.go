package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// burnArg is the hidden subcommand of a CPU burner: this binary run again, so that the load is
// another process at the same priority as the agents (like another tenant's workload), not
// goroutines of the benchmark sharing its scheduler.
const burnArg = "__burn-cpu"

// maxBurn bounds a burner's life whatever it is told.
const maxBurn = 2*time.Hour + time.Minute

// burnMain busy-loops on one core for the duration in args[0], or until its parent goes away.
func burnMain(args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, burnArg+": want one duration")
		return 2
	}
	d, err := time.ParseDuration(args[0])
	if err != nil || d <= 0 || d > maxBurn {
		fmt.Fprintf(os.Stderr, "%s: duration %q: want 0 < d ≤ %s\n", burnArg, args[0], maxBurn)
		return 2
	}
	parent := os.Getppid()
	deadline := time.Now().Add(d)
	x := uint64(1)
	for time.Now().Before(deadline) && os.Getppid() == parent {
		for range 1 << 20 { // about a millisecond
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	if x == 0 { // never; keeps the loop from being optimised away
		fmt.Println(x)
	}
	return 0
}

// burners are running CPU burner processes.
type burners struct {
	cmds []*exec.Cmd
}

// startBurners starts n burners, each ending by itself after bound at the latest.
func startBurners(n int, bound time.Duration) (*burners, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("own executable: %w", err)
	}
	b := &burners{}
	for i := range n {
		cmd := exec.Command(exe, burnArg, bound.String())
		cmd.Env = []string{"GOMAXPROCS=1"} // one busy thread each
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.stop()
			return nil, fmt.Errorf("start burner %d: %w", i+1, err)
		}
		b.cmds = append(b.cmds, cmd)
	}
	return b, nil
}

// pids are the burners' process ids.
func (b *burners) pids() []int {
	var out []int
	for _, c := range b.cmds {
		out = append(out, c.Process.Pid)
	}
	return out
}

// stop kills the burners and reaps them. ended counts those that had already exited by
// themselves (they should not have: their bound is past the run's end).
func (b *burners) stop() (cpu time.Duration, ended int) {
	for _, c := range b.cmds {
		_ = c.Process.Signal(syscall.SIGKILL)
	}
	for _, c := range b.cmds {
		err := c.Wait()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			continue
		}
		st := c.ProcessState
		cpu += st.UserTime() + st.SystemTime()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && !ws.Signaled() {
			ended++
		}
	}
	b.cmds = nil
	return cpu, ended
}

// procFields are the fields of /proc/<pid>/stat after the command name (so [0] is field 3,
// the state); nil if the process is unknown.
func procFields(pid int) []string {
	if pid <= 0 {
		return nil
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	// The command name is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b)[i+1:])
}

// procNice is a process's nice value ("?" if unknown).
func procNice(pid int) string {
	f := procFields(pid)
	if len(f) < 17 {
		return "?"
	}
	return f[16]
}

// runDelay is the time the threads of a process have spent waiting on a run queue for a CPU
// (the second field of /proc/<pid>/task/<tid>/schedstat), summed over its current threads.
func runDelay(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		sum += parseRunDelay(string(b))
	}
	return sum
}

// parseRunDelay reads the run-queue wait (nanoseconds, second field) of a schedstat line.
func parseRunDelay(s string) time.Duration {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ns < 0 {
		return 0
	}
	return time.Duration(ns)
}

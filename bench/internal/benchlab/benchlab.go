// Package benchlab is what the lab benchmarks share: the checks before a run, progress lines,
// and a lab in a directory of its own whose logs are kept when the run has something to explain.
package benchlab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/bench/internal/benchdoc"
	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
)

// Prepare checks that benchmark name can run (as root, with tools on the PATH) and removes the
// namespaces an earlier run left behind.
func Prepare(name string, tools ...string) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root (it builds network namespaces): sudo make " + name)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not installed", tool)
		}
	}
	netns.Sweep()
	return nil
}

// Progress prints what a benchmark does, with the time since it started.
type Progress struct{ Start time.Time }

// Say prints one progress line on stderr.
func (p Progress) Say(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(p.Start).Seconds(), fmt.Sprintf(format, a...))
}

// Lab is a benchmark's lab and the directory with its state and logs.
type Lab struct {
	*lab.Lab
	Dir string
	log *os.File
	p   Progress
}

// Up builds a lab in a new temporary directory named after the benchmark, the lab's own log in
// lab.log there (o.StateDir and o.Logger are set here). On error the directory is kept.
func Up(ctx context.Context, name string, o lab.Options, p Progress) (*Lab, error) {
	dir, err := os.MkdirTemp("", name+"-")
	if err != nil {
		return nil, err
	}
	f, err := os.Create(filepath.Join(dir, "lab.log"))
	if err != nil {
		return nil, err
	}
	o.StateDir = dir
	o.Logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l, err := lab.Up(ctx, o)
	if err != nil {
		f.Close()
		fmt.Fprintf(os.Stderr, "lab directory (agent and lab logs) kept: %s\n", dir)
		return nil, fmt.Errorf("lab up: %w", err)
	}
	return &Lab{Lab: l, Dir: dir, log: f, p: p}, nil
}

// Close tears the lab down and removes its directory, unless keep: then it says where it is.
func (l *Lab) Close(keep bool) {
	l.p.Say("tearing the lab down ...")
	l.Lab.Close()
	l.log.Close()
	if keep {
		fmt.Fprintf(os.Stderr, "lab directory (agent and lab logs) kept: %s\n", l.Dir)
		return
	}
	_ = os.RemoveAll(l.Dir)
}

// Main parses a benchmark's flags from the command line, validates them, and runs it until it
// is done or interrupted (SIGINT, SIGTERM, SIGHUP cancel its context, so its lab is torn
// down). It exits 2 on bad flags and 1, with the error on one line, when the run fails.
func Main(fs *flag.FlagSet, validate func() error, run func(context.Context) error) {
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if err := validate(); err != nil {
		fmt.Fprintln(os.Stderr, fs.Name()+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, fs.Name()+":", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

// Publish prints the summary, then writes markdown into benchmark name's section of the file
// out ("" prints it instead).
func Publish(name, out, summary, markdown string, p Progress) error {
	fmt.Print(summary)
	if out == "" {
		fmt.Print(markdown)
		return nil
	}
	if err := benchdoc.Update(out, name, markdown); err != nil {
		return err
	}
	p.Say("wrote the %s section of %s", name, out)
	return nil
}

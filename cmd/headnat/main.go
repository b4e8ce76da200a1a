// Command headnat is the headnat NAT appliance: the agent and the operator's tools.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// command is one subcommand: run parses its own flags and does the work.
type command struct {
	summary string
	run     func(ctx context.Context, env *env, args []string) error
}

// commands maps each subcommand to its entry point: one line per subcommand.
var commands = map[string]command{
	"dataplane": {"apply, verify or remove the NAT data plane on this host", dataplaneMain},
	"version":   {"print the version", versionMain},
}

// env is what every subcommand gets from main.
type env struct {
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

// usageError is a command line that cannot be understood: exit code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// parseFlags parses the flags of a subcommand that takes no arguments: flag.ErrHelp once the
// help is printed, a usage error for a bad flag or an argument.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return flag.ErrHelp
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %v", fs.Args())
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// dispatch runs the subcommand named by args[0] and returns the exit code: 0 success, 1
// failure, 2 usage error, or the code of an error with an ExitCode method. A failure is
// reported as one line on stderr.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "headnat: unknown command %q (see headnat help)\n", args[0])
		return 2
	}
	e := &env{stdout: stdout, stderr: stderr, log: slog.New(slog.NewTextHandler(stderr, nil))}
	err := cmd.run(ctx, e, args[1:])
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "headnat %s: %s\n", args[0], oneLine(err.Error()))
	if errors.As(err, new(usageError)) {
		return 2
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return 1
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: headnat <command> [flags]")
	fmt.Fprintln(w, "commands:")
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range commands {
			if !yield(n) {
				return
			}
		}
	}) {
		fmt.Fprintf(w, "  %-10s %s\n", name, commands[name].summary)
	}
}

// oneLine folds a multi-line error (iptables prints several) onto one line.
func oneLine(s string) string {
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

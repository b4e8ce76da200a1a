package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/agent/control"
)

func init() {
	commands["drain"] = command{"take this instance out of service: peers take its route tables", drainMain}
	commands["undrain"] = command{"put an instance drained by `headnat drain` back in service", undrainMain}
}

// drainCmd is `headnat drain`.
type drainCmd struct {
	socket  string
	reason  string
	wait    bool
	timeout time.Duration
	poll    time.Duration // how often the status is read while waiting
}

func drainMain(ctx context.Context, e *env, args []string) error {
	c, err := parseDrain(args, e.stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.run(ctx, e.stdout)
}

func parseDrain(args []string, stderr io.Writer) (drainCmd, error) {
	fs := flag.NewFlagSet("headnat drain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := drainCmd{poll: 500 * time.Millisecond}
	var noWait bool
	fs.StringVar(&c.socket, "socket", config.Default().ControlSocket, "the agent's control socket")
	fs.StringVar(&c.reason, "reason", "", "why, for `headnat status` and the logs")
	fs.BoolVar(&c.wait, "wait", true, "wait until no route table targets this instance")
	fs.BoolVar(&noWait, "no-wait", false, "return once the drain has started")
	fs.DurationVar(&c.timeout, "timeout", 2*time.Minute, "how long to wait")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: headnat drain [--reason TEXT] [--no-wait | --timeout DURATION] [--socket PATH]

Takes this instance out of service: the local agent reports itself draining, its peers take
the route tables it serves, and it keeps forwarding what still reaches it until it is stopped.
`+"`headnat undrain`"+` puts it back in service.

  --reason TEXT        why, shown by `+"`headnat status`"+` as "operator: TEXT"
  --wait               wait until no route table targets this instance (default)
  --no-wait            return once the drain has started
  --timeout DURATION   how long to wait before giving up (default 2m0s); the drain goes on
  --socket PATH        the agent's control socket (default %s)

Exit status: 0 drained (or started, with --no-wait), 1 refused, failed or timed out, 2 usage.
`, config.Default().ControlSocket)
	}
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if noWait {
		if set["wait"] && c.wait {
			return c, usagef("--wait and --no-wait together")
		}
		c.wait = false
	}
	if !c.wait && set["timeout"] {
		return c, usagef("--timeout is only for waiting; drop it or --no-wait")
	}
	if c.timeout <= 0 {
		return c, usagef("--timeout %v: must be positive", c.timeout)
	}
	if c.socket == "" {
		return c, usagef("--socket: empty path")
	}
	if err := control.CheckNote(c.reason); err != nil {
		return c, usagef("--reason: %v", err)
	}
	return c, nil
}

func (c drainCmd) run(ctx context.Context, w io.Writer) error {
	res, err := control.Drain(ctx, c.socket, c.reason)
	if err != nil {
		return err
	}
	line := fmt.Sprintf("draining %s (%s)", res.Instance, res.Reason)
	if res.Already {
		stage := res.Lifecycle
		if stage == "" {
			stage = api.LifecycleDraining
		}
		line = fmt.Sprintf("%s is already %s (%s)", res.Instance, stage, res.Reason)
	}
	if len(res.Tables) == 0 {
		fmt.Fprintln(w, line)
		fmt.Fprintln(w, drainedLine(res.Instance, res.Reason))
		return nil
	}
	if !c.wait {
		fmt.Fprintf(w, "%s; peers are taking %s (`headnat status` shows when they have)\n", line, strings.Join(res.Tables, ", "))
		return nil
	}
	fmt.Fprintf(w, "%s; waiting for peers to take %s\n", line, strings.Join(res.Tables, ", "))
	return c.waitDrained(ctx, w, res)
}

// waitDrained polls the agent until no route table targets it, printing the tables left
// whenever they change.
func (c drainCmd) waitDrained(ctx context.Context, w io.Writer, res control.DrainResult) error {
	wctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tick := time.NewTicker(c.poll)
	defer tick.Stop()
	held, healthyPeers := res.Tables, -1
	for {
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted; the drain goes on (`headnat status` shows it)")
			}
			return c.timedOut(res, held, healthyPeers)
		case <-tick.C:
		}
		st, err := control.Status(wctx, c.socket)
		if err != nil {
			if wctx.Err() != nil {
				continue
			}
			return fmt.Errorf("the drain goes on, but its progress cannot be read: %w", err)
		}
		if !st.Self.Draining {
			return fmt.Errorf("%s is no longer draining (%s): was it undrained?", st.Self.Instance, orDash(st.Self.Lifecycle))
		}
		if len(st.Self.Tables) == 0 {
			fmt.Fprintln(w, drainedLine(st.Self.Instance, st.Self.DrainReason))
			return nil
		}
		healthyPeers = 0
		for _, p := range st.Peers {
			if p.Healthy && !p.Draining {
				healthyPeers++
			}
		}
		if !slices.Equal(st.Self.Tables, held) {
			held = st.Self.Tables
			fmt.Fprintf(w, "waiting for peers to take %s\n", strings.Join(held, ", "))
		}
	}
}

func (c drainCmd) timedOut(res control.DrainResult, held []string, healthyPeers int) error {
	why := ""
	if healthyPeers == 0 {
		why = " (no healthy peer can take them)"
	}
	next := "`headnat status` shows why"
	if control.Cause(res.Reason) == api.DrainOperator {
		next += ", `headnat undrain` puts it back in service"
	}
	return fmt.Errorf("timed out after %v: %s still serves %s%s; it stays draining: %s",
		c.timeout, res.Instance, strings.Join(held, ", "), why, next)
}

func drainedLine(instance, reason string) string {
	line := fmt.Sprintf("drained: no route table targets %s; it keeps forwarding until stopped", instance)
	if control.Cause(reason) == api.DrainOperator {
		return line + "; `headnat undrain` puts it back in service"
	}
	return line
}

// undrainCmd is `headnat undrain`.
type undrainCmd struct {
	socket string
}

func undrainMain(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("headnat undrain", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	var c undrainCmd
	fs.StringVar(&c.socket, "socket", config.Default().ControlSocket, "the agent's control socket")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: headnat undrain [--socket PATH]

Ends a drain started by `+"`headnat drain`"+`: the instance is in service again and takes its
route tables back as any recovered instance does. A drain for a spot interruption notice or a
termination cannot be undone.

  --socket PATH  the agent's control socket (default %s)
`, config.Default().ControlSocket)
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	return c.run(ctx, e.stdout)
}

func (c undrainCmd) run(ctx context.Context, w io.Writer) error {
	res, err := control.Undrain(ctx, c.socket)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "undrained %s (was %s): in service again; its route tables come back as for any recovered instance\n",
		res.Instance, res.Reason)
	return nil
}

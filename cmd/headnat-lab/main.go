// Command headnat-lab runs the headnat lab on one machine, as root: two AZs in network
// namespaces, one or more NAT instances per AZ running the real agent against a simulated VPC,
// and (unless -no-tailnet) a tailnet: headscale, a tailscaled on every NAT, an admin node.
//
//	headnat-lab up                   build the lab and start the agents (in the background)
//	headnat-lab status               route tables, agents, hosts, the last route moves
//	headnat-lab moves                every route move so far
//	headnat-lab kill <nat>           the NAT instance dies (link down, agent stopped)
//	headnat-lab crash <nat>          only its agent is SIGKILLed; restarted after 1s
//	headnat-lab revive <nat>         it comes back (undoes kill and break-egress)
//	headnat-lab break-egress <nat>   drop that NAT's internet traffic, keep its VPC paths
//	headnat-lab partition            the NATs cannot reach each other over the VPC
//	headnat-lab heal                 undo break-egress and partition
//	headnat-lab spot <nat> [-delay d] a spot interruption notice in its IMDS; terminated after d (2m)
//	headnat-lab rebalance <nat>      a rebalance recommendation in its IMDS
//	headnat-lab terminate <nat>      ASG scale-in: the terminate hook, IMDS target state Terminated,
//	                                 termination once the agent completes the hook (or it times out)
//	headnat-lab launch <az>          ASG scale-out: a new NAT in AZ a or b (Pending:Wait under the
//	                                 launch hook until its agent completes it)
//	headnat-lab refresh              ASG instance refresh: replace every NAT, one at a time
//	headnat-lab drain <nat>          `headnat drain` on that NAT (undrain: `headnat undrain`)
//	headnat-lab exec <ns> -- cmd...  run a command in a lab namespace (host-a, nat-a, router, ...)
//	headnat-lab admin curl <url>     curl from the tailnet's admin node, e.g. a private host
//	headnat-lab down                 remove everything, even after a crash
//	headnat-lab demo                 up, live traffic, a failover and a fail-back, the admin's
//	                                 tailnet access across a NAT's death, an instance refresh, down
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
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/headnat/headnat/test/lab"
)

var version = "dev"

type options struct {
	Command       string
	Args          []string
	Name          string
	BinDir        string
	FailbackAfter time.Duration
	Timeout       time.Duration
	NATsPerAZ     int
	NATs          natCounts
	JSON          bool
	Verbose       bool
	NoTailnet     bool
	Delay         time.Duration // spot: from the notice to the interruption

	stdout, stderr io.Writer
	stdin          io.Reader
}

func (o *options) dir() string { return filepath.Join(lab.RunDir, o.Name) }

// labOptions are the lab.Options the flags ask for.
func (o *options) labOptions(dir string, log *slog.Logger) lab.Options {
	return lab.Options{Name: filepath.Base(dir), StateDir: dir, BinDir: o.BinDir, FailbackAfter: o.FailbackAfter,
		NATsPerAZ: o.NATsPerAZ, NATs: o.NATs, Logger: log, Tailnet: !o.NoTailnet}
}

// natCounts is -nats: "a=2,b=1".
type natCounts map[string]int

func (n *natCounts) String() string {
	if n == nil || *n == nil {
		return ""
	}
	var parts []string
	for _, az := range lab.AZs {
		if c, ok := (*n)[az]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", az, c))
		}
	}
	return strings.Join(parts, ",")
}

func (n *natCounts) Set(v string) error {
	m := natCounts{}
	for _, part := range strings.Split(v, ",") {
		az, count, ok := strings.Cut(strings.TrimSpace(part), "=")
		c, err := strconv.Atoi(count)
		if !ok || az == "" || err != nil {
			return fmt.Errorf("%q: want <az>=<count>, e.g. a=2,b=1", part)
		}
		if _, dup := m[az]; dup {
			return fmt.Errorf("AZ %s given twice", az)
		}
		m[az] = c
	}
	*n = m
	return nil
}

const usage = `usage: headnat-lab [flags] <command> [args]

commands:
  up                  build the lab and start the agents (runs in the background)
  status              route tables, NATs and agents, private hosts, the last 10 route moves
  moves               every route move so far, with the deciding agent's reason
  kill <nat>          the NAT instance dies: link down, agent stopped (not restarted until revive)
  crash <nat>         SIGKILL only its agent; the lab restarts it after 1s, as systemd does
  revive <nat>        bring it back: link up, agent started, its break-egress undone
  break-egress <nat>  drop that NAT's internet traffic (VPC paths stay)
  partition           the NAT instances cannot reach each other over the VPC
  heal                undo every break-egress and the partition
  spot <nat>          a spot interruption notice (action terminate) in that NAT's IMDS; the lab
                      terminates the instance -delay later (2m, as on AWS)
  rebalance <nat>     an EC2 rebalance recommendation in that NAT's IMDS
  terminate <nat>     what an ASG scale-in does: start the terminate lifecycle hook, set the IMDS
                      target lifecycle state to Terminated, wait (up to -timeout) for the agent to
                      complete the hook (or its heartbeat timeout), then terminate the instance
  launch <az>         what an ASG scale-out does: a new NAT instance in AZ a or b, Pending:Wait
                      under the launch hook until its agent completes it
  refresh             an ASG instance refresh: for every NAT, one at a time, launch a replacement,
                      wait until it is InService, terminate the old one through its hook
  drain <nat>         run headnat drain on that NAT (its agent's control socket)
  undrain <nat>       run headnat undrain on that NAT
  exec <ns> -- <cmd>  run a command in a lab namespace: host-a, host-b, nat-a, nat-b, router,
                      inet, admin, ... (status lists them); its exit code is passed through
  admin curl <url>    curl (-sS -m 10, then your arguments) from the tailnet's admin node, e.g.
                      admin curl http://198.18.10.2/ : host-a's service answers with the address
                      it sees, the VPC address of the NAT that routed the request
  down                remove the lab (namespaces, processes), even after a crash
  demo                up, traffic, a live failover and fail-back, then the admin reaching a
                      private host through the tailnet while the primary router dies, then
                      an instance refresh under traffic, down (what make lab runs)
  version

<nat> is a NAT instance: a or b (the first NAT of AZ a or b; also nat-a, us-east-1a), a2, b2,
... for further NATs of an AZ (-nats-per-az, -nats) and for those launch and refresh add
(names are never reused; status lists them with their lifecycle state).

flags:
`

func parseFlags(args []string, stdout, stderr io.Writer) (*options, error) {
	o := &options{stdout: stdout, stderr: stderr, stdin: os.Stdin}
	fs := flag.NewFlagSet("headnat-lab", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.Name, "name", "lab", "lab name (state under "+lab.RunDir+"/<name>)")
	fs.StringVar(&o.BinDir, "bin", "", "directory with headnat and ec2-metadata-mock (default: $HEADNAT_BIN, next to this program, or the repository's bin/)")
	fs.DurationVar(&o.FailbackAfter, "failback-after", 10*time.Second, "agents' failback_after")
	fs.DurationVar(&o.Timeout, "timeout", 3*time.Minute, "upper bound for up and demo, and for each wait of terminate, launch and refresh")
	fs.DurationVar(&o.Delay, "delay", lab.DefaultSpotDelay, "spot: time from the notice to the interruption")
	fs.IntVar(&o.NATsPerAZ, "nats-per-az", 1, fmt.Sprintf("NAT instances in every AZ (up, demo; 1 to %d)", lab.MaxNATsPerAZ))
	fs.Var(&o.NATs, "nats", "NAT instances per AZ, overriding -nats-per-az, e.g. a=2,b=1 (up, demo)")
	fs.BoolVar(&o.JSON, "json", false, "status and moves as JSON")
	fs.BoolVar(&o.Verbose, "v", false, "log what the lab does")
	fs.BoolVar(&o.NoTailnet, "no-tailnet", false, "no headscale, tailscaled nor admin node (up, demo): faster, NAT and failover only")
	err := fs.Parse(args)
	if err != nil {
		return nil, err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return nil, errors.New("no command given")
	}
	o.Command, o.Args = fs.Arg(0), fs.Args()[1:]
	// Flags may also follow the command.
	if err := fs.Parse(o.Args); err != nil {
		return nil, err
	}
	o.Args = fs.Args()
	if o.Command != "exec" && o.Command != "admin" {
		// Flags may follow the arguments too: spot a -delay 30s.
		if o.Args, err = interleaved(fs, o.Args); err != nil {
			return nil, err
		}
	}
	want := map[string]int{"up": 0, "status": 0, "moves": 0, "kill": 1, "crash": 1, "revive": 1, "break-egress": 1,
		"partition": 0, "heal": 0, "down": 0, "demo": 0, "version": 0, "supervise": 0, "exec": -1, "admin": -1,
		"spot": 1, "rebalance": 1, "terminate": 1, "launch": 1, "refresh": 0, "drain": 1, "undrain": 1}
	n, ok := want[o.Command]
	switch {
	case !ok:
		fs.Usage()
		return nil, fmt.Errorf("unknown command %q", o.Command)
	case o.Command == "exec":
		if len(o.Args) > 1 && o.Args[1] == "--" {
			o.Args = append(o.Args[:1], o.Args[2:]...)
		}
		if len(o.Args) < 2 {
			return nil, errors.New("exec takes a namespace and a command: exec <ns> -- <command> [args]")
		}
	case o.Command == "admin":
		if len(o.Args) < 2 || o.Args[0] != "curl" {
			return nil, errors.New("admin takes curl and its arguments: admin curl <url>")
		}
	case len(o.Args) != n:
		return nil, fmt.Errorf("%s takes %d argument(s), got %d", o.Command, n, len(o.Args))
	}
	if o.Name == "" || filepath.Base(o.Name) != o.Name || o.Name[0] == '.' {
		return nil, fmt.Errorf("invalid lab name %q", o.Name)
	}
	if o.FailbackAfter <= 0 || o.Timeout <= 0 || o.Delay <= 0 {
		return nil, errors.New("-failback-after, -timeout and -delay must be positive")
	}
	if o.NATsPerAZ < 1 {
		return nil, fmt.Errorf("-nats-per-az %d: want 1 to %d", o.NATsPerAZ, lab.MaxNATsPerAZ)
	}
	if _, err := (lab.Options{NATsPerAZ: o.NATsPerAZ, NATs: o.NATs}).NATCounts(); err != nil {
		return nil, err
	}
	return o, nil
}

// interleaved parses flags found between positional arguments and returns the positionals.
func interleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for len(args) > 0 { // each round consumes at least one argument
		pos, args = append(pos, args[0]), args[1:]
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
	}
	return pos, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "headnat-lab:", err)
		os.Exit(2)
	}
	level := slog.LevelWarn
	if o.Verbose || o.Command == "supervise" {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		var ec exitCode
		switch {
		case errors.As(err, &ec):
			os.Exit(int(ec))
		case ctx.Err() != nil && errors.Is(err, context.Canceled):
			fmt.Fprintln(os.Stderr, "headnat-lab: interrupted")
			os.Exit(130)
		}
		fmt.Fprintln(os.Stderr, "headnat-lab:", err)
		os.Exit(1)
	}
}

// exitCode is the exit status of a command run by exec, passed through.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func run(ctx context.Context, o *options, log *slog.Logger) error {
	if o.Command == "version" {
		fmt.Fprintln(o.stdout, "headnat-lab", version)
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces, iptables)")
	}
	switch o.Command {
	case "up":
		return up(ctx, o, log)
	case "supervise":
		return supervise(ctx, o, log)
	case "down":
		return down(ctx, o, log)
	case "demo":
		return demo(ctx, o, log)
	case "status":
		return status(ctx, o)
	case "moves":
		return moves(ctx, o)
	case "exec":
		return execIn(o, o.Args[0], o.Args[1:])
	case "admin":
		return execIn(o, lab.AdminHostname, append([]string{"curl", "-sS", "-m", "10"}, o.Args[1:]...))
	default:
		return control(ctx, o)
	}
}

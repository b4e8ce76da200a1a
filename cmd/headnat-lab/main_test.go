package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/test/lab"
	"github.com/headnat/headnat/test/netns"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		check   func(*options) bool
	}{
		{args: []string{"up"}, check: func(o *options) bool {
			return o.Command == "up" && o.Name == "lab" && o.FailbackAfter == 10*time.Second && o.NATsPerAZ == 1 && o.NATs == nil
		}},
		{args: []string{"-name", "x", "kill", "a"}, check: func(o *options) bool { return o.Name == "x" && o.Command == "kill" && o.Args[0] == "a" }},
		{args: []string{"kill", "a2"}, check: func(o *options) bool { return o.Command == "kill" && o.Args[0] == "a2" }},
		{args: []string{"crash", "nat-b"}, check: func(o *options) bool { return o.Command == "crash" && o.Args[0] == "nat-b" }},
		{args: []string{"moves", "-json"}, check: func(o *options) bool { return o.Command == "moves" && o.JSON }},
		{args: []string{"status", "-json"}, check: func(o *options) bool { return o.Command == "status" && o.JSON }},
		{args: []string{"demo", "-failback-after", "3s"}, check: func(o *options) bool { return o.FailbackAfter == 3*time.Second }},
		{args: []string{"up", "-nats-per-az", "2"}, check: func(o *options) bool { return o.NATsPerAZ == 2 }},
		{args: []string{"-nats", "a=2,b=1", "demo"}, check: func(o *options) bool {
			return o.NATs["a"] == 2 && o.NATs["b"] == 1 && len(o.NATs) == 2 && o.NATs.String() == "a=2,b=1"
		}},
		{args: []string{"up", "-nats", "a=3"}, check: func(o *options) bool { return o.NATs["a"] == 3 && len(o.NATs) == 1 }},
		{args: []string{"exec", "host-a", "--", "ping", "-c1", "203.0.113.1"}, check: func(o *options) bool {
			return o.Command == "exec" && strings.Join(o.Args, " ") == "host-a ping -c1 203.0.113.1"
		}},
		{args: []string{"-name", "x", "exec", "router", "ip", "rule"}, check: func(o *options) bool {
			return o.Name == "x" && strings.Join(o.Args, " ") == "router ip rule"
		}},
		{args: []string{"exec", "host-a", "--", "sh", "-c", "exit 3", "--", "x"}, check: func(o *options) bool {
			return strings.Join(o.Args, "|") == "host-a|sh|-c|exit 3|--|x"
		}},
		{args: []string{"admin", "curl", "http://198.18.10.2/"}, check: func(o *options) bool {
			return o.Command == "admin" && strings.Join(o.Args, " ") == "curl http://198.18.10.2/"
		}},
		{args: []string{"admin", "curl", "-v", "http://198.18.11.2/"}, check: func(o *options) bool {
			return strings.Join(o.Args, " ") == "curl -v http://198.18.11.2/" && !o.Verbose
		}},
		{args: []string{"up", "-no-tailnet"}, check: func(o *options) bool { return o.NoTailnet && !o.labOptions("/x", nil).Tailnet }},
		{args: []string{"demo"}, check: func(o *options) bool { return !o.NoTailnet && o.labOptions("/x", nil).Tailnet }},
		{args: []string{"spot", "a2", "-delay", "30s"}, check: func(o *options) bool {
			return o.Command == "spot" && o.Args[0] == "a2" && o.Delay == 30*time.Second
		}},
		{args: []string{"spot", "b"}, check: func(o *options) bool { return o.Delay == 2*time.Minute }},
		{args: []string{"launch", "a"}, check: func(o *options) bool { return o.Command == "launch" && o.Args[0] == "a" }},
		{args: []string{"refresh", "-timeout", "1m"}, check: func(o *options) bool { return o.Command == "refresh" && o.Timeout == time.Minute }},
		{args: []string{"drain", "a"}, check: func(o *options) bool { return o.Command == "drain" && o.Args[0] == "a" }},
		{args: []string{"undrain", "a"}, check: func(o *options) bool { return o.Command == "undrain" }},
		{args: []string{"refresh", "a"}, wantErr: "takes 0 argument"},
		{args: []string{"terminate"}, wantErr: "takes 1 argument"},
		{args: []string{"spot", "a", "-delay", "0s"}, wantErr: "must be positive"},
		{args: []string{}, wantErr: "no command"},
		{args: []string{"explode"}, wantErr: "unknown command"},
		{args: []string{"kill"}, wantErr: "takes 1 argument"},
		{args: []string{"crash"}, wantErr: "takes 1 argument"},
		{args: []string{"heal", "a"}, wantErr: "takes 0 argument"},
		{args: []string{"moves", "a"}, wantErr: "takes 0 argument"},
		{args: []string{"exec"}, wantErr: "exec takes a namespace and a command"},
		{args: []string{"admin"}, wantErr: "admin takes curl"},
		{args: []string{"admin", "curl"}, wantErr: "admin takes curl"},
		{args: []string{"admin", "ping", "198.18.10.2"}, wantErr: "admin takes curl"},
		{args: []string{"exec", "host-a"}, wantErr: "exec takes a namespace and a command"},
		{args: []string{"exec", "host-a", "--"}, wantErr: "exec takes a namespace and a command"},
		{args: []string{"-name", "../etc", "up"}, wantErr: "invalid lab name"},
		{args: []string{"-failback-after", "-1s", "up"}, wantErr: "must be positive"},
		{args: []string{"-nats-per-az", "0", "up"}, wantErr: "want 1 to 4"},
		{args: []string{"-nats-per-az", "5", "up"}, wantErr: "want 1 to 4"},
		{args: []string{"-nats", "c=2", "up"}, wantErr: `no AZ "c"`},
		{args: []string{"-nats", "a=0", "up"}, wantErr: "want 1 to 4"},
		{args: []string{"-nats", "a2", "up"}, wantErr: "want <az>=<count>"},
		{args: []string{"-nats", "a=x", "up"}, wantErr: "want <az>=<count>"},
		{args: []string{"-nats", "a=2,a=1", "up"}, wantErr: "given twice"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Fatalf("parsed %+v", o)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	running := lab.AgentProc{State: lab.ProcRunning, Pid: 10}
	stopped := lab.AgentProc{State: lab.ProcStopped}
	up := lab.NATState{Name: "a2", LinkUp: true, Agent: running}
	down := lab.NATState{Name: "a2", Agent: stopped}
	broken := up
	broken.EgressBroken = true
	crashed := up
	crashed.Agent = lab.AgentProc{State: lab.ProcRestarting}
	restarted := up
	restarted.Agent.Pid = 11
	tests := []struct {
		cmd           string
		before, after lab.NATState
		want          string
	}{
		{"kill", up, down, "nat-a2 killed: link down, agent stopped; it stays down until `revive a2`"},
		{"kill", down, down, "nat-a2 is already down; nothing changed"},
		{"revive", down, up, "nat-a2 revived: link up, agent started (pid 10)"},
		{"revive", up, up, "nat-a2 is already up; nothing changed"},
		{"revive", broken, up, "nat-a2 revived: egress restored"},
		{"revive", crashed, restarted, "nat-a2 revived: agent started (pid 11)"},
		{"break-egress", up, broken, "nat-a2's internet traffic is dropped, its VPC paths stay; `revive a2` or `heal` undoes it"},
		{"break-egress", broken, broken, "nat-a2's egress is already broken; nothing changed"},
	}
	for _, tt := range tests {
		if got := describe(tt.cmd, tt.before, tt.after); got != tt.want {
			t.Errorf("%s %+v -> %+v:\n got %q\nwant %q", tt.cmd, tt.before, tt.after, got, tt.want)
		}
	}
	for _, tt := range []struct {
		cmd           string
		before, after int
		want          string
	}{
		{"partition", 0, 6, "the NAT instances cannot reach each other over the VPC; `heal` undoes it"},
		{"partition", 6, 6, "the NAT instances are already partitioned; nothing changed"},
		{"heal", 0, 0, "no break-egress or partition in place; nothing changed"},
		{"heal", 3, 0, "healed: removed 3 fault rule(s) (killed NATs stay down until revive)"},
	} {
		if got := describeFaults(tt.cmd, tt.before, tt.after); got != tt.want {
			t.Errorf("%s %d -> %d: got %q, want %q", tt.cmd, tt.before, tt.after, got, tt.want)
		}
	}
}

// Commands against a lab that is not running say so in one line.
func TestNotUp(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-name", "lab", "status"}, "no lab is running (start one with headnat-lab up)"},
		{[]string{"-name", "nosuch-lab", "kill", "a"}, `no lab "nosuch-lab" is running (start one with headnat-lab -name nosuch-lab up)`},
		{[]string{"-name", "nosuch-lab", "moves"}, `no lab "nosuch-lab" is running (start one with headnat-lab -name nosuch-lab up)`},
		{[]string{"-name", "nosuch-lab", "exec", "host-a", "true"}, `no lab "nosuch-lab" is running (start one with headnat-lab -name nosuch-lab up)`},
		{[]string{"-name", "nosuch-lab", "admin", "curl", "http://198.18.10.2/"}, `no lab "nosuch-lab" is running (start one with headnat-lab -name nosuch-lab up)`},
	} {
		o, err := parseFlags(tt.args, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if o.Name == "lab" {
			if _, err := os.Stat(socketPath(o.dir())); err == nil {
				continue // a lab runs on this machine
			}
		}
		var got error
		switch o.Command {
		case "status":
			got = status(context.Background(), o)
		case "moves":
			got = moves(context.Background(), o)
		case "exec":
			got = execIn(o, o.Args[0], o.Args[1:])
		case "admin":
			got = execIn(o, lab.AdminHostname, o.Args)
		default:
			got = control(context.Background(), o)
		}
		if got == nil || got.Error() != tt.want {
			t.Errorf("%v: %v, want %q", tt.args, got, tt.want)
		}
	}
}

// The control commands against a lab hosted in this process, as `up` hosts it: what each
// prints, what it changes, exec's exit status, and the not-running message after the end.
func TestControlCommands(t *testing.T) {
	netns.RequireRoot(t)
	name := fmt.Sprintf("cmdtest%d", os.Getpid())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o, err := parseFlags([]string{"-name", name, "-failback-after", "5s", "-nats", "a=2", "-no-tailnet", "supervise"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- supervise(ctx, o, slog.New(slog.DiscardHandler)) }()
	stopped := false
	defer func() {
		if stopped {
			return
		}
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("lab did not shut down")
		}
	}()
	ok, err := lab.Poll(ctx, 3*time.Minute, 300*time.Millisecond, func() bool {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("supervise ended: %v", err)
		default:
		}
		_, err := fetchStatus(ctx, o.dir())
		return err == nil
	})
	if err != nil || !ok {
		t.Fatalf("lab not up: %v", err)
	}

	cli := func(args ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		o, err := parseFlags(append([]string{"-name", name}, args...), &out, &out)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		o.stdin = strings.NewReader("")
		err = run(ctx, o, slog.New(slog.DiscardHandler))
		return out.String(), err
	}
	want := func(args ...string) func(...string) {
		out, err := cli(args...)
		return func(subs ...string) {
			t.Helper()
			if err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			for _, s := range subs {
				if !strings.Contains(out, s) {
					t.Fatalf("%v: output lacks %q:\n%s", args, s, out)
				}
			}
		}
	}
	fails := func(sub string, args ...string) {
		t.Helper()
		out, err := cli(args...)
		if err == nil || !strings.Contains(err.Error(), sub) {
			t.Fatalf("%v: err %v, want it to contain %q\n%s", args, err, sub, out)
		}
	}
	tableTarget := func(home string) string {
		st, err := fetchStatus(ctx, o.dir())
		if err != nil {
			return ""
		}
		for _, tv := range st.Tables {
			if tv.Home == home {
				return tv.Target
			}
		}
		return ""
	}

	want("status")("nat-a ", "nat-a2 ", "nat-b ", "host-a", "198.18.10.2", "host-b", "198.18.11.2", lab.EchoURL(),
		"headnat-lab -name "+name+" exec <", "via nat-a (the echo server sees 203.0.113.10)")
	want("exec", "host-a", "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")("198.18.10.2/24")
	want("exec", "nat-a2", "ip", "-4", "-o", "addr", "show", "dev", "eth0")("198.18.0.11/24")
	if _, err := cli("exec", "host-b", "--", "sh", "-c", "exit 3"); !errors.Is(err, exitCode(3)) {
		t.Fatalf("exec exit 3: %v, want exit code 3 passed through", err)
	}
	fails(`no namespace "host-c"`, "exec", "host-c", "--", "true")
	fails("runs without a tailnet", "admin", "curl", "http://198.18.10.2/")

	want("kill", "a")("nat-a killed: link down, agent stopped")
	want("kill", "a")("nat-a is already down; nothing changed")
	fails("no running agent", "crash", "a")
	if ok, _ := lab.Poll(ctx, 30*time.Second, 200*time.Millisecond, func() bool { return tableTarget("a") == "a2" }); !ok {
		t.Fatalf("private-a did not move to nat-a2 after kill a: targets %q", tableTarget("a"))
	}
	want("revive", "a")("nat-a revived: link up, agent started (pid ")
	want("revive", "nat-a")("nat-a is already up; nothing changed")
	want("break-egress", "a2")("nat-a2's internet traffic is dropped")
	want("break-egress", "a2")("nat-a2's egress is already broken; nothing changed")
	want("revive", "a2")("nat-a2 revived: egress restored")
	fails(`no NAT instance "c"`, "kill", "c")

	want("crash", "b")("nat-b's agent (pid ", "SIGKILLed")
	if ok, _ := lab.Poll(ctx, 20*time.Second, 200*time.Millisecond, func() bool {
		st, err := fetchStatus(ctx, o.dir())
		return err == nil && agentOf(st.Agents, "b").Agent.Restarts == 1 && agentOf(st.Agents, "b").Pid != 0
	}); !ok {
		t.Fatal("nat-b's agent not restarted after crash b")
	}
	want("status")("restarts: 1")

	want("partition")("cannot reach each other")
	want("partition")("already partitioned; nothing changed")
	want("heal")("healed: removed 6 fault rule(s)")
	want("heal")("nothing changed")
	want("moves")("route moves (simulator), all ", "private-a -> nat-a2")

	// The instance lifecycle, with the agents completing the hooks.
	want("spot", "b", "-delay", "10m")("nat-b's IMDS serves a spot interruption notice (action terminate, time ", "in 10m0s")
	want("rebalance", "b")("nat-b's IMDS serves a rebalance recommendation (noticeTime ")
	want("launch", "b")("nat-b2 launched in us-east-1b: instance i-", "198.18.1.11, EIP 203.0.113.21; Pending:Wait")
	want("status")("nat-b2 198.18.1.11")
	want("terminate", "a2", "-timeout", "1m")("nat-a2: its terminate lifecycle action (headnat-drain) finished; the instance is terminated")
	want("status")("terminated")
	// A new agent cannot pass its egress checks (rise 3, every 500ms) within 500ms.
	out, err := cli("refresh", "-timeout", "500ms")
	if err == nil || !strings.Contains(err.Error(), "not InService within 500ms") || !strings.Contains(out, "launching a replacement of nat-a in AZ a") ||
		!strings.Contains(out, "launched") {
		t.Fatalf("refresh: %v\n%s", err, out)
	}
	fails("no AZ \"c\"", "launch", "c")

	cancel()
	stopped = true
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("supervise: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("lab did not shut down")
	}
	if _, err := os.Stat(o.dir()); !os.IsNotExist(err) {
		t.Fatalf("lab directory left behind: %v", err)
	}
	ctx = context.Background()
	fails(fmt.Sprintf("no lab %q is running (start one with headnat-lab -name %s up)", name, name), "status")
}

// agentOf picks a NAT's view from a status.
func agentOf(agents []lab.AgentView, nat string) lab.AgentView {
	for _, a := range agents {
		if a.Site == nat {
			return a
		}
	}
	return lab.AgentView{}
}

// The status names a shell on a NAT over the tailnet (tailscale SSH from the admin's node).
func TestStatusShowsSSHToANAT(t *testing.T) {
	var b bytes.Buffer
	lab.WriteStatus(&b, lab.Status{Name: "x", Tailnet: &lab.TailnetView{Headscale: lab.HeadscaleURL(), Primary: "b",
		Nodes: []lab.TailnetNode{{Name: "a", IP: "100.64.0.2"}, {Name: "b", IP: "100.64.0.3"}, {Name: lab.AdminHostname, IP: "100.64.0.1"}}}})
	if want := "a shell on nat-a: headnat-lab -name x exec admin -- ssh root@100.64.0.2"; !strings.Contains(b.String(), want) {
		t.Errorf("status lacks %q:\n%s", want, b.String())
	}
	b.Reset()
	lab.WriteStatus(&b, lab.Status{Name: "x", Tailnet: &lab.TailnetView{Headscale: lab.HeadscaleURL(), Error: "connection refused"}})
	if strings.Contains(b.String(), "ssh") {
		t.Errorf("status without tailnet nodes names ssh:\n%s", b.String())
	}
}

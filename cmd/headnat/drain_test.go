package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/api"
	"github.com/headnat/headnat/agent/control"
)

// fakeAgent serves a fake agent holding rtb-1 and rtb-2 on a control socket until the test ends.
func fakeAgent(t *testing.T, peers ...api.PeerStatus) (*control.Fake, string) {
	t.Helper()
	f := control.NewFake(api.Status{
		Self:  api.Healthz{Instance: "i-0abc", AZ: "us-east-1a", Healthy: true, Tables: []string{"rtb-1", "rtb-2"}},
		Peers: peers,
	})
	path := filepath.Join(t.TempDir(), "c.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- control.New(f, nil).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control server: %v", err)
		}
	})
	return f, path
}

var healthyPeer = api.PeerStatus{ID: "i-peer", AZ: "us-east-1b", Healthy: true}

func TestDrainWaitsUntilPeersTakeTheTables(t *testing.T) {
	f, sock := fakeAgent(t, healthyPeer)
	f.HandOverOnStatus(1)
	var out bytes.Buffer
	c := drainCmd{socket: sock, reason: "maintenance", wait: true, timeout: 10 * time.Second, poll: 10 * time.Millisecond}
	if err := c.run(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	want := "draining i-0abc (operator: maintenance); waiting for peers to take rtb-1, rtb-2\n" +
		"waiting for peers to take rtb-2\n" +
		"drained: no route table targets i-0abc; it keeps forwarding until stopped; `headnat undrain` puts it back in service\n"
	if out.String() != want {
		t.Fatalf("output:\n%s\nwant:\n%s", out.String(), want)
	}
	if st := f.Status(); st.Self.Lifecycle != api.LifecycleDrained || st.Self.DrainReason != "operator: maintenance" {
		t.Fatalf("agent after drain: %+v", st.Self)
	}
}

func TestDrainTimesOut(t *testing.T) {
	_, sock := fakeAgent(t, api.PeerStatus{ID: "i-peer", AZ: "us-east-1b", LastError: "i/o timeout"})
	c := drainCmd{socket: sock, wait: true, timeout: 200 * time.Millisecond, poll: 10 * time.Millisecond}
	var out bytes.Buffer
	err := c.run(context.Background(), &out)
	want := "timed out after 200ms: i-0abc still serves rtb-1, rtb-2 (no healthy peer can take them); it stays draining: `headnat status` shows why, `headnat undrain` puts it back in service"
	if err == nil || err.Error() != want {
		t.Fatalf("err %v\nwant %s", err, want)
	}
	// Through main: exit 1 and one line on stderr.
	code, _, stderr := run(t, "drain", "--socket", sock, "--timeout", "600ms")
	if code != 1 || !strings.HasPrefix(stderr, "headnat drain: timed out after 600ms: i-0abc still serves rtb-1, rtb-2") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestDrainStopsWaitingWhenUndrained(t *testing.T) {
	f, sock := fakeAgent(t, healthyPeer)
	c := drainCmd{socket: sock, wait: true, timeout: 10 * time.Second, poll: 10 * time.Millisecond}
	errc := make(chan error, 1)
	go func() { errc <- c.run(context.Background(), &bytes.Buffer{}) }()
	for d, _ := f.Calls(); d == 0; d, _ = f.Calls() {
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := f.Undrain(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "i-0abc is no longer draining (in-service): was it undrained?") {
		t.Fatalf("drain wait after an undrain: %v", err)
	}
}

func TestDrainAndUndrainCommands(t *testing.T) {
	f, sock := fakeAgent(t, healthyPeer)
	code, out, stderr := run(t, "drain", "--socket", sock, "--reason", "kernel upgrade", "--no-wait")
	if code != 0 || out != "draining i-0abc (operator: kernel upgrade); peers are taking rtb-1, rtb-2 (`headnat status` shows when they have)\n" {
		t.Fatalf("drain --no-wait: exit %d, out %q, stderr %q", code, out, stderr)
	}
	f.HandOver(-1)
	code, out, _ = run(t, "drain", "--socket", sock)
	if code != 0 || out != "i-0abc is already drained (operator: kernel upgrade)\n"+
		"drained: no route table targets i-0abc; it keeps forwarding until stopped; `headnat undrain` puts it back in service\n" {
		t.Fatalf("second drain: exit %d, out %q", code, out)
	}
	code, out, _ = run(t, "undrain", "--socket", sock)
	if code != 0 || out != "undrained i-0abc (was operator: kernel upgrade): in service again; its route tables come back as for any recovered instance\n" {
		t.Fatalf("undrain: exit %d, out %q", code, out)
	}
	code, _, stderr = run(t, "undrain", "--socket", sock)
	if code != 1 || stderr != "headnat undrain: not draining: the instance is in service\n" {
		t.Fatalf("undrain in service: exit %d, stderr %q", code, stderr)
	}
	f.StartDrain("spot-interruption: stop at 2026-01-01T00:02:00Z")
	code, _, stderr = run(t, "undrain", "--socket", sock)
	if code != 1 || !strings.Contains(stderr, "headnat undrain: cannot undrain: EC2 is reclaiming this spot instance (spot-interruption: stop at") {
		t.Fatalf("undrain of a spot drain: exit %d, stderr %q", code, stderr)
	}
	// The tables went to peers in the operator's drain: the spot drain holds nothing.
	code, out, _ = run(t, "drain", "--socket", sock, "--no-wait")
	if code != 0 || out != "i-0abc is already drained (spot-interruption: stop at 2026-01-01T00:02:00Z)\n"+
		"drained: no route table targets i-0abc; it keeps forwarding until stopped\n" {
		t.Fatalf("drain during a spot drain (must not suggest undrain): exit %d, out %q", code, out)
	}
}

func TestDrainCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"drain", "--socket", missing}, 1, "headnat drain: is the agent running? no socket at " + missing},
		{[]string{"undrain", "--socket", missing}, 1, "headnat undrain: is the agent running? no socket at " + missing},
		{[]string{"status", "--socket", missing}, 1, "headnat status: is the agent running? no socket at " + missing},
		{[]string{"drain", "--wait", "--no-wait"}, 2, "--wait and --no-wait together"},
		{[]string{"drain", "--no-wait", "--timeout", "1m"}, 2, "--timeout is only for waiting"},
		{[]string{"drain", "--timeout", "0s"}, 2, "--timeout 0s: must be positive"},
		{[]string{"drain", "--reason", "a\nb"}, 2, "--reason: reason \"a\\nb\": control characters"},
		{[]string{"drain", "now"}, 2, "unexpected arguments: [now]"},
		{[]string{"drain", "--socket", ""}, 2, "--socket: empty path"},
		{[]string{"undrain", "now"}, 2, "unexpected arguments: [now]"},
	} {
		code, _, stderr := run(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.stderr) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%q: exit %d, stderr %q; want %d, %q on one line", tt.args, code, stderr, tt.code, tt.stderr)
		}
	}
}

func TestParseDrainFlags(t *testing.T) {
	c, err := parseDrain(nil, &bytes.Buffer{})
	if err != nil || c.socket != "/run/headnat/control.sock" || !c.wait || c.timeout != 2*time.Minute || c.poll != 500*time.Millisecond || c.reason != "" {
		t.Fatalf("defaults: %+v, %v", c, err)
	}
	c, err = parseDrain([]string{"--socket", "/tmp/x.sock", "--reason", "maintenance", "--wait=false"}, &bytes.Buffer{})
	if err != nil || c.socket != "/tmp/x.sock" || c.wait || c.reason != "maintenance" {
		t.Fatalf("parsed %+v, %v", c, err)
	}
	c, err = parseDrain([]string{"--no-wait", "--wait=false"}, &bytes.Buffer{})
	if err != nil || c.wait {
		t.Fatalf("--no-wait --wait=false: %+v, %v", c, err)
	}
}

func TestStatusOverTheSocket(t *testing.T) {
	f, sock := fakeAgent(t, healthyPeer)
	f.StartDrain("operator: maintenance")
	code, out, stderr := run(t, "status", "--socket", sock, "--addr", "127.0.0.1:1")
	if code != 0 || !strings.Contains(out, "draining (operator: maintenance)") || !strings.Contains(out, "i-peer") {
		t.Fatalf("status --socket: exit %d, stderr %q, out:\n%s", code, stderr, out)
	}
	code, out, _ = run(t, "status", "--socket", sock, "--json")
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Self.Instance != "i-0abc" || st.Self.DrainReason != "operator: maintenance" {
		t.Fatalf("status --socket --json: exit %d, %v, %q", code, err, out)
	}
}

func TestHelpListsEveryCommandOnOneLine(t *testing.T) {
	code, out, _ := run(t, "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for name, cmd := range commands {
		if n := strings.Count(out, "\n  "+name+" "); n != 1 {
			t.Errorf("help lists %q %d times:\n%s", name, n, out)
		}
		if !strings.Contains(out, cmd.summary+"\n") || strings.Contains(cmd.summary, "\n") {
			t.Errorf("help lacks the one-line summary of %q", name)
		}
	}
	for _, name := range []string{"drain", "undrain", "status"} {
		if _, ok := commands[name]; !ok {
			t.Errorf("no %s command", name)
		}
		if code, _, _ := run(t, name, "--help"); code != 0 {
			t.Errorf("%s --help: exit %d", name, code)
		}
	}
}

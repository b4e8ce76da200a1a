package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/headnat/headnat/agent/api"
)

func testStatus() api.Status {
	return api.Status{
		Self:   api.Healthz{Instance: "i-self", AZ: "us-east-1a", Healthy: true, Tables: []string{"rtb-1", "rtb-2"}},
		Peers:  []api.PeerStatus{{ID: "i-peer", AZ: "us-east-1b", Healthy: true}},
		Config: api.ConfigSummary{Cluster: "test", HeadscaleURL: "https://user:secret@hs.example/?key=x"},
	}
}

// serve runs a control server for a on a socket in dir until the test ends.
func serve(t *testing.T, a Agent, path string) {
	t.Helper()
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- New(a, nil).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
}

// raw sends body to the server on path and returns the status code and the error message.
func raw(t *testing.T, sock, method, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequest(method, "http://x"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestListenMakesRootOnlySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "c.sock")
	serve(t, NewFake(testStatus()), path)
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if dir.Mode().Perm() != 0o700 {
		t.Errorf("created directory has mode %v, want 0700", dir.Mode().Perm())
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a 0600 socket", fi.Mode())
	}
}

func TestListenLeavesALiveSocketAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	serve(t, NewFake(testStatus()), path)
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "another agent is listening on "+path) {
		t.Fatalf("second Listen: %v, want another agent is listening", err)
	}
	if st, err := Status(context.Background(), path); err != nil || st.Self.Instance != "i-self" {
		t.Fatalf("first agent after a second Listen: %+v, %v", st.Self, err)
	}
}

func TestListenReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := Status(context.Background(), path); err == nil || !strings.Contains(err.Error(), "is the agent running? nothing listens on "+path) {
		t.Fatalf("status on a stale socket: %v", err)
	}
	serve(t, NewFake(testStatus()), path)
	if _, err := Status(context.Background(), path); err != nil {
		t.Fatalf("status after replacing the stale socket: %v", err)
	}
}

func TestListenKeepsAFileThatIsNotASocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	if err := os.WriteFile(path, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("Listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "mine" {
		t.Fatalf("the file was touched: %q, %v", b, err)
	}
}

func TestServeRemovesItsSocketOnExit(t *testing.T) {
	dir := t.TempDir()
	for _, replaced := range []bool{false, true} {
		path := filepath.Join(dir, fmt.Sprintf("c%v.sock", replaced))
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- New(NewFake(testStatus()), nil).Serve(ctx, ln) }()
		if _, err := Status(context.Background(), path); err != nil {
			t.Fatal(err)
		}
		if replaced {
			// Someone else's file now has the name: it must stay.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Serve: %v", err)
		}
		_, err = os.Lstat(path)
		if replaced && err != nil {
			t.Errorf("Serve removed a file that was not its socket: %v", err)
		}
		if !replaced && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("socket left behind after Serve: %v", err)
		}
	}
}

func TestDrainUndrainRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.sock")
	f := NewFake(testStatus())
	serve(t, f, path)

	res, err := Drain(ctx, path, "kernel upgrade")
	if err != nil {
		t.Fatal(err)
	}
	want := DrainResult{Instance: "i-self", Reason: "operator: kernel upgrade", Lifecycle: api.LifecycleDraining, Tables: []string{"rtb-1", "rtb-2"}}
	if res.Instance != want.Instance || res.Already || res.Reason != want.Reason || res.Lifecycle != want.Lifecycle || !slices.Equal(res.Tables, want.Tables) {
		t.Fatalf("drain: %+v, want %+v", res, want)
	}
	st, err := Status(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Self.Draining || st.Self.DrainReason != want.Reason || st.Config.HeadscaleURL != "https://hs.example/" {
		t.Fatalf("status after drain: self %+v, headscale %q", st.Self, st.Config.HeadscaleURL)
	}
	f.HandOver(1)
	res, err = Drain(ctx, path, "again")
	if err != nil || !res.Already || res.Reason != want.Reason || !slices.Equal(res.Tables, []string{"rtb-2"}) {
		t.Fatalf("second drain: %+v, %v; want already draining for the first reason, holding rtb-2", res, err)
	}

	un, err := Undrain(ctx, path)
	if err != nil || un.Reason != want.Reason || un.Lifecycle != api.LifecycleInService {
		t.Fatalf("undrain: %+v, %v", un, err)
	}
	_, err = Undrain(ctx, path)
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not draining") {
		t.Fatalf("undrain in service: %v, want refused: not draining", err)
	}
	if d, u := f.Calls(); d != 1 || u != 1 {
		t.Fatalf("agent saw %d drains and %d undrains, want 1 and 1", d, u)
	}
}

func TestUndrainRefusesADrainNotStartedByAnOperator(t *testing.T) {
	for _, tc := range []struct{ reason, want string }{
		{"spot-interruption: stop at 2026-01-01T00:02:00Z", "EC2 is reclaiming this spot instance"},
		{"terminate-lifecycle-action: scale-in", "the Auto Scaling group is terminating this instance"},
		{"sigterm", "the agent is shutting down"},
	} {
		path := filepath.Join(t.TempDir(), "c.sock")
		f := NewFake(testStatus())
		f.StartDrain(tc.reason)
		serve(t, f, path)
		_, err := Undrain(context.Background(), path)
		var e *Error
		if !errors.As(err, &e) || e.Code != http.StatusConflict || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("undrain of %q: %v, want a 409 saying %q and the reason", tc.reason, err, tc.want)
		}
		if st := f.Status(); !st.Self.Draining || st.Self.DrainReason != tc.reason {
			t.Errorf("refused undrain changed the state: %+v", st.Self)
		}
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	f := NewFake(testStatus())
	serve(t, f, path)
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", PathDrain, `{"reasn":"x"}`, 400, `bad request body: unknown field \"reasn\"`},
		{"POST", PathDrain, `{"reason":1}`, 400, "bad request body: cannot unmarshal number"},
		{"POST", PathDrain, `{"reason":`, 400, "bad request body: unexpected EOF"},
		{"POST", PathDrain, `{} {}`, 400, "more than one JSON value"},
		{"POST", PathDrain, `{"reason":"a\nb"}`, 400, "control characters"},
		{"POST", PathDrain, `{"reason":"` + strings.Repeat("x", MaxNoteLen+1) + `"}`, 400, "at most 200 allowed"},
		{"POST", PathDrain, `{"reason":"` + strings.Repeat("x", 5000) + `"}`, 400, "request body over 4096 bytes"},
		{"POST", PathUndrain, `{"force":true}`, 400, `unknown field \"force\"`},
		{"GET", PathDrain, ``, 405, "/drain takes POST, not GET"},
		{"POST", api.PathStatus, ``, 405, "/status takes GET"},
		{"GET", "/nope", ``, 404, "no endpoint /nope"},
	} {
		code, body := raw(t, path, tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, `{"error":"`) || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %.40q: %d %s; want %d with %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	if d, u := f.Calls(); d != 0 || u != 0 {
		t.Errorf("bad requests reached the agent: %d drains, %d undrains", d, u)
	}
	if st := f.Status(); st.Self.Draining || st.Self.Lifecycle != api.LifecycleInService {
		t.Errorf("bad requests changed the state: %+v", st.Self)
	}
	// An empty body is no note.
	if code, body := raw(t, path, "POST", PathDrain, ""); code != 200 || !strings.Contains(body, `"reason":"operator"`) {
		t.Errorf("drain with an empty body: %d %s", code, body)
	}
}

func TestAgentErrorsMapToStatusCodes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.sock")
	f := NewFake(testStatus())
	serve(t, f, path)
	for _, tc := range []struct {
		err  error
		code int
		is   error
	}{
		{Refused("drain refused: launching"), 409, ErrRefused},
		{Invalid("bad note"), 400, ErrInvalid},
		{fmt.Errorf("write route: %w", errors.New("throttled")), 500, nil},
	} {
		f.FailWith(tc.err)
		_, err := Drain(context.Background(), path, "")
		var e *Error
		if !errors.As(err, &e) || e.Code != tc.code || e.Message != tc.err.Error() || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("agent error %v: client got %#v", tc.err, err)
		}
	}
}

func TestClientSaysWhatToDo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.sock")
	_, err := Status(context.Background(), path)
	if err == nil || err.Error() != "is the agent running? no socket at "+path || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no socket: %v", err)
	}
}

func TestPeerAllowed(t *testing.T) {
	for _, tc := range []struct {
		uid  uint32
		self int
		ok   bool
	}{{0, 0, true}, {0, 1000, true}, {1000, 1000, true}, {1000, 0, false}, {65534, 1000, false}, {4294967295, -1, false}} {
		if got := peerAllowed(tc.uid, tc.self); got != tc.ok {
			t.Errorf("peerAllowed(%d, self %d) = %v", tc.uid, tc.self, got)
		}
	}
}

const childEnv = "HEADNAT_CONTROL_TEST_SOCKET"

// A process of another user is refused: by the socket's mode, and when the mode is opened up,
// by its SO_PEERCRED uid. The test runs its own binary as nobody.
func TestNonRootPeerIsRefused(t *testing.T) {
	if sock := os.Getenv(childEnv); sock != "" {
		_, err := Drain(context.Background(), sock, "from nobody")
		fmt.Printf("child uid %d: %v\n", os.Getuid(), err)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to run a child process as another user")
	}
	// t.TempDir is 0700; nobody must reach the binary and the socket.
	dir, err := os.MkdirTemp("", "headnat-control-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(dir, "control.test")
	if err := os.WriteFile(child, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "c.sock")
	f := NewFake(testStatus())
	serve(t, f, path)
	runChild := func() string {
		cmd := exec.Command(child, "-test.run=^TestNonRootPeerIsRefused$")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return string(out)
	}
	if out := runChild(); !strings.Contains(out, "child uid 65534: permission denied: run as root ("+path+")") {
		t.Errorf("nobody on a 0600 socket:\n%s", out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out := runChild(); !strings.Contains(out, "child uid 65534: permission denied: run as root (peer uid 65534)") {
		t.Errorf("nobody on a 0666 socket:\n%s", out)
	}
	if d, _ := f.Calls(); d != 0 || f.Status().Self.Draining {
		t.Errorf("a refused peer drained the agent")
	}
}

func TestNotOperatorDrainAndNotes(t *testing.T) {
	err := NotOperatorDrain("target-lifecycle-state: Terminated")
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "target lifecycle state") {
		t.Errorf("NotOperatorDrain: %v", err)
	}
	if got := OperatorReason(""); got != "operator" {
		t.Errorf("OperatorReason(\"\") = %q", got)
	}
	if Cause(OperatorReason("x: y")) != api.DrainOperator {
		t.Errorf("Cause of an operator reason with a colon in the note")
	}
	for note, ok := range map[string]bool{"": true, "kernel upgrade – ticket #42": true, "tab\there": false, "\x7f": false, string([]byte{0xff}): false} {
		if err := CheckNote(note); (err == nil) != ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("CheckNote(%q) = %v", note, err)
		}
	}
}

package netns

import (
	"os"
	"os/exec"
	"testing"
)

// RequireRoot skips the test, saying why, unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create network namespaces (run `sudo make test`)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: iproute2 (`ip`) not installed; `make deps` installs it")
	}
}

// New creates a namespace for the test and removes it, with everything started in it, when the
// test ends, whether it passed, failed or panicked.
func New(t testing.TB, role string) *NS {
	t.Helper()
	RequireRoot(t)
	n, err := Add(role)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return n
}

// MustRun runs a command in the namespace and fails the test on error.
func (n *NS) MustRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// MustVeth links a and b with a veth pair, failing the test on error.
func MustVeth(t testing.TB, a *NS, aIf string, b *NS, bIf string) {
	t.Helper()
	if err := Veth(a, aIf, b, bIf); err != nil {
		t.Fatal(err)
	}
}

// MustStart starts a background process in the namespace; it is killed when the test ends.
func (n *NS) MustStart(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if err := n.Start(cmd); err != nil {
		t.Fatal(err)
	}
}

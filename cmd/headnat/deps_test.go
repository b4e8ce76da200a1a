package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// forbidden are path fragments of CDK's and jsii's Go packages: the agent's binary, built for
// the NAT instance (linux/arm64), links none of them.
var forbidden = []string{"aws-cdk-go", "jsii", "constructs-go", "cdklabs"}

// forbiddenIn returns the lines that name a forbidden package.
func forbiddenIn(lines []string) []string {
	var out []string
	for _, l := range lines {
		for _, f := range forbidden {
			if strings.Contains(l, f) {
				out = append(out, l)
				break
			}
		}
	}
	return out
}

// goTool runs the go tool for linux/arm64 without cgo, in this package's directory.
func goTool(t *testing.T, args ...string) []string {
	t.Helper()
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go tool: cannot check what cmd/headnat links")
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func TestForbiddenIn(t *testing.T) {
	got := forbiddenIn([]string{"tailscale.com/ipn", "github.com/aws/aws-cdk-go/awscdk/v2",
		"\tdep\tgithub.com/aws/jsii-runtime-go\tv1.142.0\th1:x", "github.com/aws/aws-sdk-go-v2/service/ec2"})
	if len(got) != 2 {
		t.Fatalf("forbidden %q: want the CDK and jsii lines only", got)
	}
}

// GIVEN cmd/headnat for linux/arm64 WHEN its imports are listed THEN none is CDK's or jsii's.
func TestLinksNoCDK(t *testing.T) {
	deps := goTool(t, "list", "-deps", "-f", "{{.ImportPath}}", ".")
	if bad := forbiddenIn(deps); len(bad) > 0 {
		t.Errorf("cmd/headnat imports %q", bad)
	}
	// The list is the real one: the agent and its linux-only data plane are in it.
	for _, want := range []string{"github.com/headnat/headnat/agent", "github.com/vishvananda/netlink"} {
		if !contains(deps, want) {
			t.Errorf("go list -deps has no %s: the check looked at the wrong thing", want)
		}
	}
}

// GIVEN cmd/headnat built for linux/arm64 WHEN its embedded module list is read THEN no module
// is CDK's or jsii's.
func TestBinaryLinksNoCDK(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "headnat")
	goTool(t, "build", "-o", bin, "-ldflags=-s -w", ".")
	info := goTool(t, "version", "-m", bin)
	if bad := forbiddenIn(info); len(bad) > 0 {
		t.Errorf("the linux/arm64 binary links %q", bad)
	}
	// A call of reflect's MethodByName (text/template's, say) makes the linker keep every
	// exported method of every type: the SDK's whole EC2 client came back, the binary grew
	// from 27 to 79 MB, and the agent's resident memory with it (docs/BENCHMARKS.md).
	if fi, err := os.Stat(bin); err != nil || fi.Size() > maxBinaryBytes {
		t.Errorf("the stripped linux/arm64 binary is %d bytes (err %v), over %d: what pulled in so much?", fi.Size(), err, maxBinaryBytes)
	}
	text := strings.Join(info, "\n")
	for _, want := range []string{"GOOS=linux", "GOARCH=arm64", "\tdep\ttailscale.com\t"} {
		if !strings.Contains(text, want) {
			t.Errorf("go version -m has no %q: the check looked at the wrong binary\n%s", want, text)
		}
	}
}

// maxBinaryBytes bounds the stripped linux/arm64 binary (about 17 MB today).
const maxBinaryBytes = 30 << 20

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

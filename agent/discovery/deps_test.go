package discovery

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The CDK module runs Resolve: this package must not pull in tailscale (or package agent,
// which does), or the CDK module would need it too.
func TestImportsNoTailscale(t *testing.T) {
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(bin); err != nil {
		if bin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go tool")
		}
	}
	out, err := exec.Command(bin, "list", "-deps", "-f", "{{.ImportPath}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	var sawCloud bool
	for _, d := range deps {
		if strings.HasPrefix(d, "tailscale.com") || d == "github.com/headnat/headnat/agent" {
			t.Errorf("agent/discovery depends on %s", d)
		}
		sawCloud = sawCloud || d == "github.com/headnat/headnat/agent/cloud"
	}
	if !sawCloud {
		t.Errorf("go list -deps %v has no agent/cloud: the check looked at the wrong package", deps)
	}
}

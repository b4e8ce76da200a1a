package ami

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/test/lab"
)

// unitValues reads a unit file's Key=value lines (a key may repeat; values split on spaces).
func unitValues(t *testing.T, name string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repo, "ami", "files", name))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), "="); ok && !strings.HasPrefix(l, "#") {
			m[k] = append(m[k], strings.Fields(v)...)
		}
	}
	return m
}

// The units agree with the agent's defaults: tailscaled where the agent looks for it, and the
// agent allowed to write where it writes.
func TestUnitsMatchAgentDefaults(t *testing.T) {
	def := config.Default()
	ts := unitValues(t, "tailscaled.service")
	want := []string{
		"--socket=" + strings.Replace(def.Tailnet.Socket, "/var/run/", "/run/", 1),
		"--tun=" + def.Tailnet.Interface,
		fmt.Sprintf("--port=%d", def.Tailnet.UDPPort),
	}
	for _, w := range want {
		if !slices.Contains(ts["ExecStart"], w) {
			t.Errorf("tailscaled.service ExecStart lacks %s: %v", w, ts["ExecStart"])
		}
	}

	hn := unitValues(t, "headnat.service")
	rw := hn["ReadWritePaths"]
	runDir := "/run/" + strings.Join(hn["RuntimeDirectory"], "")
	for _, p := range []string{def.StatePath, def.ControlSocket} {
		if filepath.Dir(p) != runDir {
			t.Errorf("%s is outside the unit's RuntimeDirectory %s", p, runDir)
		}
	}
	for _, p := range []string{runDir, "/run/xtables.lock", "/proc/sys/net"} {
		if !slices.Contains(rw, p) {
			t.Errorf("headnat.service ReadWritePaths lacks %s: %v", p, rw)
		}
	}
	if hn["RuntimeDirectoryPreserve"][0] != "yes" {
		t.Error("headnat.service must keep /run/headnat across restarts (the data plane's state)")
	}
	if got := hn["CapabilityBoundingSet"]; !slices.Equal(got, []string{"CAP_NET_ADMIN", "CAP_NET_RAW"}) {
		t.Errorf("headnat.service CapabilityBoundingSet = %v", got)
	}
	if got := hn["StartLimitIntervalSec"]; len(got) != 1 || got[0] != "0" {
		t.Error("headnat.service must never stop restarting the agent (StartLimitIntervalSec=0)")
	}
	// The lab runs its agents with the unit's environment, so its figures are the AMI's.
	if got := hn["Environment"]; !slices.Equal(got, lab.UnitEnv) {
		t.Errorf("headnat.service Environment = %v, the lab's agents run with lab.UnitEnv %v", got, lab.UnitEnv)
	}
	// The tmpfiles drop-in makes the lock file that the unit may write.
	b, err := os.ReadFile(filepath.Join(repo, "ami", "files", "headnat-tmpfiles.conf"))
	if err != nil || !strings.Contains(string(b), "f /run/xtables.lock ") {
		t.Errorf("headnat-tmpfiles.conf does not create /run/xtables.lock: %v", err)
	}
}

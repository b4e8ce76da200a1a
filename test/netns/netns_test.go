package netns

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	Sweep()
	os.Exit(m.Run())
}

func TestVethConnectsTwoNamespaces(t *testing.T) {
	a, b := New(t, "a"), New(t, "b")
	if a.Name == b.Name {
		t.Fatalf("names not unique: %s", a.Name)
	}
	MustVeth(t, a, "eth0", b, "eth0")
	a.MustRun(t, "ip", "addr", "add", "198.18.200.1/30", "dev", "eth0")
	b.MustRun(t, "ip", "addr", "add", "198.18.200.2/30", "dev", "eth0")
	a.MustRun(t, "ping", "-c1", "-W2", "198.18.200.2")
	if _, err := a.Run("ping", "-c1", "-W1", "198.18.200.9"); err == nil {
		t.Fatal("ping to an address nobody holds succeeded")
	}
}

func TestDeleteKillsProcessesAndRemovesNamespace(t *testing.T) {
	RequireRoot(t)
	n, err := Add("del")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "300")
	if err := n.Start(cmd); err != nil {
		_ = n.Delete()
		t.Fatal(err)
	}
	if err := n.Delete(); err != nil {
		t.Fatal(err)
	}
	if cmd.ProcessState == nil || cmd.ProcessState.Success() {
		t.Fatalf("process not killed: %v", cmd.ProcessState)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), n.Name) {
		t.Fatalf("namespace %s still listed", n.Name)
	}
}

func TestSweepRemovesOrphans(t *testing.T) {
	RequireRoot(t)
	// pid 999999999 cannot be alive (pid_max is far lower).
	name := Prefix + "999999999-orphan-" + randHex(3)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	Sweep()
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), name) {
		t.Fatalf("orphan %s not swept", name)
	}
}

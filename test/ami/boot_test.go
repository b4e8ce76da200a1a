package ami

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/config"
	"github.com/headnat/headnat/test/lab"
)

// booted is the provisioned tree booted with systemd-nspawn in a NAT's network namespace: the
// AMI's systemd (Debian 13's) starts tailscaled and headnat with their units, hardening and all.
type booted struct {
	root   string
	cmd    *exec.Cmd
	log    *bytes.Buffer
	leader int // the container's PID 1, as this machine numbers it
	done   chan struct{}
}

// running reports whether systemd-nspawn still runs.
func (b *booted) running() bool {
	select {
	case <-b.done:
		return false
	default:
		return true
	}
}

// exec runs argv inside the container (its mount, pid and network namespaces).
func (b *booted) exec(ctx context.Context, argv ...string) (string, error) {
	args := append([]string{"--target", fmt.Sprint(b.leader), "--mount", "--uts", "--ipc", "--net", "--pid", "--"}, argv...)
	out, err := exec.CommandContext(ctx, "nsenter", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in the container: %s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// boot starts the tree's systemd in the network namespace nsName and waits until it has
// finished starting up. The container is powered off (or killed) when the test ends.
func boot(t *testing.T, root, nsName string) *booted {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	machine := "hn-boot-" + hex.EncodeToString(b)
	bt := &booted{root: root, log: &bytes.Buffer{}, done: make(chan struct{})}
	// --keep-unit and --register=no: this machine has no systemd of its own to ask for a scope.
	// CAP_NET_ADMIN: nspawn keeps it only for a network namespace of its own making. The TUN
	// device is tailscaled's.
	bt.cmd = exec.Command("systemd-nspawn", "--quiet", "--boot", "--directory", root, "--machine", machine,
		"--register=no", "--keep-unit", "--console=pipe", "--capability=CAP_NET_ADMIN", "--bind=/dev/net/tun", "--network-namespace-path=/run/netns/"+nsName)
	// /proc/sys/net writable in the container, as nspawn does for a network namespace of its
	// own: the unit's ProtectKernelTunables= and ReadWritePaths= decide from there.
	bt.cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network")
	bt.cmd.Stdout, bt.cmd.Stderr = bt.log, bt.log
	bt.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := bt.cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	done := bt.done
	go func() { _ = bt.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
			return
		default:
		}
		_ = bt.cmd.Process.Signal(syscall.SIGTERM) // nspawn: a clean poweroff of the container
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = bt.cmd.Process.Kill()
			<-done
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("container console:\n%s", tail(bt.log.String(), 6000))
		}
	})

	deadline := time.Now().Add(90 * time.Second)
	for bt.leader == 0 {
		bt.leader = containerInit(bt.cmd.Process.Pid)
		select {
		case <-done:
			t.Fatalf("systemd-nspawn exited: %s\n%s", bt.cmd.ProcessState, tail(bt.log.String(), 4000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the container's init did not start within 90s")
		}
	}
	var state string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		// is-system-running exits non-zero for "starting" and "degraded"; the text is what counts.
		out, _ := exec.CommandContext(ctx, "nsenter", "--target", fmt.Sprint(bt.leader), "--mount", "--pid", "--",
			"systemctl", "is-system-running").Output()
		cancel()
		state = strings.TrimSpace(string(out))
		if state == "running" || state == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container did not finish booting within 90s: %q", state)
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("container %s booted (%s)", machine, state)
	return bt
}

// containerInit finds the container's PID 1: the child of systemd-nspawn (pid) that is 1 in
// its own pid namespace; 0 if none runs yet.
func containerInit(nspawn int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawn, nspawn))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err != nil {
			continue
		}
		if st, err := procStatus(pid); err == nil && strings.HasSuffix(st["NSpid"], "\t1") {
			return pid
		}
	}
	return 0
}

// procStatus reads /proc/<pid>/status into its fields.
func procStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// agentPid is the host's pid of the container's `headnat agent`, by its unit's MainPID.
func (b *booted) agentPid(ctx context.Context) (int, error) {
	out, err := b.exec(ctx, "systemctl", "show", "--property=MainPID", "--value", "headnat.service")
	if err != nil {
		return 0, err
	}
	var inner int
	if _, err := fmt.Sscan(strings.TrimSpace(out), &inner); err != nil || inner == 0 {
		return 0, fmt.Errorf("headnat.service has no main process: %q", out)
	}
	// The same process in this machine's pid namespace: in the container's pid namespace, and
	// NSpid ends with the container's number.
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", b.leader))
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		if n, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err != nil || n != ns {
			continue
		}
		st, err := procStatus(pid)
		if err == nil && strings.HasSuffix(st["NSpid"], fmt.Sprintf("\t%d", inner)) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("container pid %d not found", inner)
}

// labEndpoints is the part of the lab agent's environment that points it at the lab: on EC2
// the region's endpoints and the instance profile's credentials play that role. The rest comes
// from the unit and the user data.
func labEndpoints(env []string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "AWS_"), strings.HasPrefix(k, "HEADNAT_AWS_"), strings.HasPrefix(k, "HEADNAT_EGRESS_"),
			k == "HEADNAT_LISTEN", k == "HEADNAT_PEER_PORT":
			out = append(out, kv)
		}
	}
	return out
}

// A new NAT instance boots the AMI (its provisioned tree, booted by the Debian 13 systemd it
// ships): the units start the agent under its hardening, the user data's configuration
// replaces the default, the agent completes the launch hook with the instance a NAT, its
// tailscaled joins the tailnet and an admin gets a shell through tailscale SSH; it forwards the
// private subnet's traffic when it takes a table, and a poweroff hands the table over before
// the agent exits.
func TestBootedImageServesAsNAT(t *testing.T) {
	requireTools(t, "systemd-nspawn", "nsenter")
	p := provision(t, false)
	root, err := filepath.EvalSymlinks(p.root)
	if err != nil {
		t.Fatal(err)
	}
	// provision's stand-in that kept the chroot from starting services; the image has none.
	if err := os.Remove(filepath.Join(root, "usr/sbin/policy-rc.d")); err != nil {
		t.Fatal(err)
	}

	l := lab.ForTest(t, lab.Options{FailbackAfter: 3 * time.Second, Tailnet: true}, lab.TestOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s, err := l.LaunchWith(ctx, "a", lab.LaunchOptions{NoAgent: true})
	if err != nil {
		t.Fatal(err)
	}
	if st := l.LifecycleState(s.Name); !strings.Contains(st, "Pending:Wait") {
		t.Fatalf("the new instance should wait on its launch hook, is %s", st)
	}

	dropIn := "[Service]\n"
	for _, kv := range labEndpoints(l.AgentEnv(s)) {
		dropIn += fmt.Sprintf("Environment=%q\n", kv)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/systemd/system/headnat.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/systemd/system/headnat.service.d/lab.conf"), dropIn, 0o644)
	// The lab's DERP relay (headscale's) speaks plain HTTP.
	if err := os.MkdirAll(filepath.Join(root, "etc/systemd/system/tailscaled.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/systemd/system/tailscaled.service.d/lab.conf"), "[Service]\nEnvironment=TS_DEBUG_USE_DERP_HTTP=1\n", 0o644)

	bt := boot(t, root, s.NAT.Name)
	t.Cleanup(func() {
		if t.Failed() && bt.running() {
			out, _ := bt.exec(context.Background(), "journalctl", "--no-pager", "-n", "80", "-u", "headnat.service")
			t.Logf("the container's headnat journal:\n%s", out)
		}
	})
	if out, err := bt.exec(ctx, "systemctl", "is-enabled", "headnat.service", "tailscaled.service"); err != nil {
		t.Fatalf("units not enabled: %v", err)
	} else if strings.Count(out, "enabled") != 2 {
		t.Fatalf("units not enabled: %s", out)
	}
	if out, _ := bt.exec(ctx, "systemctl", "is-active", "ssh.service"); strings.TrimSpace(out) == "active" {
		t.Error("sshd runs on the booted image")
	}

	// What cloud-init does with the CDK's user data (cdk/natfleet.AgentConfig's keys): write the
	// configuration, restart the agent.
	const failback = 4 * time.Second
	cmds, err := config.UserDataCommands(fmt.Sprintf("cluster: %q\nfailback_after: %s\ntailnet:\n  login_server: %q\n  auth_key_ssm_parameter: %q\n",
		lab.Cluster, failback, lab.TailnetLoginServer(), lab.TailnetAuthKeyParameter))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := bt.exec(ctx, "bash", "-c", strings.Join(cmds, "\n")); err != nil {
		t.Fatalf("user data: %v\n%s", err, out)
	}

	if err := l.WaitInService(ctx, s.Name, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	act, ok := l.LaunchAction(s.Name)
	if !ok || !act.Completed || act.Result != "CONTINUE" || act.TimedOut {
		t.Fatalf("the launch hook: %+v (found %v), want completed with CONTINUE by the agent", act, ok)
	}
	// In service, so the data plane is up: masquerade and the forward policy in the instance.
	rules, err := s.NAT.Run("iptables-save")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"headnat: masquerade", "headnat: no new connections into the VPC"} {
		if !strings.Contains(rules, want) {
			t.Errorf("the booted instance's iptables lack %q:\n%s", want, rules)
		}
	}
	if fwd, err := s.NAT.Run("sysctl", "-n", "net.ipv4.ip_forward"); err != nil || strings.TrimSpace(fwd) != "1" {
		t.Errorf("forwarding in the booted instance: %q %v", fwd, err)
	}

	st, err := l.AgentStatus(ctx, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Config.Cluster != lab.Cluster || time.Duration(st.Config.FailbackAfter) != failback {
		t.Errorf("the agent runs with cluster %q, failback_after %s; the user data said %q, %s",
			st.Config.Cluster, st.Config.FailbackAfter, lab.Cluster, failback)
	}

	// The unit's hardening holds on the running agent.
	pid, err := bt.agentPid(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := procStatus(pid)
	if err != nil {
		t.Fatal(err)
	}
	const netAdminRaw = "0000000000003000" // CAP_NET_ADMIN (12) and CAP_NET_RAW (13)
	for k, want := range map[string]string{"CapEff": netAdminRaw, "CapBnd": netAdminRaw, "NoNewPrivs": "1", "Seccomp": "2"} {
		if ps[k] != want {
			t.Errorf("the agent's %s = %q, want %q", k, ps[k], want)
		}
	}
	t.Logf("the booted agent: pid %d, VmHWM %s, VmRSS %s", pid, ps["VmHWM"], ps["VmRSS"])

	// An admin gets a root shell on the booted instance through the tailnet (tailscale SSH).
	if tn := st.Self.Tailnet; tn == nil || tn.Backend != "Running" || !tn.Approved || !tn.SSH {
		t.Errorf("the booted agent's tailnet: %+v", tn)
	}
	tip, err := l.TailnetIP(ctx, s.Name)
	if err != nil {
		t.Fatal(err)
	}
	want := "root\n" + Release + "\nactive"
	var out string
	var sshErr error
	ok, err = lab.Poll(ctx, time.Minute, time.Second, func() bool {
		out, sshErr = l.SSH(ctx, l.Admin.Name, tip, "id -un; . /etc/os-release; echo $VERSION_CODENAME; systemctl is-active headnat.service", 15*time.Second)
		return sshErr == nil && out == want
	})
	if !ok || err != nil {
		t.Errorf("ssh root@%s (nat-%s, over the tailnet) = %q, %v; want %q", tip, s.Name, out, sshErr, want)
	}

	// Its AZ's NAT dies: the booted instance takes the table and the private host's traffic.
	home := l.MustSite("a")
	if err := l.Kill(home.Name); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEgress(ctx, home, s, 30*time.Second); err != nil {
		t.Fatal(err)
	}

	// A poweroff stops the agent with SIGTERM: it hands the table over first. The instance's
	// address still answers meanwhile, so a peer would wait out probe.restart_grace (10s)
	// before taking the table of an agent that just died.
	off := time.Now()
	if _, err := bt.exec(ctx, "systemctl", "poweroff"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WaitMove(ctx, home.RouteTable, "b", off, 8*time.Second); err != nil {
		t.Fatalf("the table was not handed over within 8s of the poweroff: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for bt.running() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if bt.running() {
		t.Error("the container did not power off within 30s")
	}
}

package ami

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/headnat/headnat/agent/dataplane"
	"github.com/headnat/headnat/test/tailnetlab"
)

var repo = filepath.Join("..", "..")

func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not installed (`make deps` installs it): %v", n, err)
		}
	}
}

// provisioned is a Debian tree that ami/provision.sh ran in, once or twice.
type provisioned struct {
	root        string
	first, last map[string]Entry // snapshots after the first and the last run; only with twice
}

// provision runs provision.sh in a fresh tree once, or twice for the idempotence check.
func provision(t *testing.T, twice bool) *provisioned {
	t.Helper()
	bin := tailnetlab.RequireBinaries(t) // root, and tailscaled, tailscale, headscale
	requireTools(t, "debootstrap", "unshare", "chroot", "zstd", "tar")

	start := time.Now()
	var dblog bytes.Buffer
	tarball, made, err := EnsureBase(CacheDir(), &dblog)
	if err != nil {
		t.Fatalf("%v\n%s", err, tail(dblog.String(), 3000))
	}
	t.Logf("base tree %s (made now: %v) in %s", tarball, made, time.Since(start).Round(time.Second))

	root := t.TempDir()
	if err := Unpack(tarball, root); err != nil {
		t.Fatal(err)
	}
	t.Logf("unpacked in %s", time.Since(start).Round(time.Second))

	// As Packer lays it out on the build instance: /tmp/headnat/{bin,files,provision.sh}.
	src := filepath.Join(root, "tmp", "headnat")
	mustRun(t, exec.Command("mkdir", "-p", filepath.Join(src, "bin")))
	build := exec.Command("go", "build", "-o", filepath.Join(src, "bin", "headnat"), "./cmd/headnat")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	mustRun(t, build)
	for _, b := range []string{"tailscaled", "tailscale", "headscale"} {
		mustRun(t, exec.Command("cp", filepath.Join(bin, b), filepath.Join(src, "bin", b)))
	}
	mustRun(t, exec.Command("cp", "-r", filepath.Join(repo, "ami", "files"), filepath.Join(repo, "ami", "provision.sh"), src))
	// Nothing starts services in the chroot; apt may resolve the mirror if it needs a package.
	writeFile(t, filepath.Join(root, "usr/sbin/policy-rc.d"), "#!/bin/sh\nexit 101\n", 0o755)
	mustRun(t, exec.Command("cp", "--remove-destination", "/etc/resolv.conf", filepath.Join(root, "etc/resolv.conf")))

	p := &provisioned{root: root}
	runs := 1
	if twice {
		runs = 2
	}
	for i := range runs {
		out, err := InChroot(root, []string{"HEADNAT_SRC=/tmp/headnat"}, "bash", "/tmp/headnat/provision.sh").CombinedOutput()
		if err != nil {
			t.Fatalf("provision.sh run %d: %v\n%s", i+1, err, out)
		}
		t.Logf("provision.sh run %d:\n%s", i+1, out)
		if !twice {
			break
		}
		snap, err := Snapshot(root)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			p.first = snap
		} else {
			p.last = snap
		}
	}
	return p
}

func TestProvision(t *testing.T) {
	p := provision(t, true)
	root := p.root

	t.Run("idempotent", func(t *testing.T) {
		if d := Diff(p.first, p.last); len(d) > 0 {
			if len(d) > 30 {
				d = append(d[:30], "...")
			}
			t.Fatalf("the second run changed the tree:\n%s", strings.Join(d, "\n"))
		}
	})

	t.Run("units enabled", func(t *testing.T) {
		for _, u := range []string{"headnat.service", "tailscaled.service"} {
			link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants", u)
			target, err := os.Readlink(link)
			if err != nil {
				t.Fatalf("%s not enabled: %v", u, err)
			}
			if target != "/etc/systemd/system/"+u {
				t.Errorf("%s enabled as %s", u, target)
			}
		}
		for _, u := range []string{"multi-user.target.wants/ssh.service", "sockets.target.wants/ssh.socket", "sshd.service",
			"timers.target.wants/apt-daily.timer", "timers.target.wants/apt-daily-upgrade.timer"} {
			if _, err := os.Lstat(filepath.Join(root, "etc/systemd/system", u)); err == nil {
				t.Errorf("%s is still enabled", u)
			}
		}
		// headscale is installed but only the headscale server's user data writes its unit.
		if m, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system/*/headscale*")); len(m) > 0 {
			t.Errorf("a headscale unit is enabled: %v", m)
		}
	})

	t.Run("files", func(t *testing.T) {
		for _, b := range []string{"headnat", "tailscaled", "tailscale", "headscale"} {
			checkMode(t, filepath.Join(root, "usr/local/bin", b), 0o755)
		}
		same := map[string]string{
			"etc/systemd/system/headnat.service":          "headnat.service",
			"etc/systemd/system/tailscaled.service":       "tailscaled.service",
			"etc/headnat/headnat.yaml":                    "headnat.yaml",
			"etc/sysctl.d/90-headnat.conf":                "90-headnat-sysctl.conf",
			"etc/modules-load.d/headnat.conf":             "headnat-modules.conf",
			"etc/tmpfiles.d/headnat.conf":                 "headnat-tmpfiles.conf",
			"etc/systemd/journald.conf.d/90-headnat.conf": "journald.conf",
			"etc/ssh/sshd_config.d/90-headnat.conf":       "sshd.conf",
		}
		for dst, srcName := range same {
			want, err := os.ReadFile(filepath.Join(repo, "ami", "files", srcName))
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(root, dst))
			if err != nil {
				t.Errorf("/%s: %v", dst, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("/%s differs from ami/files/%s", dst, srcName)
			}
			checkMode(t, filepath.Join(root, dst), 0o644)
		}
		for _, pkg := range []string{"iptables", "conntrack"} {
			out, err := InChroot(root, nil, "dpkg-query", "-W", "-f=${Status}", pkg).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "ok installed") {
				t.Errorf("%s not installed: %v %s", pkg, err, out)
			}
		}
	})

	t.Run("sysctl", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, "etc/sysctl.d/90-headnat.conf"))
		if err != nil {
			t.Fatal(err)
		}
		got := parseSysctl(string(b))
		want := map[string]string{
			// Off at boot: the agent switches it on once its filter rules are in place.
			dataplane.KeyIPForward:        "0",
			dataplane.KeyAllSendRedirects: "0",
			dataplane.KeyAllRPFilter:      "2",
			dataplane.KeyLocalPortRange:   dataplane.LocalPortRange,
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %q in the sysctl drop-in, want %q", k, got[k], v)
			}
		}
	})

	t.Run("unique at boot", func(t *testing.T) {
		if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) > 0 {
			t.Errorf("SSH host keys left: %v", keys)
		}
		fi, err := os.Stat(filepath.Join(root, "etc/machine-id"))
		if err != nil || fi.Size() != 0 {
			t.Errorf("/etc/machine-id must exist and be empty: %v %v", fi, err)
		}
		if lists, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*")); len(lists) > 0 {
			t.Errorf("apt lists left: %d", len(lists))
		}
		filepath.Walk(filepath.Join(root, "var/log"), func(p string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
				t.Errorf("log not emptied: %s (%d bytes)", strings.TrimPrefix(p, root), fi.Size())
			}
			return nil
		})
	})

	t.Run("headnat version", func(t *testing.T) {
		out, err := InChroot(root, nil, "/usr/local/bin/headnat", "version").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) == 0 {
			t.Fatalf("headnat version in the chroot: %v %q", err, out)
		}
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		out, err := InChroot(root, nil, "systemd-analyze", "verify", "--man=no",
			"/etc/systemd/system/headnat.service", "/etc/systemd/system/tailscaled.service").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("systemd-analyze security", func(t *testing.T) {
		out, err := InChroot(root, nil, "systemd-analyze", "security", "--offline=true", "--no-pager",
			"/etc/systemd/system/headnat.service").CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for headnat.service: ([0-9.]+)`).FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security: %v\n%s", err, out)
		}
		score, _ := strconv.ParseFloat(string(m[1]), 64)
		doc, err := os.ReadFile(filepath.Join(repo, "docs", "AMI.md"))
		if err != nil {
			t.Fatal(err)
		}
		r := regexp.MustCompile(`exposure level of headnat\.service: \*\*([0-9.]+)\*\*`).FindSubmatch(doc)
		if r == nil {
			t.Fatal("docs/AMI.md does not record the exposure level of headnat.service")
		}
		recorded, _ := strconv.ParseFloat(string(r[1]), 64)
		t.Logf("exposure level %.1f (recorded %.1f)", score, recorded)
		if score > recorded {
			t.Fatalf("headnat.service's exposure level got worse: %.1f, docs/AMI.md records %.1f\n%s", score, recorded, out)
		}
	})
}

// The shell scripts in ami/ pass shellcheck.
func TestShellcheck(t *testing.T) {
	requireTools(t, "shellcheck")
	scripts, _ := filepath.Glob(filepath.Join(repo, "ami", "*.sh"))
	if len(scripts) == 0 {
		t.Fatal("no scripts in ami/")
	}
	out, err := exec.Command("shellcheck", append([]string{"--severity=style"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

func parseSysctl(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if ok {
			m[strings.TrimSpace(k)] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

func checkMode(t *testing.T, p string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Error(err)
		return
	}
	uid, gid := owner(fi)
	if fi.Mode().Perm() != want || uid != 0 || gid != 0 {
		t.Errorf("%s: mode %v owner %d:%d, want %v root:root", p, fi.Mode().Perm(), uid, gid, want)
	}
}

func mustRun(t *testing.T, c *exec.Cmd) {
	t.Helper()
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(c.Args, " "), err, out)
	}
}

func writeFile(t *testing.T, p, s string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), mode); err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Package ami tests the AMI's provisioning for real: ami/provision.sh runs twice in a Debian
// root filesystem of the AMI's release made with debootstrap, and the result is checked.
package ami

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// Release is the Debian release of the AMI's base image (ami/headnat.pkr.hcl: debian_release).
const Release = "trixie"

// Packages are added to debootstrap's minbase: what Debian's cloud image has that the
// provisioning script touches, and the appliance's own packages, so that a cached tree
// provisions offline.
var Packages = []string{"systemd", "systemd-sysv", "openssh-server", "iptables", "conntrack", "ca-certificates"}

// DebArch is the Debian architecture of this machine.
func DebArch() string {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return runtime.GOARCH
	case "arm":
		return "armhf"
	}
	return runtime.GOARCH
}

// CachePath is the cached tarball of the base tree, keyed by release, architecture and
// package list.
func CachePath(dir string) string {
	sum := sha256.Sum256([]byte(strings.Join(Packages, ",")))
	return filepath.Join(dir, fmt.Sprintf("debootstrap-%s-%s-%s.tar.zst", Release, DebArch(), hex.EncodeToString(sum[:4])))
}

// AptMirror returns the Debian mirror apt is configured with here (HEADNAT_DEBIAN_MIRROR
// overrides it): the first source that is not a security one.
func AptMirror() (string, error) {
	if m := os.Getenv("HEADNAT_DEBIAN_MIRROR"); m != "" {
		return m, nil
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, stanza := range strings.Split(string(b), "\n\n") {
			var uris, suites string
			for _, l := range strings.Split(stanza, "\n") {
				if v, ok := strings.CutPrefix(l, "URIs:"); ok {
					uris = strings.TrimSpace(v)
				}
				if v, ok := strings.CutPrefix(l, "Suites:"); ok {
					suites = v
				}
			}
			if uris != "" && !strings.Contains(suites, "security") && !strings.Contains(uris, "security") {
				return strings.Fields(uris)[0], nil
			}
		}
	}
	files, _ = filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append([]string{"/etc/apt/sources.list"}, files...) {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) >= 3 && fl[0] == "deb" && !strings.Contains(sc.Text(), "security") {
				i := 1
				for i < len(fl) && strings.HasPrefix(fl[i], "[") {
					i++
				}
				if i < len(fl) {
					fh.Close()
					return fl[i], nil
				}
			}
		}
		fh.Close()
	}
	return "", fmt.Errorf("no Debian mirror in /etc/apt/sources.list*; set HEADNAT_DEBIAN_MIRROR")
}

// CacheDir holds the debootstrap tarball between runs (HEADNAT_CACHE overrides it).
func CacheDir() string {
	if d := os.Getenv("HEADNAT_CACHE"); d != "" {
		return d
	}
	return "/var/cache/headnat"
}

// EnsureBase returns the cached base tarball, making it with debootstrap first if needed.
// made reports whether it was made now.
func EnsureBase(cacheDir string, logw io.Writer) (path string, made bool, err error) {
	path = CachePath(cacheDir)
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	}
	mirror, err := AptMirror()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", false, err
	}
	work, err := os.MkdirTemp(cacheDir, "debootstrap-")
	if err != nil {
		return "", false, err
	}
	defer os.RemoveAll(work)
	root := filepath.Join(work, "root")
	cmd := exec.Command("debootstrap", "--variant=minbase", "--arch="+DebArch(),
		"--include="+strings.Join(Packages, ","), Release, root, mirror)
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Run(); err != nil {
		return "", false, fmt.Errorf("debootstrap %s from %s: %w", Release, mirror, err)
	}
	// Downloaded packages are not part of the tree.
	debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb"))
	for _, d := range debs {
		os.Remove(d)
	}
	tmp := filepath.Join(work, "base.tar.zst")
	cmd = exec.Command("tar", "--zstd", "--numeric-owner", "-cpf", tmp, "-C", root, ".")
	cmd.Stdout, cmd.Stderr = logw, logw
	if err := cmd.Run(); err != nil {
		return "", false, fmt.Errorf("pack the debootstrap tree: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", false, err
	}
	return path, true, nil
}

// Unpack extracts the base tarball into dir.
func Unpack(tarball, dir string) error {
	out, err := exec.Command("tar", "--zstd", "--numeric-owner", "-xpf", tarball, "-C", dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unpack %s: %w: %s", tarball, err, out)
	}
	return nil
}

// InChroot runs argv in root's chroot, with /proc and /dev mounted in a private mount
// namespace of its own: the mounts end with the command, whatever happens to the test.
func InChroot(root string, env []string, argv ...string) *exec.Cmd {
	script := `set -e; r=$1; shift; mount -t proc proc "$r/proc"; mount --bind /dev "$r/dev"; exec chroot "$r" "$@"`
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", root}, argv...)
	cmd := exec.Command("unshare", args...)
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, env...)
	return cmd
}

// Entry is one file of a tree as the idempotency check compares it.
type Entry struct {
	Mode fs.FileMode
	UID  uint32
	GID  uint32
	Sum  string // file content hash, or a symlink's target
}

// Snapshot hashes root's tree, leaving out the API and temporary file systems.
func Snapshot(root string, skip ...string) (map[string]Entry, error) {
	skip = append(skip, "/proc", "/sys", "/dev", "/run", "/tmp")
	out := map[string]Entry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
		for _, s := range skip {
			if rel == s {
				return fs.SkipDir
			}
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := Entry{Mode: info.Mode()}
		e.UID, e.GID = owner(info)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			e.Sum, err = os.Readlink(p)
		case info.Mode().IsRegular():
			e.Sum, err = hashFile(p)
		}
		if err != nil {
			return err
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// Diff lists the paths that differ between two snapshots.
func Diff(a, b map[string]Entry) []string {
	var d []string
	for p, ea := range a {
		eb, ok := b[p]
		switch {
		case !ok:
			d = append(d, "removed "+p)
		case ea != eb:
			d = append(d, fmt.Sprintf("changed %s: %+v -> %+v", p, ea, eb))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			d = append(d, "added "+p)
		}
	}
	sort.Strings(d)
	return d
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

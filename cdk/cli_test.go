package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// appBinary builds the app once per test binary.
func appBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "app")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// synthApp runs the app the way the CDK CLI does (context and output directory in the
// environment) and returns its stderr, whether it succeeded, and the files it wrote.
func synthApp(t *testing.T, bin string, ctx map[string]string) (stderr string, ok bool, files []string) {
	t.Helper()
	out := t.TempDir()
	js, _ := json.Marshal(ctx)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "CDK_CONTEXT_JSON="+string(js), "CDK_OUTDIR="+out,
		"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20")
	var b strings.Builder
	cmd.Stderr = &b
	err := cmd.Run()
	entries, rerr := os.ReadDir(out)
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, e := range entries {
		files = append(files, e.Name())
	}
	return b.String(), err == nil, files
}

// GIVEN bad context WHEN the app synthesizes THEN it fails with one line naming the problem
// and writes nothing to the output directory.
func TestBadContextFailsAtSynthAndWritesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the app")
	}
	bin := appBinary(t)
	base := map[string]string{"cluster": "prod", "ami-id": "ami-0123456789abcdef0"}
	for name, tc := range map[string]struct {
		ctx  map[string]string
		want string
	}{
		"missing AMI":            {map[string]string{"ami-id": ""}, "no AMI"},
		"zero AZs":               {map[string]string{"azs": "0"}, "azs=0: want at least 2 AZs"},
		"VPC overlaps tailnet":   {map[string]string{"vpc-cidr": "100.64.0.0/16", "headscale-url": "https://hs.example.org", "auth-key-ssm-parameter": "/headnat/key"}, "overlaps the tailnet's 100.64.0.0/10"},
		"VPC too small":          {map[string]string{"vpc-cidr": "10.0.0.0/19"}, "too small for 2 AZs"},
		"x86 instance type":      {map[string]string{"instance-types": "t4g.nano,t3.micro"}, `"t3.micro" is not a Graviton (arm64) type`},
		"EIP pool under fleet":   {map[string]string{"eip-pool-size": "3", "instances-per-az": "2"}, "EipPoolSize 3 is smaller than the fleet (2 AZs x 2 instances = 4)"},
		"account without region": {map[string]string{"account": "123456789012"}, "set both account and region"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := map[string]string{}
			for k, v := range base {
				ctx[k] = v
			}
			for k, v := range tc.ctx {
				ctx[k] = v
			}
			stderr, ok, files := synthApp(t, bin, ctx)
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if ok || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
				t.Errorf("succeeded=%v, stderr:\n%s\nwant one line with %q", ok, stderr, tc.want)
			}
			if len(files) != 0 {
				t.Errorf("wrote %v to the output directory", files)
			}
		})
	}
	t.Run("good context", func(t *testing.T) {
		stderr, ok, files := synthApp(t, bin, base)
		if !ok || !strings.Contains(strings.Join(files, " "), "HeadnatNetwork-prod.template.json") {
			t.Errorf("succeeded=%v files=%v stderr:\n%s", ok, files, stderr)
		}
	})
}

// GIVEN a platform config WHEN the app synthesizes THEN a bad file fails with one line and
// writes nothing, and the example adds the platform stack.
func TestPlatformConfigAtSynth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the app")
	}
	bin := appBinary(t)
	bad := filepath.Join(t.TempDir(), "platform.yaml")
	if err := os.WriteFile(bad, []byte("services:\n  - name: web\n    image: ecr\n    cpu: 256\n    memory: 512\n    port: 80\n    hosts: [example.org]\n    replicas: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"cluster": "prod", "ami-id": "ami-0123456789abcdef0"}
	with := func(path string) map[string]string {
		ctx := map[string]string{"platform-config": path}
		for k, v := range base {
			ctx[k] = v
		}
		return ctx
	}
	stderr, ok, files := synthApp(t, bin, with(bad))
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	if ok || len(lines) != 1 || !strings.Contains(lines[0], `line 8: unknown key "replicas"`) {
		t.Errorf("succeeded=%v, stderr:\n%s\nwant one line naming the unknown key", ok, stderr)
	}
	if len(files) != 0 {
		t.Errorf("wrote %v to the output directory", files)
	}
	stderr, ok, files = synthApp(t, bin, with("examples/conference.yaml"))
	if !ok || !strings.Contains(strings.Join(files, " "), "HeadnatPlatform-prod.template.json") {
		t.Errorf("succeeded=%v files=%v stderr:\n%s", ok, files, stderr)
	}
}

package stacks_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/headnat/headnat/cdk/app"
)

// GIVEN the conference example WHEN synthesized and priced by `headnat cost` THEN the output
// is the one docs/COST.md walks through.
func TestConferenceCostExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/headnat")
	}
	const cmdLine = "$ headnat cost --dir cdk/cdk.out --aurora-acu 0.5\n"
	doc, err := os.ReadFile("../../docs/COST.md")
	if err != nil {
		t.Fatal(err)
	}
	_, want, ok := strings.Cut(string(doc), cmdLine)
	if !ok {
		t.Fatalf("docs/COST.md lacks %q", cmdLine)
	}
	want, _, _ = strings.Cut(want, "```")

	out := filepath.Join(t.TempDir(), "cdk.out")
	a := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(out)})
	get, err := app.WithFile(func(k string) any { return a.Node().TryGetContext(jsii.String(k)) }, "../examples/conference.deploy.json")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := app.FromContext(get)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Build(a, cfg); err != nil {
		t.Fatal(err)
	}
	a.Synth(nil)

	bin := filepath.Join(t.TempDir(), "headnat")
	if b, err := exec.Command("go", "-C", "../..", "build", "-o", bin, "./cmd/headnat").CombinedOutput(); err != nil {
		t.Fatalf("build cmd/headnat: %v\n%s", err, b)
	}
	got, err := exec.Command(bin, "cost", "--dir", out, "--aurora-acu", "0.5").Output()
	if err != nil {
		t.Fatalf("headnat cost: %v", err)
	}
	if string(got) != want {
		t.Errorf("docs/COST.md shows another output than headnat cost on the synthesized example; the command prints:\n%s", got)
	}
}

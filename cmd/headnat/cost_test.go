package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const costTestdata = "../../cost/testdata"

// headnat cost on the 2-AZ network stack: both bills, per month and per day (the arithmetic
// is checked line by line in package cost).
func TestCostCommand(t *testing.T) {
	code, out, stderr := run(t, "cost", "--dir", filepath.Join(costTestdata, "network"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"headnat cost: us-east-1, prices of ", "$21.55/month, $0.71/day", "$87.53/month, $2.88/day",
		"+$65.97/month", "NAT Gateway data processed", "(--lcu)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// The same templates given as files, and in the other region.
	files := []string{filepath.Join(costTestdata, "network", "HeadnatNetwork-test.template.json")}
	code, out2, stderr := run(t, append([]string{"cost"}, files...)...)
	if code != 0 || out2 != out {
		t.Errorf("files instead of --dir: exit %d %s, output differs: %v", code, stderr, out2 != out)
	}
	code, out, stderr = run(t, "cost", "--region", "ap-northeast-2", "--dir", filepath.Join(costTestdata, "network"))
	if code != 0 || !strings.Contains(out, "$26.37/month") || !strings.Contains(out, "$113.49/month") {
		t.Errorf("ap-northeast-2: exit %d %s:\n%s", code, stderr, out)
	}
}

func TestCostErrors(t *testing.T) {
	empty := t.TempDir()
	bad := filepath.Join(t.TempDir(), "Bad.template.json")
	if err := os.WriteFile(bad, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	network := filepath.Join(costTestdata, "network")
	for _, tt := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"cost", "--dir", filepath.Join(empty, "nope")}, 1, "no such file or directory"},
		{[]string{"cost", "--dir", empty}, 1, "no *.template.json in " + empty},
		{[]string{"cost", bad}, 1, "template " + bad + ": unexpected end of JSON input"},
		{[]string{"cost", "--region", "eu-west-1", "--dir", network}, 2, `region "eu-west-1" has no prices; supported: us-east-1, ap-northeast-2`},
		{[]string{"cost", "--hours", "0", "--dir", network}, 2, "hours per month 0"},
		{[]string{"cost", "--gb-per-month", "-1", "--dir", network}, 2, "must not be negative"},
		{[]string{"cost", "--gb-per-month", "lots"}, 2, `invalid value "lots"`},
	} {
		code, out, stderr := run(t, tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.stderr) || out != "" || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", tt.args, code, out, stderr, tt.code, tt.stderr)
		}
	}
}

// The output pasted in docs/COST.md is what the command prints.
func TestCostDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../docs/COST.md")
	if err != nil {
		t.Fatal(err)
	}
	const cmd = "$ headnat cost --dir cost/testdata/network\n"
	_, pasted, ok := strings.Cut(string(doc), cmd)
	if !ok {
		t.Fatalf("docs/COST.md lacks %q", cmd)
	}
	pasted, _, _ = strings.Cut(pasted, "```")
	code, out, stderr := run(t, "cost", "--dir", filepath.Join(costTestdata, "network"))
	if code != 0 || out != pasted {
		t.Errorf("exit %d %s; docs/COST.md shows another output than the command's:\n%s", code, stderr, out)
	}
}

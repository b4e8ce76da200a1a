package platform

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const good = `
certificates:
  - arn: arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-0000-1111-2222-333344445555
    domains: [example.org, "*.example.org"]
database: {max-acu: 4}
services:
  - name: website
    image: ecr
    cpu: 256
    memory: 512
    port: 8080
    hosts: [example.org, www.example.org]
  - name: cfp
    image: public.ecr.aws/nginx/nginx:stable
    cpu: 512
    memory: 2048
    port: 80
    hosts: [example.org]
    paths: ["/cfp/*"]
    desired-count: 0
    capacity: on-demand
    environment: {MODE: production}
    secrets:
      API_KEY: ssm:/conference/cfp/api-key
      SMTP: secretsmanager:conference/smtp:password
`

// GIVEN a good file WHEN parsed THEN the defaults are filled and the values kept.
func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	w, cfp := c.Services[0], c.Services[1]
	switch {
	case c.LogRetentionDays != 14 || c.EcrKeepLast != 10:
		t.Errorf("retention %d keep %d: want the defaults 14 and 10", c.LogRetentionDays, c.EcrKeepLast)
	case *c.Database.MinACU != 0 || *c.Database.MaxACU != 4:
		t.Errorf("acu %g-%g", *c.Database.MinACU, *c.Database.MaxACU)
	case *w.DesiredCount != 1 || w.Capacity != CapacitySpot || w.HealthCheckPath != "/" || w.DatabaseName != "website":
		t.Errorf("website defaults: %+v", w)
	case *cfp.DesiredCount != 0 || cfp.Capacity != CapacityOnDemand:
		t.Errorf("cfp: %+v", cfp)
	}
	if tag, ok := w.ECRTag(); !ok || tag != "latest" {
		t.Errorf("website image: %q %v", tag, ok)
	}
	if _, ok := cfp.ECRTag(); ok {
		t.Error("a public image taken for an ECR repository")
	}
	// cfp has a path: its rule comes first.
	if p := c.RulePriorities(); p["cfp"] != 10 || p["website"] != 20 {
		t.Errorf("priorities %v", p)
	}
}

// GIVEN a bad file WHEN parsed THEN one line names the problem.
func TestParseErrors(t *testing.T) {
	svc := func(extra string) string {
		return "services:\n  - name: web\n    image: ecr\n    cpu: 256\n    memory: 512\n    port: 80\n    hosts: [example.org]\n" + extra
	}
	cert := "certificates: [{arn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc', domains: ['*.example.org']}]\n"
	for name, tc := range map[string]struct{ yaml, want string }{
		"empty":                {"", "want services"},
		"unknown key":          {svc("    memroy: 1024\n"), `line 8: unknown key "memroy"`},
		"unknown global key":   {"log-retention: 7\n" + svc(""), `line 1: unknown key "log-retention"`},
		"wrong type":           {svc("    port: http\n"), "line 8"},
		"no services":          {"log-retention-days: 7\n", "services: want at least one"},
		"bad retention":        {"log-retention-days: 13\n" + svc(""), "log-retention-days 13"},
		"retention too long":   {"log-retention-days: 3653\n" + svc(""), "log-retention-days 3653"},
		"keep-last negative":   {"ecr-keep-last: -1\n" + svc(""), "ecr-keep-last -1"},
		"cpu 256 mem 4096":     {strings.Replace(svc(""), "memory: 512", "memory: 4096", 1), "cpu 256 with memory 4096: Fargate takes 512, 1024 or 2048"},
		"cpu 512 mem 1536":     {strings.Replace(strings.Replace(svc(""), "memory: 512", "memory: 1536", 1), "cpu: 256", "cpu: 512", 1), "cpu 512 with memory 1536"},
		"cpu 8192 mem 18432":   {strings.Replace(strings.Replace(svc(""), "memory: 512", "memory: 18432", 1), "cpu: 256", "cpu: 8192", 1), "in steps of 4096"},
		"cpu 300":              {strings.Replace(svc(""), "cpu: 256", "cpu: 300", 1), "cpu 300: Fargate takes"},
		"duplicate name":       {svc("") + "  - {name: web, image: ecr, cpu: 256, memory: 512, port: 80, hosts: [b.example.org]}\n", `duplicate name "web"`},
		"bad name":             {strings.Replace(svc(""), "name: web", "name: Web_1", 1), "name: want 1-32"},
		"port 0":               {strings.Replace(svc(""), "port: 80", "port: 0", 1), "port 0: want 1 to 65535"},
		"port 70000":           {strings.Replace(svc(""), "port: 80", "port: 70000", 1), "port 70000"},
		"negative count":       {svc("    desired-count: -1\n"), "desired-count -1"},
		"duplicate host":       {svc("") + "  - {name: shop, image: ecr, cpu: 256, memory: 512, port: 80, hosts: [example.org]}\n", `services "web" and "shop": duplicate rule (host "example.org", path any)`},
		"duplicate path":       {svc("    paths: [/api/*]\n") + "  - {name: api, image: ecr, cpu: 256, memory: 512, port: 80, hosts: [a.example.org, example.org], paths: [/api/*]}\n", `duplicate rule (host "example.org", path "/api/*")`},
		"no route":             {"services: [{name: web, image: ecr, cpu: 256, memory: 512, port: 80}]\n", "no hosts and no paths"},
		"host not covered":     {cert + strings.Replace(svc(""), "example.org]", "shop.example.com]", 1), `host "shop.example.com": no certificate covers it`},
		"apex not wildcard":    {cert + svc(""), `host "example.org": no certificate covers it`},
		"two labels deep":      {cert + strings.Replace(svc(""), "example.org]", "a.b.example.org]", 1), "no certificate covers it"},
		"bad cert arn":         {"certificates: [{arn: nope, domains: [example.org]}]\n" + svc(""), `arn "nope"`},
		"cert without domain":  {"certificates: [{arn: 'arn:aws:acm:eu-west-1:123456789012:certificate/abc'}]\n" + svc(""), "domains: list the names"},
		"bad host":             {strings.Replace(svc(""), "example.org]", "Example..org]", 1), `host "Example..org"`},
		"bad path":             {svc("    paths: [api]\n"), `path "api"`},
		"bad image":            {strings.Replace(svc(""), "image: ecr", "image: 'Not An Image'", 1), "image \"Not An Image\""},
		"bad capacity":         {svc("    capacity: reserved\n"), `capacity "reserved"`},
		"base on on-demand":    {svc("    capacity: on-demand\n    on-demand-base: 1\n"), "on-demand-base is for spot services"},
		"secret is a value":    {svc("    secrets: {PASSWORD: hunter2}\n"), "never a value"},
		"empty json key":       {svc("    secrets: {PASSWORD: 'secretsmanager:db:'}\n"), "empty json key"},
		"env and secret":       {svc("    environment: {A: b}\n    secrets: {A: 'ssm:/a'}\n"), `"A" is both`},
		"bad env name":         {svc("    environment: {1A: b}\n"), `environment "1A"`},
		"health check path":    {svc("    health-check-path: healthz\n"), `health-check-path "healthz"`},
		"max acu over cap":     {"database: {max-acu: 64}\n" + svc(""), "max-acu 64: want 1 to 16"},
		"min above max":        {"database: {min-acu: 4, max-acu: 2}\n" + svc(""), "min-acu 4 is above max-acu 2"},
		"acu not half step":    {"database: {max-acu: 2.3}\n" + svc(""), "max-acu 2.3"},
		"db env set by hand":   {"database: {}\n" + svc("    environment: {PGHOST: x}\n"), "PGHOST is set by the stack"},
		"db name without db":   {svc("    database-name: other\n"), "database-name needs a database section"},
		"two documents":        {svc("") + "---\nservices: []\n", "want one YAML document"},
		"too many rule values": {svc("    paths: [/a, /b, /c, /d, /e]\n"), "at most 5"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line with %q", err, tc.want)
			}
		})
	}
}

// GIVEN secret references WHEN parsed THEN SSM names, ARNs, names and JSON keys come apart.
func TestParseSecretRef(t *testing.T) {
	arn := "arn:aws:secretsmanager:eu-west-1:123456789012:secret:conf/db-AbCdEf"
	for ref, want := range map[string]SecretRef{
		"ssm:/conf/key":                   {SSMParameter: "/conf/key"},
		"secretsmanager:conf/smtp":        {SecretName: "conf/smtp"},
		"secretsmanager:conf/smtp:pass":   {SecretName: "conf/smtp", JSONKey: "pass"},
		"secretsmanager:" + arn:           {SecretARN: arn},
		"secretsmanager:" + arn + ":user": {SecretARN: arn, JSONKey: "user"},
	} {
		got, err := ParseSecretRef(ref)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", ref, got, err, want)
		}
	}
}

// GIVEN a file path WHEN loaded THEN errors name the file; the example config loads.
func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(p, []byte("services: [{name: x}]\nfoo: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p+": line 2: unknown key \"foo\"") {
		t.Errorf("error %v", err)
	}
	c, err := Load("../examples/conference.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) < 8 || c.Database == nil {
		t.Errorf("example: %d services, database %v", len(c.Services), c.Database)
	}
}

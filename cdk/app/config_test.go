package app

import (
	"os"
	"strings"
	"testing"
)

func ctx(kv ...string) func(string) any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) any { return m[k] }
}

// GIVEN context values WHEN read THEN they become the stacks' props, with the defaults.
func TestFromContext(t *testing.T) {
	c, err := FromContext(ctx("ami-ssm-parameter", "/headnat/ami", "headscale-domain", "hs.example.org",
		"auth-key-ssm-parameter", "/headnat/key", "instance-types", " t4g.nano, c7g.medium ,",
		"eip-pool-size", "4", "azs", "2", "instances-per-az", "1", "alarm-email", "ops@example.org"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.NetworkProps()
	f := p.Fleet
	switch {
	case f.Cluster != DefaultCluster:
		t.Errorf("cluster %q, want the default %q", f.Cluster, DefaultCluster)
	case f.TailnetLoginServer != "https://hs.example.org":
		t.Errorf("login server %q: want the deployed headscale's URL", f.TailnetLoginServer)
	case strings.Join(f.InstanceTypes, ",") != "t4g.nano,c7g.medium":
		t.Errorf("instance types %q", f.InstanceTypes)
	case !f.EipPool || f.EipPoolSize != 4:
		t.Errorf("eip pool %v size %d: a size turns the pool on", f.EipPool, f.EipPoolSize)
	case f.NoAlarms || p.AlarmEmail != "ops@example.org":
		t.Errorf("alarms off %v, email %q", f.NoAlarms, p.AlarmEmail)
	case p.Env != nil:
		t.Errorf("env %v: want an environment-agnostic stack", p.Env)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	// A first deploy of headscale: no key yet, so the NATs start outside the tailnet.
	c, err = FromContext(ctx("ami-id", "ami-0123456789abcdef0", "headscale-domain", "hs.example.org"))
	if err != nil || c.NetworkProps().Fleet.TailnetLoginServer != "" || c.LoginServer() != "https://hs.example.org" {
		t.Errorf("headscale without a key: err %v, fleet login server %q", err, c.NetworkProps().Fleet.TailnetLoginServer)
	}
	c, err = FromContext(ctx("ami-id", "ami-0123456789abcdef0", "account", "123456789012", "region", "eu-west-1", "alarms", "false"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.NetworkProps(); p.Env == nil || *p.Env.Region != "eu-west-1" || !p.Fleet.NoAlarms {
		t.Errorf("env %v, no alarms %v", p.Env, p.Fleet.NoAlarms)
	}
}

// GIVEN bad context WHEN read and validated THEN one line names the key and the problem.
func TestFromContextErrors(t *testing.T) {
	ami := []string{"ami-id", "ami-0123456789abcdef0"}
	for _, tc := range []struct {
		kv   []string
		want string
	}{
		{nil, "no AMI"},
		{[]string{"ami-id", "ami-0123456789abcdef0", "ami-ssm-parameter", "/x"}, "not both"},
		{append([]string{"azs", "0"}, ami...), "azs=0"},
		{append([]string{"azs", "two"}, ami...), `azs="two": want a whole number`},
		{append([]string{"azs", "3"}, ami...), "environment-agnostic stack spans 2 AZs"},
		{append([]string{"instances-per-az", "0"}, ami...), "InstancesPerAZ 0"},
		{append([]string{"eip-pool", "yes please"}, ami...), `eip-pool="yes please": want true or false`},
		{append([]string{"eip-pool-size", "1"}, ami...), "EipPoolSize 1 is smaller than the fleet"},
		{append([]string{"instance-types", "m5.large"}, ami...), `"m5.large" is not a Graviton`},
		{append([]string{"vpc-cidr", "10.0.0.0/33"}, ami...), `VpcCIDR "10.0.0.0/33"`},
		{append([]string{"vpc-cidr", "10.0.0.1/16"}, ami...), `VpcCIDR "10.0.0.1/16"`},
		{append([]string{"vpc-cidr", "100.100.0.0/16", "headscale-url", "https://hs.example.org", "auth-key-ssm-parameter", "/k"}, ami...), "overlaps the tailnet"},
		{append([]string{"headscale-url", "https://a.example.org", "headscale-domain", "b.example.org"}, ami...), "not both"},
		{append([]string{"auth-key-ssm-parameter", "/k"}, ami...), "needs headscale-url or headscale-domain"},
		{append([]string{"headscale-url", "https://hs.example.org"}, ami...), "headscale-url needs auth-key-ssm-parameter"},
		{append([]string{"alarm-email", "nobody"}, ami...), "want an email address"},
		{append([]string{"alarm-email", "a@example.org", "alarms", "false"}, ami...), "alarm-email needs alarms=true"},
		{append([]string{"region", "eu-west-1"}, ami...), "set both account and region"},
		{append([]string{"account", "12", "region", "eu-west-1"}, ami...), "12-digit"},
	} {
		c, err := FromContext(ctx(tc.kv...))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line with %q", tc.kv, err, tc.want)
		}
	}
}

// GIVEN a settings file WHEN read THEN its values are the context's defaults, -c wins, and
// an unknown key or a bad value is one error.
func TestWithFile(t *testing.T) {
	write := func(s string) string {
		p := t.TempDir() + "/deploy.json"
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	get, err := WithFile(ctx("cluster", "from-flag"), write(`{"cluster": "from-file", "ami-id": "ami-0123456789abcdef0", "azs": 2, "eip-pool": true}`))
	if err != nil {
		t.Fatal(err)
	}
	c, err := FromContext(get)
	if err != nil || c.Cluster != "from-flag" || c.AmiID != "ami-0123456789abcdef0" || c.AZs != 2 || !c.EipPool {
		t.Errorf("config %+v, err %v", c, err)
	}
	for content, want := range map[string]string{
		`{"ami_id": "ami-0123456789abcdef0"}`: `unknown key "ami_id"`,
		`{"azs": [2]}`:                        `"azs": want a string, number or boolean`,
		`["cluster"]`:                         "want a JSON object",
	} {
		if _, err := WithFile(ctx(), write(content)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", content, err, want)
		}
	}
	if _, err := WithFile(ctx(), t.TempDir()+"/missing.json"); err == nil {
		t.Error("a missing settings file: no error")
	}
}

// GIVEN platform-config WHEN read THEN the file is loaded and checked with the context: a bad
// or missing file is one line naming the key; a relative path in the settings file is next to it.
func TestPlatformConfig(t *testing.T) {
	ami := []string{"ami-id", "ami-0123456789abcdef0"}
	c, err := FromContext(ctx(append([]string{"platform-config", "../examples/conference.yaml"}, ami...)...))
	if err != nil {
		t.Fatal(err)
	}
	pp := c.PlatformProps()
	if pp == nil || pp.Name != DefaultCluster || len(pp.Config.Services) != len(c.Platform.Services) || pp.Env != nil {
		t.Fatalf("platform props %+v", pp)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	if c, _ := FromContext(ctx(ami...)); c.PlatformProps() != nil {
		t.Error("a platform stack without platform-config")
	}
	dir := t.TempDir()
	bad := dir + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("services:\n  - name: web\n    cpu: 256\n    memory: 4096\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		bad:                   "context platform-config: platform config " + bad + ": services[0] \"web\"",
		dir + "/missing.yaml": "context platform-config: platform config: open",
	} {
		_, err := FromContext(ctx(append([]string{"platform-config", path}, ami...)...))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %v, want one line with %q", path, err, want)
		}
	}
	settings := dir + "/deploy.json"
	if err := os.WriteFile(settings, []byte(`{"platform-config": "bad.yaml"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	get, err := WithFile(ctx(), settings)
	if err != nil {
		t.Fatal(err)
	}
	if got := get("platform-config"); got != bad {
		t.Errorf("relative platform-config from the settings file: %v, want %s", got, bad)
	}
	get, _ = WithFile(ctx("platform-config", "x.yaml"), settings)
	if got := get("platform-config"); got != "x.yaml" {
		t.Errorf("-c platform-config: %v, want it as given", got)
	}
}

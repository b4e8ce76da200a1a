package health

import (
	"strings"
	"testing"
	"time"
)

func TestDefaultConfigs(t *testing.T) {
	for name, c := range map[string]Config{"peer": DefaultConfig(), "self": DefaultSelfConfig()} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s defaults invalid: %v", name, err)
		}
	}
	// Arithmetic on the configured schedule, not a measurement: peers must be declared dead
	// early enough to leave time for the route write within 1s.
	if b := DefaultConfig().DetectionBound(); b > 800*time.Millisecond {
		t.Errorf("default peer detection bound %v leaves no room for the route write", b)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	cases := []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"zero interval", func(c *Config) { c.Interval = 0 }, []string{"interval must be positive"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"timeout must be positive"}},
		{"timeout equals interval", func(c *Config) { c.Timeout = c.Interval }, []string{"must be shorter than interval"}},
		{"timeout above interval", func(c *Config) { c.Timeout = 2 * c.Interval }, []string{"must be shorter than interval"}},
		{"rise zero", func(c *Config) { c.Rise = 0 }, []string{"rise must be at least 1"}},
		{"fall negative", func(c *Config) { c.Fall = -1 }, []string{"fall must be at least 1"}},
		{"all wrong", func(c *Config) { *c = Config{} }, []string{"interval", "timeout", "rise", "fall"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatalf("%+v accepted", c)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

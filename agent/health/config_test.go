package health

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	ok := Config{Interval: 200 * time.Millisecond, Timeout: 150 * time.Millisecond, Rise: 3, Fall: 3}
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

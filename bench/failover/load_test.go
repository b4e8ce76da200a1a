package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The burners re-run the test binary, so it must answer the hidden subcommand too.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == burnArg {
		os.Exit(burnMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

func TestBurners(t *testing.T) {
	b, err := startBurners(2, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cpu, ended := b.stop()
	if cpu <= 0 || ended != 0 {
		t.Fatalf("2 burners killed after 300ms: cpu %s, %d ended by themselves; want some cpu, none ended", cpu, ended)
	}

	b, err = startBurners(1, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// It exits by itself (a zombie until reaped); allow a slow start on a loaded machine.
	pid := b.pids()[0]
	deadline := time.Now().Add(20 * time.Second)
	for f := procFields(pid); len(f) > 0 && f[0] != "Z" && time.Now().Before(deadline); f = procFields(pid) {
		time.Sleep(50 * time.Millisecond)
	}
	if _, ended := b.stop(); ended != 1 {
		t.Fatalf("a burner bounded to 100ms was still running after 20s")
	}
}

func TestBurnMainRejects(t *testing.T) {
	for _, args := range [][]string{nil, {"x"}, {"0s"}, {"-1s"}, {"3h"}, {"1s", "2s"}} {
		if code := burnMain(args); code != 2 {
			t.Errorf("burnMain(%q) = %d, want 2", args, code)
		}
	}
}

func TestParseRunDelay(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"176435 2500000 1\n": 2500 * time.Microsecond,
		"1 0 1":              0,
		"":                   0,
		"1 x 1":              0,
	} {
		if got := parseRunDelay(in); got != want {
			t.Errorf("parseRunDelay(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := config{n: 20, idle: 10 * time.Minute, loadedIdle: 5 * time.Minute, idleLoad: 4, interval: 50 * time.Millisecond, failbackAfter: 5 * time.Second}
	if err := ok.validate(); err != nil {
		t.Fatalf("the Makefile's settings rejected: %v", err)
	}
	for name, tt := range map[string]struct {
		mod  func(*config)
		want string
	}{
		"load without loaded idle": {func(c *config) { c.loadedIdle = 0 }, "go together"},
		"loaded idle without load": {func(c *config) { c.idleLoad = 0 }, "go together"},
		"too many burners":         {func(c *config) { c.idleLoad = 65 }, "-idle-load 0..64"},
		"nothing to do":            {func(c *config) { c.n, c.idle, c.loadedIdle, c.idleLoad = 0, 0, 0, 0 }, "nothing to do"},
	} {
		c := ok
		tt.mod(&c)
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, tt.want)
		}
	}
	c := ok
	c.n, c.idle = 0, 0
	if err := c.validate(); err != nil {
		t.Errorf("a loaded idle run alone rejected: %v", err)
	}
}

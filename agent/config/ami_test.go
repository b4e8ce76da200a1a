package config

import (
	"os"
	"path/filepath"
	"testing"
)

// The configuration baked into the AMI must load and validate, and say what the defaults say.
func TestAMIDefaultConfigLoads(t *testing.T) {
	cfg := Default()
	if err := LoadFile(filepath.Join("..", "..", "ami", "files", "headnat.yaml"), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if def := Default(); cfg.Probe != def.Probe || cfg.FailbackAfter != def.FailbackAfter {
		t.Fatalf("ami/files/headnat.yaml disagrees with the defaults: %+v vs %+v", cfg, def)
	}
	if _, err := os.Stat(filepath.Join("..", "..", "ami", "files", "headnat.service")); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		check   func(*options) bool
	}{
		{args: []string{"up"}, check: func(o *options) bool {
			return o.Command == "up" && o.Name == "lab" && o.FailbackAfter == 10*time.Second && o.NATsPerAZ == 1 && o.NATs == nil
		}},
		{args: []string{"-name", "x", "kill", "a"}, check: func(o *options) bool { return o.Name == "x" && o.Command == "kill" && o.Args[0] == "a" }},
		{args: []string{"status", "-json"}, check: func(o *options) bool { return o.Command == "status" && o.JSON }},
		{args: []string{"demo", "-failback-after", "3s"}, check: func(o *options) bool { return o.FailbackAfter == 3*time.Second }},
		{args: []string{"up", "-nats-per-az", "2"}, check: func(o *options) bool { return o.NATsPerAZ == 2 }},
		{args: []string{"-nats", "a=2,b=1", "demo"}, check: func(o *options) bool {
			return o.NATs["a"] == 2 && o.NATs["b"] == 1 && len(o.NATs) == 2 && o.NATs.String() == "a=2,b=1"
		}},
		{args: []string{"up", "-nats", "a=3"}, check: func(o *options) bool { return o.NATs["a"] == 3 && len(o.NATs) == 1 }},
		{args: []string{}, wantErr: "no command"},
		{args: []string{"explode"}, wantErr: "unknown command"},
		{args: []string{"kill"}, wantErr: "takes 1 argument"},
		{args: []string{"heal", "a"}, wantErr: "takes 0 argument"},
		{args: []string{"-name", "../etc", "up"}, wantErr: "invalid lab name"},
		{args: []string{"-failback-after", "-1s", "up"}, wantErr: "must be positive"},
		{args: []string{"-nats-per-az", "0", "up"}, wantErr: "want 1 to 4"},
		{args: []string{"-nats-per-az", "5", "up"}, wantErr: "want 1 to 4"},
		{args: []string{"-nats", "c=2", "up"}, wantErr: `no AZ "c"`},
		{args: []string{"-nats", "a=0", "up"}, wantErr: "want 1 to 4"},
		{args: []string{"-nats", "a2", "up"}, wantErr: "want <az>=<count>"},
		{args: []string{"-nats", "a=x", "up"}, wantErr: "want <az>=<count>"},
		{args: []string{"-nats", "a=2,a=1", "up"}, wantErr: "given twice"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Fatalf("parsed %+v", o)
			}
		})
	}
}

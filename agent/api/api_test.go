package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSafeURL(t *testing.T) {
	cases := map[string]string{
		"":                                      "",
		"https://hs.example.test":               "https://hs.example.test",
		"https://user:s3cret@hs.example.test/x": "https://hs.example.test/x",
		"http://hs.example.test:8080/?key=s3cret": "http://hs.example.test:8080/",
		"https://hs.example.test/#frag":           "https://hs.example.test/",
		"http://[::1]:namedport":                  "(invalid url)",
	}
	for in, want := range cases {
		if got := SafeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	c := ConfigSummary{ProbeInterval: Duration(200 * time.Millisecond), FailbackAfter: Duration(2 * time.Minute)}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"probe_interval":"200ms"`) || !strings.Contains(string(b), `"failback_after":"2m0s"`) {
		t.Fatalf("durations not rendered as strings: %s", b)
	}
	var back ConfigSummary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ProbeInterval != c.ProbeInterval || back.FailbackAfter != c.FailbackAfter {
		t.Fatalf("round trip: got %+v", back)
	}
	if err := json.Unmarshal([]byte(`{"probe_interval":"soon"}`), &back); err == nil {
		t.Fatal("bad duration accepted")
	}
}

// TestStatusHasNoSecretFields guards /status against someone adding a credential to it.
func TestStatusHasNoSecretFields(t *testing.T) {
	bad := []string{"key", "secret", "token", "password", "credential", "auth"}
	var walk func(typ reflect.Type, path string)
	seen := map[reflect.Type]bool{}
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() != reflect.TypeFor[Status]().PkgPath() {
			return
		}
		seen[typ] = true
		for f := range typ.Fields() {
			name := strings.ToLower(f.Name + " " + f.Tag.Get("json"))
			for _, b := range bad {
				if strings.Contains(name, b) {
					t.Errorf("field %s.%s looks like a secret (%q)", path, f.Name, b)
				}
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	walk(reflect.TypeFor[Status](), "Status")
	if len(seen) < 5 {
		t.Fatalf("walked only %d types", len(seen))
	}
}

func TestHealthzJSONFields(t *testing.T) {
	h := Healthz{Instance: "i-1", AZ: "az-a", Healthy: true, Tables: []string{"rtb-1"}, Version: "v1",
		LaunchTime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"instance", "az", "healthy", "draining", "launch_time", "tables", "version"} {
		if _, ok := m[k]; !ok {
			t.Errorf("missing %q in %s", k, b)
		}
	}
	if _, ok := m["reasons"]; ok {
		t.Errorf("empty reasons not omitted: %s", b)
	}
}

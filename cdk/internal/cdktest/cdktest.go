// Package cdktest helps the CDK tests: assertions that report instead of panicking, and the
// synthesized template as plain JSON to walk.
package cdktest

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// Main runs a package's tests, then stops the jsii runtime (once, after all of them).
func Main(m *testing.M) {
	code := m.Run()
	jsii.Close()
	os.Exit(code)
}

// Assert runs one awscdk assertion (which panics when it fails) and reports the failure.
func Assert(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s: %v", what, r)
		}
	}()
	f()
}

// Panics returns what f panicked with, or nil.
func Panics(f func()) (r any) {
	defer func() { r = recover() }()
	f()
	return nil
}

// Resource is one resource of a template.
type Resource struct {
	ID         string
	Type       string
	Properties map[string]any
	DependsOn  []string
}

// Resources returns the template's resources of one type, sorted by logical id.
func Resources(t *testing.T, tmpl assertions.Template, typ string) []Resource {
	t.Helper()
	b, err := json.Marshal(tmpl.ToJSON())
	if err != nil {
		t.Fatalf("template to JSON: %v", err)
	}
	var doc struct {
		Resources map[string]struct {
			Type       string         `json:"Type"`
			Properties map[string]any `json:"Properties"`
			DependsOn  any            `json:"DependsOn"`
		} `json:"Resources"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("template: %v", err)
	}
	var out []Resource
	for id, r := range doc.Resources {
		if r.Type != typ {
			continue
		}
		res := Resource{ID: id, Type: r.Type, Properties: r.Properties}
		switch d := r.DependsOn.(type) {
		case string:
			res.DependsOn = []string{d}
		case []any:
			for _, x := range d {
				res.DependsOn = append(res.DependsOn, fmt.Sprint(x))
			}
		}
		out = append(out, res)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// List returns v as a list: a JSON array as is, anything else as one element.
func List(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// Tags returns a CloudFormation Tags list as a map.
func Tags(v any) map[string]string {
	out := map[string]string{}
	for _, x := range List(v) {
		if m, ok := x.(map[string]any); ok {
			out[fmt.Sprint(m["Key"])] = fmt.Sprint(m["Value"])
		}
	}
	return out
}

// JSON renders v compactly, for matching inside intrinsic functions and for messages.
func JSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

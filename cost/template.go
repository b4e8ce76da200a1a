package cost

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Template is one synthesized CloudFormation template.
type Template struct {
	Name      string // the file's base name
	Resources map[string]Resource
}

// Resource is one resource of a template; Properties keeps JSON's types (map[string]any,
// []any, string, float64, bool) and intrinsic functions as they are.
type Resource struct {
	Type       string         `json:"Type"`
	Properties map[string]any `json:"Properties"`
}

// LoadDir reads the *.template.json files of dir (a cdk.out directory), sorted by name.
func LoadDir(dir string) ([]Template, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("templates: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("templates: %s is not a directory", dir)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.template.json"))
	if err != nil {
		return nil, fmt.Errorf("templates in %s: %w", dir, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.template.json in %s (run cdk synth first)", dir)
	}
	return LoadFiles(files)
}

// LoadFiles reads the given template files, sorted by name.
func LoadFiles(files []string) ([]Template, error) {
	if len(files) == 0 {
		return nil, errors.New("no template files given")
	}
	files = append([]string(nil), files...)
	sort.Strings(files)
	var out []Template
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("template: %w", err)
		}
		var t struct {
			Resources map[string]Resource `json:"Resources"`
		}
		if err := json.Unmarshal(b, &t); err != nil {
			return nil, fmt.Errorf("template %s: %w", f, err)
		}
		if t.Resources == nil {
			return nil, fmt.Errorf("template %s: no Resources", f)
		}
		out = append(out, Template{Name: filepath.Base(f), Resources: t.Resources})
	}
	return out, nil
}

// ofType returns the logical IDs of the resources of type typ, sorted.
func (t Template) ofType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// ref returns the logical ID v refers to ({"Ref": id} or {"Fn::GetAtt": [id, ...]}).
func ref(v any) (string, bool) {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return "", false
	}
	if id, ok := m["Ref"].(string); ok {
		return id, true
	}
	if a, ok := m["Fn::GetAtt"].([]any); ok && len(a) > 0 {
		id, ok := a[0].(string)
		return id, ok
	}
	return "", false
}

// get walks v by map keys and list indexes ("0").
func get(v any, path ...string) any {
	for _, p := range path {
		switch x := v.(type) {
		case map[string]any:
			v = x[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

// number reads a literal number (CloudFormation often writes them as strings); ok is false
// for an intrinsic function or anything else not known until deployment.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// str reads a literal string.
func str(v any) (string, bool) {
	s, ok := v.(string)
	return s, ok
}

// hasTag reports whether a Tags list ([{Key, Value}]) has the key.
func hasTag(tags any, key string) bool {
	_, ok := tagValue(tags, key)
	return ok
}

// tagValue returns the value of key in a Tags list, rendered if it is not a literal.
func tagValue(tags any, key string) (string, bool) {
	l, _ := tags.([]any)
	for _, t := range l {
		if k, _ := get(t, "Key").(string); k == key {
			if v, ok := get(t, "Value").(string); ok {
				return v, true
			}
			return describe(get(t, "Value")), true
		}
	}
	return "", false
}

// describe is a short rendering of an unknown value for a note.
func describe(v any) string {
	if v == nil {
		return "missing"
	}
	b, err := json.Marshal(v)
	if err != nil || len(b) > 60 {
		return "an intrinsic function"
	}
	return string(b)
}

package tailnet

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// onlyImporters are the directories (relative to the module root) allowed to import
// tailscale.com.
var onlyImporters = map[string]bool{"agent/tailnet": true}

// TestOnlyThisPackageImportsTailscale parses the imports of every .go file of the module
// (nested modules such as tools/ and cdk/ excluded) and fails if a package other than this one
// imports tailscale.com.
func TestOnlyThisPackageImportsTailscale(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module github.com/headnat/headnat\n") {
		t.Fatalf("%s is not the module root: %v", root, err)
	}
	fset := token.NewFileSet()
	files := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "node_modules") {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil && path != root {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		files++
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if (p == "tailscale.com" || strings.HasPrefix(p, "tailscale.com/")) && !onlyImporters[filepath.ToSlash(rel)] {
				t.Errorf("%s imports %s: only agent/tailnet may import tailscale.com", filepath.Join(rel, filepath.Base(path)), p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 50 {
		t.Fatalf("parsed only %d files: is the walk looking at the module?", files)
	}
}

// Package benchdoc writes benchmark figures into their own sections of docs/BENCHMARKS.md and
// describes the machine they ran on.
package benchdoc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Markers are the lines around a benchmark's section: only the text between them (inclusive)
// is replaced, so other benchmarks keep their sections.
func Markers(name string) (begin, end string) {
	return "<!-- BEGIN " + name + " -->", "<!-- END " + name + " -->"
}

// Replace returns doc with the named section replaced by section (which carries the
// markers), or with the section appended when doc has none.
func Replace(doc, name, section string) (string, error) {
	begin, end := Markers(name)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	switch {
	case i < 0 && j < 0:
		if doc == "" {
			doc = "# Benchmarks\n"
		}
		return strings.TrimRight(doc, "\n") + "\n\n" + section, nil
	case i < 0 || j < i:
		return "", fmt.Errorf("%s markers are unbalanced", name)
	case strings.Contains(doc[j+len(end):], begin):
		return "", fmt.Errorf("%s section appears twice", name)
	}
	return doc[:i] + section + strings.TrimPrefix(doc[j+len(end):], "\n"), nil
}

// Update replaces the named section of the file at path (creating the file if needed).
func Update(path, name, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	doc, err := Replace(string(b), name, section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

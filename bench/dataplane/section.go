package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// The markers around this benchmark's section of docs/BENCHMARKS.md: only the text between
// them (inclusive) is replaced, so other benchmarks keep their sections.
const (
	sectionBegin = "<!-- BEGIN bench-dataplane -->"
	sectionEnd   = "<!-- END bench-dataplane -->"
)

// replaceSection returns doc with its section replaced by section (which carries the
// markers), or with the section appended when doc has none.
func replaceSection(doc, section string) (string, error) {
	i := strings.Index(doc, sectionBegin)
	j := strings.Index(doc, sectionEnd)
	switch {
	case i < 0 && j < 0:
		if doc == "" {
			doc = "# Benchmarks\n"
		}
		return strings.TrimRight(doc, "\n") + "\n\n" + section, nil
	case i < 0 || j < i:
		return "", errors.New("bench-dataplane markers are unbalanced")
	}
	if strings.Contains(doc[j+len(sectionEnd):], sectionBegin) {
		return "", errors.New("bench-dataplane section appears twice")
	}
	rest := strings.TrimPrefix(doc[j+len(sectionEnd):], "\n")
	return doc[:i] + section + rest, nil
}

func updateSection(path, section string) error {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	doc, err := replaceSection(string(b), section)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(doc), 0o644)
}

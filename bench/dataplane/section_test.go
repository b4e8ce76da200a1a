package main

import "testing"

func TestReplaceSection(t *testing.T) {
	sec := sectionBegin + "\nnew\n" + sectionEnd + "\n"
	for _, tt := range []struct{ doc, want string }{
		{"", "# Benchmarks\n\n" + sec},
		{"# Benchmarks\n\n## other\nx\n", "# Benchmarks\n\n## other\nx\n\n" + sec},
		{"# B\n\n" + sectionBegin + "\nold\n" + sectionEnd + "\n\n## other\n", "# B\n\n" + sec + "\n## other\n"},
	} {
		got, err := replaceSection(tt.doc, sec)
		if err != nil || got != tt.want {
			t.Errorf("replaceSection(%q) = %q, %v; want %q", tt.doc, got, err, tt.want)
		}
	}
	for _, bad := range []string{sectionEnd + sectionBegin, sectionBegin, sec + sec} {
		if _, err := replaceSection(bad, sec); err == nil {
			t.Errorf("replaceSection(%q) accepted it", bad)
		}
	}
}

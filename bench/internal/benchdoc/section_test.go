package benchdoc

import "testing"

func TestReplaceSection(t *testing.T) {
	begin, end := Markers("bench-failover")
	sec := begin + "\nnew\n" + end + "\n"
	other := "<!-- BEGIN bench-dataplane -->\nkeep\n<!-- END bench-dataplane -->\n"
	for _, tt := range []struct{ doc, want string }{
		{"", "# Benchmarks\n\n" + sec},
		{"# Benchmarks\n\n" + other, "# Benchmarks\n\n" + other + "\n" + sec},
		{"# B\n\n" + begin + "\nold\n" + end + "\n\n" + other, "# B\n\n" + sec + "\n" + other},
	} {
		got, err := Replace(tt.doc, "bench-failover", sec)
		if err != nil || got != tt.want {
			t.Errorf("Replace(%q) = %q, %v; want %q", tt.doc, got, err, tt.want)
		}
	}
	for _, bad := range []string{end + begin, begin, sec + sec} {
		if _, err := Replace(bad, "bench-failover", sec); err == nil {
			t.Errorf("Replace(%q) accepted it", bad)
		}
	}
}

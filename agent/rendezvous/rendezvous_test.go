package rendezvous

import "testing"

// The values are pinned (checked against `printf 'key\0member' | sha256sum`): a change here
// would move route ownership between agents of different versions.
func TestWeightPinned(t *testing.T) {
	for _, c := range []struct {
		key, member string
		want        uint64
	}{
		{"rtb-a", "i-a", 0x9cf552b53ac73323},
		{"rtb-a", "i-b", 0x5a7f507b578d4062},
		{"rtb-0123456789abcdef0", "i-0fedcba9876543210", 0x0dbc788db88e1a1f},
		{"eipalloc-1", "i-1", 0x3241c3dfea8d2231},
		{"", "", 0x6e340b9cffb37a98},
	} {
		if got := Weight(c.key, c.member); got != c.want {
			t.Errorf("Weight(%q, %q) = %#x, want %#x", c.key, c.member, got, c.want)
		}
	}
}

// The separator keeps ("ab", "c") and ("a", "bc") apart.
func TestWeightSeparatesKeyAndMember(t *testing.T) {
	if Weight("ab", "c") == Weight("a", "bc") {
		t.Error(`Weight("ab", "c") == Weight("a", "bc")`)
	}
}

package kubelet

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "b$(A)", "EMPTY": ""}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	tests := []struct {
		name, in, want string
	}{
		{"plain", "hello", "hello"},
		{"reference", "$(A)", "a"},
		{"embedded", "x$(A)y$(A)z", "xayaz"},
		{"value not re-expanded", "$(B)", "b$(A)"},
		{"unknown kept", "$(NOPE)", "$(NOPE)"},
		{"empty value", "<$(EMPTY)>", "<>"},
		{"escaped", "$$(A)", "$(A)"},
		{"double dollar", "$$", "$"},
		{"triple dollar then ref", "$$$(A)", "$a"},
		{"lone dollar at end", "cost$", "cost$"},
		{"dollar before letter", "$A", "$A"},
		{"unterminated", "$(A", "$(A"},
		{"unterminated then ref", "$($(A)", "$($(A)"},
		{"empty name", "$()", "$()"},
		{"shell style kept", "${A}", "${A}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expand(tt.in, lookup); got != tt.want {
				t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "$(A)", "$$(A)", "$(", "$", "a$b", "$($(A))", "$$$", "$(A)$(B", "ü$(Ä)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		none := func(string) (string, bool) { return "", false }
		// Escaping every '$' makes any string expand to itself.
		if got := expand(strings.ReplaceAll(s, "$", "$$"), none); got != s {
			t.Fatalf("escaped %q expanded to %q", s, got)
		}
		// Without "$$" and with no known names, nothing changes.
		if !strings.Contains(s, "$$") {
			if got := expand(s, none); got != s {
				t.Fatalf("expand(%q) with no names = %q", s, got)
			}
		}
		// Every name resolves: no complete reference survives, and
		// expansion never reads past the input.
		all := func(string) (string, bool) { return "", true }
		got := expand(s, all)
		if len(got) > len(s) {
			t.Fatalf("expand(%q) with empty values grew to %q", s, got)
		}
	})
}

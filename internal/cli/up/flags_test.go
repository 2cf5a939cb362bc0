package up

import (
	"strings"
	"testing"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"127.0.1.0/24", "127.0.1.0/24", false},
		{"127.0.1.7/24", "127.0.1.0/24", false},
		{"10.0.0.0/24", "", true},
		{"127.0.1.0/30", "", true},
		{"::1/128", "", true},
		{"nonsense", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			p, err := parsePrefix("--pod-net", tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parsePrefix(%q) error %v", tt.in, err)
			}
			if err == nil && p.String() != tt.want {
				t.Errorf("parsePrefix(%q) = %s, want %s", tt.in, p, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), "--pod-net") {
				t.Errorf("error %q does not name the flag", err)
			}
		})
	}
}

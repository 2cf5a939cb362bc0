package session_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/session"
)

const validID = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQ" // 24 bytes in base64url

func TestDecodeCookie(t *testing.T) {
	good := session.EncodeCookie(testSecret, validID)
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name    string
		secret  []byte
		value   string
		wantID  string
		wantErr string
	}{
		{"valid", testSecret, good, validID, ""},
		{"empty", testSecret, "", "", "length 0"},
		{"too long", testSecret, good + "A", "", "length"},
		{"too short", testSecret, good[:len(good)-1], "", "length"},
		{"missing dot", testSecret, strings.Replace(good, ".", "A", 1), "", "no '.'"},
		{"id flipped", testSecret, flip(good, 3), "", "signature mismatch"},
		{"signature flipped", testSecret, flip(good, len(good)-5), "", "signature mismatch"},
		{"non-base64 id", testSecret, "!" + good[1:], "", "session id"},
		{"non-base64 signature", testSecret, good[:len(good)-1] + "=", "", "signature is not"},
		{"non-canonical last char", testSecret, good[:len(good)-1] + nonCanonical(good[len(good)-1]), "", "signature is not"},
		{"other secret", []byte("another secret of thirty-two bytes.."), good, "", "signature mismatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := session.DecodeCookie(tt.secret, tt.value)
			if tt.wantErr == "" {
				if err != nil || id != tt.wantID {
					t.Fatalf("DecodeCookie = %q, %v; want %q", id, err, tt.wantID)
				}
				return
			}
			if !errors.Is(err, session.ErrInvalidCookie) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("DecodeCookie error = %v, want ErrInvalidCookie containing %q", err, tt.wantErr)
			}
			if id != "" {
				t.Errorf("DecodeCookie returned id %q with an error", id)
			}
		})
	}
}

// nonCanonical returns a base64url character that decodes to the same bytes
// as c in the last position of a 32-byte encoding (only the top 4 bits of
// the last character count) but is a different character.
func nonCanonical(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, c)
	return string(alphabet[i^1])
}

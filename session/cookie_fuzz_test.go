package session_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/session"
)

// FuzzDecodeCookie fuzzes the cookie decoder twice per input.
//
// As the client sent it: no input makes the decoder panic, every error
// wraps ErrInvalidCookie, and a value that decodes is exactly what
// EncodeCookie makes for its ID.
//
// As the ID of a cookie signed with the secret: a random value almost
// never gets past the length and the signature, so fuzzing raw values
// alone explores two branches and then stalls: every input that reached
// a new count of loop iterations in base64 or SHA-256 went to the
// minimizer, whose work is quadratic in the input's length, at a few
// thousand runs a second (the session test binary instruments go-redis
// too, and every run walks its counters), so both workers spent most of a
// 20s run minimizing inputs the decoder had rejected at the same check.
// Inputs are capped just above a cookie's length, and signing the
// input first takes the fuzzer past the signature to the ID parser, and
// the decoder must accept exactly the canonical base64url encodings of 24
// bytes and return them unchanged.
func FuzzDecodeCookie(f *testing.F) {
	good := session.EncodeCookie(testSecret, validID)
	maxFuzzLen := len(good) + 8
	for _, seed := range []string{
		validID, good, "", ".", good[:40], strings.ToUpper(validID),
		validID[:31] + nonCanonical(validID[31]), validID[:31] + "=", "!" + validID[1:],
		session.EncodeCookie([]byte("another secret of thirty-two bytes.."), validID),
	} {
		f.Add(seed)
	}
	canonical := base64.RawURLEncoding.Strict()
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > maxFuzzLen {
			// The decoder rejects every value longer than a cookie on its
			// length alone; longer inputs only give the minimizer a
			// quadratic amount of work (see above).
			return
		}
		checkDecoded(t, s)

		id, err := session.DecodeCookie(testSecret, session.EncodeCookie(testSecret, s))
		raw, derr := canonical.DecodeString(s)
		wantOK := derr == nil && len(raw) == 24 && canonical.EncodeToString(raw) == s
		switch {
		case wantOK && (err != nil || id != s):
			t.Fatalf("signed cookie of valid id %q decoded to %q, %v", s, id, err)
		case !wantOK && err == nil:
			t.Fatalf("signed cookie of id %q, not 24 bytes of canonical base64url, decoded to %q", s, id)
		case err != nil && !errors.Is(err, session.ErrInvalidCookie):
			t.Fatalf("error %v does not wrap ErrInvalidCookie", err)
		}
	})
}

func checkDecoded(t *testing.T, value string) {
	t.Helper()
	id, err := session.DecodeCookie(testSecret, value)
	if err != nil {
		if !errors.Is(err, session.ErrInvalidCookie) {
			t.Fatalf("error %v does not wrap ErrInvalidCookie", err)
		}
		return
	}
	if got := session.EncodeCookie(testSecret, id); got != value {
		t.Fatalf("%q decoded to id %q, whose cookie is %q", value, id, got)
	}
}

package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// CookieSecure says when the session cookie carries the Secure attribute.
// Browsers send a Secure cookie only over HTTPS (and to localhost), so a
// session cannot leak over a plain-HTTP request.
type CookieSecure string

// The values of [CookieSecure], as the COOKIE_SECURE setting spells them.
const (
	// CookieSecureAlways marks every cookie Secure: right whenever clients
	// reach the service over HTTPS, as behind a TLS-terminating Ingress,
	// however the proxy labels the request. The default.
	CookieSecureAlways CookieSecure = "always"
	// CookieSecureNever marks no cookie Secure: for plain-HTTP set-ups on
	// hosts other than localhost, such as a test cluster without TLS.
	CookieSecureNever CookieSecure = "never"
	// CookieSecureForwarded marks the cookie Secure when the request came
	// over TLS or carries "X-Forwarded-Proto: https". Use it only behind a
	// proxy that terminates TLS and overwrites that header, and only when
	// the same service is also reached over plain HTTP.
	CookieSecureForwarded CookieSecure = "forwarded"
)

// ParseCookieSecure returns the CookieSecure named s; "" means
// [CookieSecureAlways]. Other names are an error quoting s.
func ParseCookieSecure(s string) (CookieSecure, error) {
	switch v := CookieSecure(s); v {
	case "":
		return CookieSecureAlways, nil
	case CookieSecureAlways, CookieSecureNever, CookieSecureForwarded:
		return v, nil
	}
	return "", fmt.Errorf("session: cookie security %q is not always, never or forwarded", s)
}

// ErrInvalidCookie is wrapped by [DecodeCookie] errors: the value is
// malformed or its signature does not match.
var ErrInvalidCookie = errors.New("session: invalid cookie")

const (
	idBytes  = 24 // 192 bits from crypto/rand
	macBytes = sha256.Size
	// macDomain keeps these MACs apart from any other use of the secret.
	macDomain = "shoal-session-v1:"
)

var (
	b64         = base64.RawURLEncoding.Strict()
	idLen       = b64.EncodedLen(idBytes)
	macLen      = b64.EncodedLen(macBytes)
	cookieLen   = idLen + 1 + macLen
	errCookieID = fmt.Errorf("%w: session id is not %d base64url characters", ErrInvalidCookie, idLen)
)

// newID returns a fresh random session ID.
func newID() string {
	var b [idBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return weak bytes)
	return b64.EncodeToString(b[:])
}

func sign(secret []byte, id string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(macDomain))
	mac.Write([]byte(id))
	return mac.Sum(nil)
}

// EncodeCookie returns the cookie value naming session id, signed with
// secret: "<id>.<base64url HMAC-SHA256>". id must be a session ID as this
// package makes them; other IDs give values DecodeCookie rejects.
func EncodeCookie(secret []byte, id string) string {
	return id + "." + b64.EncodeToString(sign(secret, id))
}

// DecodeCookie verifies a cookie value made by [EncodeCookie] with the same
// secret and returns the session ID it names. Any other input, including a
// valid value signed with another secret, gives an error wrapping
// [ErrInvalidCookie]. It does not consult any store.
func DecodeCookie(secret []byte, value string) (string, error) {
	if len(value) != cookieLen {
		return "", fmt.Errorf("%w: length %d, want %d", ErrInvalidCookie, len(value), cookieLen)
	}
	id, sig := value[:idLen], value[idLen+1:]
	if value[idLen] != '.' {
		return "", fmt.Errorf("%w: no '.' between id and signature", ErrInvalidCookie)
	}
	var raw [idBytes]byte
	if n, err := b64.Decode(raw[:], []byte(id)); err != nil || n != idBytes {
		return "", errCookieID
	}
	var got [macBytes + 1]byte // room for the byte a bad length would add
	if n, err := b64.Decode(got[:], []byte(sig)); err != nil || n != macBytes {
		return "", fmt.Errorf("%w: signature is not base64url HMAC-SHA256", ErrInvalidCookie)
	}
	if !hmac.Equal(got[:macBytes], sign(secret, id)) {
		return "", fmt.Errorf("%w: signature mismatch", ErrInvalidCookie)
	}
	return id, nil
}

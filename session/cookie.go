package session

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"sync"
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
	// idLen and macLen are the base64url lengths of an ID and a MAC; 24
	// bytes fill 32 characters exactly, so every 32 characters of the
	// alphabet are the one encoding of some ID.
	idLen     = idBytes / 3 * 4
	macLen    = (macBytes*8 + 5) / 6
	cookieLen = idLen + 1 + macLen
)

var (
	b64         = base64.RawURLEncoding.Strict()
	errCookieID = fmt.Errorf("%w: session id is not %d base64url characters", ErrInvalidCookie, idLen)
)

// newID returns a fresh random session ID.
func newID() string {
	var b [idBytes]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return weak bytes)
	return b64.EncodeToString(b[:])
}

// signer computes cookie MACs under one secret. An HMAC costs five
// allocations to set up and none to reuse, so a Manager keeps a pool of
// them: verifying a cookie then allocates nothing.
type signer struct {
	secret []byte
	pool   sync.Pool // of *mac
}

// mac is one HMAC with the buffers its input and output go through, so
// that no string or array escapes to the heap on its way into hash.Hash.
type mac struct {
	h    hash.Hash
	used bool // h has summed before and must be reset
	in   [len(macDomain) + idLen]byte
	sum  [macBytes]byte
	enc  [macLen]byte // base64url of sum
}

func newSigner(secret []byte) *signer {
	s := &signer{secret: secret}
	s.pool.New = func() any { return s.newMAC() }
	return s
}

func (s *signer) newMAC() *mac {
	m := &mac{h: hmac.New(sha256.New, s.secret)}
	copy(m.in[:], macDomain)
	return m
}

func (s *signer) get() *mac  { return s.pool.Get().(*mac) }
func (s *signer) put(m *mac) { s.pool.Put(m) }

// sign computes the MAC of id, which must be idLen bytes long, into m.sum
// and its base64url encoding into m.enc.
func (m *mac) sign(id string) {
	copy(m.in[len(macDomain):], id)
	if m.used {
		// The first Reset saves the keyed state, which later ones restore:
		// work a MAC used once would waste.
		m.h.Reset()
	}
	m.used = true
	m.h.Write(m.in[:])
	m.h.Sum(m.sum[:0])
	b64.Encode(m.enc[:], m.sum[:])
}

// appendCookie appends the cookie value naming id to b.
func (m *mac) appendCookie(b []byte, id string) []byte {
	m.sign(id)
	b = append(b, id...)
	b = append(b, '.')
	return append(b, m.enc[:]...)
}

// EncodeCookie returns the cookie value naming session id, signed with
// secret: "<id>.<base64url HMAC-SHA256>". id must be a session ID as this
// package makes them; other IDs give values DecodeCookie rejects.
func EncodeCookie(secret []byte, id string) string {
	if len(id) != idLen {
		// Not an ID of this package: signed the same way, for callers
		// (tests) that check DecodeCookie rejects it.
		h := hmac.New(sha256.New, secret)
		h.Write([]byte(macDomain))
		h.Write([]byte(id))
		return id + "." + b64.EncodeToString(h.Sum(nil))
	}
	m := (&signer{secret: secret}).newMAC()
	var b [cookieLen]byte
	return string(m.appendCookie(b[:0], id))
}

// DecodeCookie verifies a cookie value made by [EncodeCookie] with the same
// secret and returns the session ID it names. Any other input, including a
// valid value signed with another secret, gives an error wrapping
// [ErrInvalidCookie]. It does not consult any store.
func DecodeCookie(secret []byte, value string) (string, error) {
	return (&signer{secret: secret}).decode(value, nil)
}

// decode is DecodeCookie under s's secret, computing the MAC with m, or
// with a new one when m is nil.
func (s *signer) decode(value string, m *mac) (string, error) {
	if len(value) != cookieLen {
		return "", fmt.Errorf("%w: length %d, want %d", ErrInvalidCookie, len(value), cookieLen)
	}
	id, sig := value[:idLen], value[idLen+1:]
	if value[idLen] != '.' {
		return "", fmt.Errorf("%w: no '.' between id and signature", ErrInvalidCookie)
	}
	for i := range len(id) {
		if !isBase64URL(id[i]) {
			return "", errCookieID
		}
	}
	if m == nil {
		m = s.newMAC()
	}
	m.sign(id)
	// Comparing the encodings, in constant time, accepts exactly the
	// canonical encoding of the right MAC, as decoding strictly and then
	// comparing MACs would, without decoding.
	var diff byte
	for i := range macLen {
		diff |= m.enc[i] ^ sig[i]
	}
	if diff == 0 {
		return id, nil
	}
	var got [macBytes + 1]byte // room for the byte a bad length would add
	var raw [macLen]byte
	copy(raw[:], sig)
	if n, err := b64.Decode(got[:], raw[:]); err != nil || n != macBytes {
		return "", fmt.Errorf("%w: signature is not base64url HMAC-SHA256", ErrInvalidCookie)
	}
	return "", fmt.Errorf("%w: signature mismatch", ErrInvalidCookie)
}

// verify is DecodeCookie under s's secret with a pooled MAC.
func (s *signer) verify(value string) (string, error) {
	m := s.get()
	defer s.put(m)
	return s.decode(value, m)
}

func isBase64URL(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

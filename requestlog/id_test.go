package requestlog_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/requestlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seen serves the ID a handler sees on its context and its request header.
type seen struct{ ctx, header string }

func serveID(t *testing.T, h http.Header) (seen, *httptest.ResponseRecorder) {
	t.Helper()
	var got seen
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = seen{requestlog.IDFromContext(r.Context()), r.Header.Get(requestlog.HeaderID)}
	})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header = h
	w := httptest.NewRecorder()
	requestlog.ID(next).ServeHTTP(w, r)
	return got, w
}

func TestIDTakenOrReplaced(t *testing.T) {
	max := strings.Repeat("a", 128)
	tests := []struct {
		name   string
		values []string // the request's X-Request-ID values
		keep   bool
	}{
		{"uuid", []string{"0b6e1b5c-7f5e-4c1a-9d2e-3f1f6f9c2a10"}, true},
		{"printable punctuation", []string{"a!#$%&'()*+,-./:;<=>?@[\\]^_`{|}~z"}, true},
		{"one byte", []string{"x"}, true},
		{"128 bytes", []string{max}, true},
		{"none", nil, false},
		{"empty", []string{""}, false},
		{"129 bytes", []string{max + "a"}, false},
		{"10 KB", []string{strings.Repeat("b", 10<<10)}, false},
		{"space", []string{"a b"}, false},
		{"leading space", []string{" ab"}, false},
		{"tab", []string{"a\tb"}, false},
		{"newline", []string{"a\nb"}, false},
		{"CRLF injection", []string{"a\r\nSet-Cookie: x=1"}, false},
		{"NUL", []string{"a\x00b"}, false},
		{"escape sequence", []string{"\x1b[31mred"}, false},
		{"DEL", []string{"a\x7fb"}, false},
		{"non-ASCII", []string{"caf\u00e9"}, false},
		{"invalid UTF-8", []string{"a\xffb"}, false},
		{"two values", []string{"a", "b"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.values {
				h.Add(requestlog.HeaderID, v)
			}
			got, w := serveID(t, h)
			if tt.keep {
				if got.ctx != tt.values[0] {
					t.Errorf("context ID = %q, want the caller's %q", got.ctx, tt.values[0])
				}
			} else if !isGenerated(got.ctx) {
				t.Errorf("context ID = %.40q, want a generated one", got.ctx)
			}
			if got.header != got.ctx {
				t.Errorf("request header = %.40q, want the context's %q", got.header, got.ctx)
			}
			if resp := w.Result().Header.Values(requestlog.HeaderID); len(resp) != 1 || resp[0] != got.ctx {
				t.Errorf("response header = %.40q, want [%q]", resp, got.ctx)
			}
		})
	}
}

func isGenerated(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

func TestIDGeneratedUnique(t *testing.T) {
	const n = 10000
	ids := make(map[string]bool, n)
	for range n {
		got, _ := serveID(t, http.Header{})
		if !isGenerated(got.ctx) {
			t.Fatalf("generated ID %q: want 32 hex digits", got.ctx)
		}
		if ids[got.ctx] {
			t.Fatalf("ID %q generated twice", got.ctx)
		}
		ids[got.ctx] = true
	}
}

// TestIDOverHTTP checks the round trip over a real connection: the ID the
// handler sees is the one the client gets back, taken or generated.
func TestIDOverHTTP(t *testing.T) {
	srv := httptest.NewServer(requestlog.ID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, requestlog.IDFromContext(r.Context()))
	})))
	defer srv.Close()
	client := srv.Client()
	client.Timeout = 30 * time.Second
	defer client.CloseIdleConnections()

	for _, sent := range []string{"caller-chosen-42", "", "with space", strings.Repeat("z", 10<<10)} {
		req, err := http.NewRequest("GET", srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sent != "" {
			req.Header.Set(requestlog.HeaderID, sent)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := resp.Header.Get(requestlog.HeaderID)
		if got != string(body) {
			t.Errorf("sent %.20q: response header %q, handler saw %q", sent, got, body)
		}
		if want := sent == "caller-chosen-42"; (got == sent) != want {
			t.Errorf("sent %.20q: got %q back; kept = %v, want %v", sent, got, got == sent, want)
		}
	}
}

func TestContextWithID(t *testing.T) {
	ctx := t.Context()
	if id := requestlog.IDFromContext(ctx); id != "" {
		t.Errorf("IDFromContext(no ID) = %q, want empty", id)
	}
	if id := requestlog.IDFromContext(requestlog.ContextWithID(ctx, "job-7")); id != "job-7" {
		t.Errorf("IDFromContext = %q, want job-7", id)
	}
}

func TestHeaderKeyCanonical(t *testing.T) {
	// id.go indexes headers by the canonical form directly.
	if got := http.CanonicalHeaderKey(requestlog.HeaderID); got != "X-Request-Id" {
		t.Errorf("canonical %s = %s, want X-Request-Id", requestlog.HeaderID, got)
	}
}

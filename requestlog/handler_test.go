package requestlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/slogtest"

	"github.com/shoal-dev/shoal/requestlog"
)

func traceOf(ctx context.Context) string {
	tid, _ := ctx.Value(traceKey{}).(string)
	return tid
}

type traceKey struct{}

func TestHandler(t *testing.T) {
	ctx := requestlog.ContextWithID(context.Background(), "req-1")
	traced := context.WithValue(ctx, traceKey{}, "tr-9")
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want string // the JSON line without time and level
	}{
		{"no context", func(l *slog.Logger) {
			l.Info("m", "a", 1)
		}, `{"msg":"m","a":1}`},
		{"context without ID", func(l *slog.Logger) {
			l.InfoContext(context.Background(), "m", "a", 1)
		}, `{"msg":"m","a":1}`},
		{"ID", func(l *slog.Logger) {
			l.InfoContext(ctx, "m", "a", 1)
		}, `{"msg":"m","request_id":"req-1","a":1}`},
		{"ID and trace", func(l *slog.Logger) {
			l.InfoContext(traced, "m")
		}, `{"msg":"m","request_id":"req-1","trace_id":"tr-9"}`},
		{"trace without ID", func(l *slog.Logger) {
			l.InfoContext(context.WithValue(context.Background(), traceKey{}, "tr-9"), "m")
		}, `{"msg":"m","trace_id":"tr-9"}`},
		{"WithAttrs", func(l *slog.Logger) {
			l.With("svc", "a").InfoContext(ctx, "m", "b", 2)
		}, `{"msg":"m","svc":"a","request_id":"req-1","b":2}`},
		{"WithGroup", func(l *slog.Logger) {
			l.WithGroup("g").InfoContext(traced, "m", "b", 2)
		}, `{"msg":"m","request_id":"req-1","trace_id":"tr-9","g":{"b":2}}`},
		{"attrs around groups", func(l *slog.Logger) {
			l.With("svc", "a").WithGroup("g").With("x", 1).WithGroup("h").With("y", 2).InfoContext(ctx, "m", "z", 3)
		}, `{"msg":"m","svc":"a","request_id":"req-1","g":{"x":1,"h":{"y":2,"z":3}}}`},
		{"group without attrs", func(l *slog.Logger) {
			l.WithGroup("g").WithGroup("h").InfoContext(ctx, "m")
		}, `{"msg":"m","request_id":"req-1"}`},
		{"empty group name", func(l *slog.Logger) {
			l.WithGroup("").InfoContext(ctx, "m", "b", 2)
		}, `{"msg":"m","request_id":"req-1","b":2}`},
		{"group without context", func(l *slog.Logger) {
			l.WithGroup("g").With("x", 1).Info("m", "b", 2)
		}, `{"msg":"m","g":{"x":1,"b":2}}`},
		{"record has its own request_id", func(l *slog.Logger) {
			l.InfoContext(traced, "m", "request_id", "mine")
		}, `{"msg":"m","trace_id":"tr-9","request_id":"mine"}`},
		{"record has its own trace_id", func(l *slog.Logger) {
			l.InfoContext(traced, "m", "trace_id", "mine")
		}, `{"msg":"m","request_id":"req-1","trace_id":"mine"}`},
		{"a grouped request_id is not the record's", func(l *slog.Logger) {
			l.WithGroup("g").InfoContext(ctx, "m", "request_id", "inner")
		}, `{"msg":"m","request_id":"req-1","g":{"request_id":"inner"}}`},
		{"siblings do not share groups", func(l *slog.Logger) {
			g := l.WithGroup("g").With("x", 1)
			_ = g.With("y", 2)
			g.With("z", 3).InfoContext(ctx, "m")
		}, `{"msg":"m","request_id":"req-1","g":{"x":1,"z":3}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			json := slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
					return slog.Attr{}
				}
				return a
			}})
			tt.log(slog.New(requestlog.Handler(json, traceOf)))
			if got := strings.TrimSpace(buf.String()); got != tt.want {
				t.Errorf("logged\n\t%s\nwant\n\t%s", got, tt.want)
			}
		})
	}
}

// TestHandlerConformance runs the standard library's handler tests on the
// wrapper, with and without a request ID on the context.
func TestHandlerConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		ctx  context.Context
	}{
		{"without ID", context.Background()},
		{"with ID", requestlog.ContextWithID(context.Background(), "req-1")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			newHandler := func(*testing.T) slog.Handler {
				buf.Reset()
				return requestlog.Handler(slog.NewJSONHandler(&buf, nil), traceOf)
			}
			result := func(t *testing.T) map[string]any {
				var m map[string]any
				if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
					t.Fatal(err)
				}
				if tt.ctx != context.Background() {
					if m["request_id"] != "req-1" {
						t.Errorf("request_id = %v, want req-1", m["request_id"])
					}
					delete(m, "request_id")
				}
				return m
			}
			// slogtest logs with context.Background(); the ID comes in
			// through a handler that substitutes tt.ctx.
			slogtest.Run(t, func(t *testing.T) slog.Handler { return withCtx{newHandler(t), tt.ctx} }, result)
		})
	}
}

// withCtx hands its inner handler ctx instead of the caller's context.
type withCtx struct {
	slog.Handler
	ctx context.Context
}

func (h withCtx) Handle(_ context.Context, r slog.Record) error { return h.Handler.Handle(h.ctx, r) }
func (h withCtx) WithAttrs(as []slog.Attr) slog.Handler {
	return withCtx{h.Handler.WithAttrs(as), h.ctx}
}
func (h withCtx) WithGroup(name string) slog.Handler {
	return withCtx{h.Handler.WithGroup(name), h.ctx}
}

// TestHandlerMiddlewareLine checks that a Middleware line logged through
// Handler carries request_id and trace_id once each.
func TestHandlerMiddlewareLine(t *testing.T) {
	out := newLines()
	logger := slog.New(requestlog.Handler(slog.NewJSONHandler(out, nil), traceOf))
	h := requestlog.ID(requestlog.Middleware(requestlog.Config{Logger: logger, TraceID: traceOf}, status(200)))
	r := newRequest(t, context.WithValue(context.Background(), traceKey{}, "tr-9"))
	r.Header.Set(requestlog.HeaderID, "req-1")
	h.ServeHTTP(discard{http.Header{}}, r)
	line := <-out.c
	for _, key := range []string{`"request_id":`, `"trace_id":`} {
		if n := bytes.Count(line, []byte(key)); n != 1 {
			t.Errorf("%s appears %d times in %s", key, n, line)
		}
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	if got := []any{m["request_id"], m["trace_id"]}; !reflect.DeepEqual(got, []any{"req-1", "tr-9"}) {
		t.Errorf("request_id, trace_id = %v, want req-1, tr-9", got)
	}
}

package requestlog

import (
	"context"
	"log/slog"
	"slices"
)

// The keys under which request identity appears in log records.
const (
	keyID      = "request_id"
	keyTraceID = "trace_id"
)

// Handler wraps h so that every record logged with a context (InfoContext
// and the like) made while serving a request carries request_id, and
// trace_id when traceID is non-nil and returns non-empty for the context.
// Both are top-level fields even when the logger has opened groups, so a
// query on request_id finds every line; a record that already carries one
// of them at top level (the line of [Middleware]) keeps its own.
//
// Groups opened with WithGroup are applied by the wrapper rather than by h,
// which is what keeps the two fields outside them; attributes added inside
// a group are therefore kept as they are and formatted on each record,
// where h would have formatted them once.
func Handler(h slog.Handler, traceID func(ctx context.Context) string) slog.Handler {
	return &handler{inner: h, traceID: traceID}
}

type handler struct {
	inner   slog.Handler // with the attributes added before any group
	traceID func(context.Context) string
	groups  []group // opened by WithGroup, outermost first
}

// group is one open group and the attributes added while it was the
// innermost.
type group struct {
	name  string
	attrs []slog.Attr
}

var _ slog.Handler = (*handler)(nil)

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	if len(h.groups) == 0 {
		return &handler{inner: h.inner.WithAttrs(as), traceID: h.traceID}
	}
	// Copies, never appends in place: h and its other children share them.
	groups := slices.Clone(h.groups)
	last := &groups[len(groups)-1]
	last.attrs = append(slices.Clip(last.attrs), as...)
	return &handler{inner: h.inner, traceID: h.traceID, groups: groups}
}

func (h *handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h // as slog.Handler asks
	}
	return &handler{inner: h.inner, traceID: h.traceID, groups: append(slices.Clip(h.groups), group{name: name})}
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	id := IDFromContext(ctx)
	var tid string
	if h.traceID != nil {
		tid = h.traceID(ctx)
	}
	if len(h.groups) == 0 {
		if id == "" && tid == "" {
			return h.inner.Handle(ctx, r)
		}
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case keyID:
				id = ""
			case keyTraceID:
				tid = ""
			}
			return true
		})
		if id == "" && tid == "" {
			return h.inner.Handle(ctx, r)
		}
	}
	// A new record rather than r.AddAttrs: the identity goes first, and r
	// may share its attributes with the caller's other handlers.
	nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	if id != "" {
		nr.AddAttrs(slog.String(keyID, id))
	}
	if tid != "" {
		nr.AddAttrs(slog.String(keyTraceID, tid))
	}
	if len(h.groups) == 0 {
		r.Attrs(func(a slog.Attr) bool {
			nr.AddAttrs(a)
			return true
		})
	} else {
		nr.AddAttrs(h.nest(r))
	}
	return h.inner.Handle(ctx, nr)
}

// nest builds the open groups around r's attributes, innermost first.
func (h *handler) nest(r slog.Record) slog.Attr {
	last := h.groups[len(h.groups)-1]
	attrs := make([]slog.Attr, 0, len(last.attrs)+r.NumAttrs())
	attrs = append(attrs, last.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, a)
		return true
	})
	g := slog.Attr{Key: last.name, Value: slog.GroupValue(attrs...)}
	for i := len(h.groups) - 2; i >= 0; i-- {
		outer := h.groups[i]
		g = slog.Attr{Key: outer.name, Value: slog.GroupValue(append(slices.Clip(outer.attrs), g)...)}
	}
	return g
}

package requestlog_test

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/shoal-dev/shoal/requestlog"
)

func Example() {
	// Every line logged with a request's context carries its request_id.
	// (Time, duration and peer are dropped here only to keep the output
	// stable.)
	logger := slog.New(requestlog.Handler(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			switch a.Key {
			case slog.TimeKey, "duration", "peer":
				return slog.Attr{}
			}
			return a
		},
	}), nil))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /items/{id}", func(w http.ResponseWriter, r *http.Request) {
		logger.InfoContext(r.Context(), "loading item", "id", r.PathValue("id"))
		w.Write([]byte("item"))
	})
	h := requestlog.ID(requestlog.Middleware(requestlog.Config{Logger: logger}, mux))

	r := httptest.NewRequest("GET", "/items/7", nil)
	r.Header.Set(requestlog.HeaderID, "req-1")
	h.ServeHTTP(httptest.NewRecorder(), r)
	// Output:
	// {"level":"INFO","msg":"loading item","request_id":"req-1","id":"7"}
	// {"level":"INFO","msg":"request","method":"GET","route":"GET /items/{id}","status":200,"bytes":4,"request_id":"req-1"}
}

package dashboard

import (
	"embed"
	"io/fs"
	"net/http"
)

// assets holds the page; it is read-only.
//
//go:embed static
var assets embed.FS

// Handler serves the dashboard: the page at "/" and its script and style
// sheet under /static/. Mount it at the root of the address that serves
// the API, since the page fetches api.SnapshotPath from its own origin
// (the script spells the path out; a test holds it to api's). Other paths
// get 404.
func Handler() http.Handler {
	static, err := fs.Sub(assets, "static")
	if err != nil {
		// fs.Sub fails only for an invalid path, and "static" is valid.
		panic("dashboard: " + err.Error())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	})
	for _, name := range []string{"dashboard.js", "dashboard.css"} {
		mux.HandleFunc("GET /static/"+name, func(w http.ResponseWriter, r *http.Request) {
			http.ServeFileFS(w, r, static, name)
		})
	}
	return secure(mux)
}

// secure sets headers that keep the page to its own origin: scripts,
// styles and requests come only from it, which also proves that nothing is
// loaded from a CDN.
func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		// The assets change with the binary; always revalidate.
		hdr.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

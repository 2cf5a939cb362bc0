// Command gozero is the comparison service written with go-zero: GET /hello
// returns the body of the downstream at BACKEND, GET /readyz fails while
// that downstream does, GET /trivial answers "ok". go-zero's dev server
// serves /metrics and /healthz on ADMIN_PORT.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"

	"github.com/zeromicro/go-zero/core/conf"
	"github.com/zeromicro/go-zero/rest"
	"github.com/zeromicro/go-zero/rest/httpc"
)

var configFile = flag.String("f", "etc/hello.yaml", "the config file")

type Config struct {
	rest.RestConf
	Backend string
}

func main() {
	flag.Parse()

	var c Config
	conf.MustLoad(*configFile, &c, conf.UseEnv())

	server := rest.MustNewServer(c.RestConf)
	defer server.Stop()

	server.AddRoutes([]rest.Route{
		{Method: http.MethodGet, Path: "/trivial", Handler: trivial},
		{Method: http.MethodGet, Path: "/hello", Handler: hello(c.Backend)},
		{Method: http.MethodGet, Path: "/readyz", Handler: ready(c.Backend)},
	})

	server.Start()
}

func trivial(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "ok")
}

func hello(backend string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := get(r.Context(), backend)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(body)
	}
}

func ready(backend string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := get(r.Context(), backend); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok")
	}
}

func get(ctx context.Context, url string) ([]byte, error) {
	resp, err := httpc.Do(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

package service_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/service"
)

// A program's main is one call: its own settings beside the kit's, then
// its routes, checks and upstreams.
func ExampleMain() {
	var greeting string
	bind := func(cs *config.Set) {
		cs.String(&greeting, "greeting", "GREETING", "hello", "what GET /hello answers")
	}
	setup := func(svc *service.Service) error {
		svc.HandleFunc("GET /hello", func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, greeting)
		})
		return nil
	}
	_, _ = bind, setup
	// In func main:
	//	service.Main("hello", bind, setup)
}

// A Service built and run by hand, as a test would: a route with its own
// deadline, then a stop by context.
func ExampleService() {
	svc, err := service.New(service.Options{
		Host: "127.0.0.1", DrainDelay: -1, PodName: "hello-0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	svc.Handle("GET /hello", service.WithTimeout(time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, hasDeadline := r.Context().Deadline()
		fmt.Fprintf(w, "hello (deadline set: %v)", hasDeadline)
	})))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	resp, err := http.Get(service.URL(svc.Addr()) + "/hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Header.Get("X-Served-By"), string(body))
	cancel()
	fmt.Println(<-done)
	// Output:
	// hello-0 hello (deadline set: true)
	// <nil>
}

package health_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shoal-dev/shoal/health"
)

func Example() {
	c := health.New(nil,
		health.Check{Name: "redis", Critical: true, Interval: 5 * time.Second,
			Func: func(ctx context.Context) error { return nil /* e.g. PING */ }},
		health.Check{Name: "worker-loop", Liveness: true,
			Func: func(ctx context.Context) error { return nil /* e.g. last tick recent */ }},
	)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()

	mux := http.NewServeMux()
	c.Register(mux)
	probe := func(path string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		fmt.Println(path, rec.Code)
	}

	probe("/readyz") // not started yet
	c.MarkStarted()
	for !c.Ready() { // until the first run of redis has passed
		time.Sleep(time.Millisecond)
	}
	probe("/readyz")
	c.SetDraining()
	probe("/readyz")
	probe("/livez")
	// Output:
	// /readyz 503
	// /readyz 200
	// /readyz 503
	// /livez 200
}

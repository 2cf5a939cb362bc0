package shed_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/shed"
)

func Example() {
	l, err := shed.New(shed.Config{InitialLimit: 1}, prometheus.NewRegistry())
	if err != nil {
		panic(err)
	}
	busy := make(chan struct{})
	done := make(chan struct{})
	app := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		busy <- struct{}{} // hold the only slot until released
		<-busy
	}))

	go func() {
		defer close(done)
		app.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}()
	<-busy // the first request is being served

	rec := httptest.NewRecorder()
	app.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	fmt.Println(rec.Code, rec.Header().Get("Retry-After"))

	busy <- struct{}{}
	<-done
	// Output: 503 1
}

func ExampleLimiter_Acquire() {
	l, err := shed.New(shed.Config{InitialLimit: 2}, nil)
	if err != nil {
		panic(err)
	}
	for i := range 3 {
		release, ok := l.Acquire()
		fmt.Println("job", i, "admitted:", ok)
		defer release(nil) // reports the job's latency to the limiter
	}
	// Output:
	// job 0 admitted: true
	// job 1 admitted: true
	// job 2 admitted: false
}

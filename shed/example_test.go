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

// Requests marked critical are shed last: with a limit of 2, one slot is
// kept for them.
func ExampleConfig_critical() {
	l, err := shed.New(shed.Config{
		InitialLimit: 2, MaxLimit: 2,
		Critical: func(r *http.Request) bool { return r.Header.Get("X-Priority") == "critical" },
	}, nil)
	if err != nil {
		panic(err)
	}
	started := make(chan struct{})
	release := make(chan struct{})
	app := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release // hold the slot
	}))
	serve := func(r *http.Request) (code int) {
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, r)
		return rec.Code
	}
	done := make(chan int)
	go func() { done <- serve(httptest.NewRequest("GET", "/", nil)) }()
	<-started // one request in flight: the other slot is the reserve

	fmt.Println("other:", serve(httptest.NewRequest("GET", "/", nil)))

	critical := httptest.NewRequest("GET", "/", nil)
	critical.Header.Set("X-Priority", "critical")
	go func() { done <- serve(critical) }()
	<-started
	fmt.Println("critical: admitted")

	close(release)
	<-done
	<-done
	// Output:
	// other: 503
	// critical: admitted
}

// An autoscaler reads how near a replica is to shedding: the work admitted
// over the limit. Scraped, it is shed_utilization_ratio.
func ExampleLimiter_Utilization() {
	l, err := shed.New(shed.Config{InitialLimit: 4}, nil)
	if err != nil {
		panic(err)
	}
	release, _ := l.Acquire()
	l.Acquire()
	l.Acquire()
	fmt.Printf("%.2f\n", l.Utilization())
	release(nil)
	fmt.Printf("%.2f\n", l.Utilization())
	// Output:
	// 0.75
	// 0.50
}

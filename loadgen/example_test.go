package loadgen_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shoal-dev/shoal/loadgen"
)

// Two replicas behind one handler, chosen by the balance key: the
// report tells how the requests were shared between them.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := "replica-a"
		if r.Header.Get("X-Balance-Key") == "key-1" {
			name = "replica-b"
		}
		w.Header().Set("X-Served-By", name)
	}))
	defer srv.Close()

	rep, err := loadgen.Run(context.Background(), loadgen.Config{
		URL:       srv.URL,
		Rate:      200,
		Count:     40,
		KeyHeader: "X-Balance-Key",
		Keys:      2,
		Seed:      1,
		Timeout:   30 * time.Second,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("completed:", rep.Completed, "errors:", len(rep.Errors))
	var sum float64
	for _, name := range rep.ReplicaNames() {
		sum += rep.Shares()[name]
	}
	fmt.Printf("replicas: %v, shares sum to %.2f\n", rep.ReplicaNames(), sum)
	// Output:
	// completed: 40 errors: 0
	// replicas: [replica-a replica-b], shares sum to 1.00
}

func ExampleParseSteps() {
	steps, err := loadgen.ParseSteps("100:10s,400:20s,100:10s")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(steps)
	_, err = loadgen.ParseSteps("100:10s,400")
	fmt.Println(err)
	// Output:
	// [100:10s 400:20s 100:10s]
	// loadgen: step 2 "400": want RATE:DURATION
}

func ExampleReport_CV() {
	rep := &loadgen.Report{Replicas: map[string]int64{"a": 100, "b": 100, "c": 100, "d": 0}}
	fmt.Printf("shares %.2f, cv %.3f\n", rep.Shares()["a"], rep.CV())
	// Output:
	// shares 0.33, cv 0.577
}

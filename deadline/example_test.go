package deadline_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/shoal-dev/shoal/deadline"
)

func Example() {
	// The callee: each request gets at most 10s, less if its caller has
	// less time.
	callee := httptest.NewServer(deadline.Middleware(10*time.Second, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		dl, _ := r.Context().Deadline()
		fmt.Fprintln(w, "caller's budget applies:", time.Until(dl) <= time.Second)
	})))
	defer callee.Close()

	// The caller: its context has 1s left, and Transport says so.
	client := &http.Client{Transport: deadline.Transport(http.DefaultTransport)}
	defer client.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", callee.URL, nil)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(string(body))
	// Output: caller's budget applies: true
}

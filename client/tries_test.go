package client

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Every attempt of one request carries the same Tries, and an attempt
// that runs out its per-try timeout ends with ErrPerTryTimeout as cause,
// so a balancer below can tell it from the caller giving up.
func TestAttemptsShareTriesAndPerTryCause(t *testing.T) {
	var (
		mu     sync.Mutex
		tries  []*Tries
		causes []error
	)
	hang := roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		tr := TriesFrom(r.Context())
		if tr != nil {
			tr.Add("10.0.0.1:80")
		}
		<-r.Context().Done()
		mu.Lock()
		defer mu.Unlock()
		tries = append(tries, tr)
		causes = append(causes, context.Cause(r.Context()))
		return nil, r.Context().Err()
	})
	c, err := New(Config{Transport: hang, MaxAttempts: 3, PerTryTimeout: 10 * time.Millisecond,
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://svc/", nil)
	if _, err := c.Do(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the per-try deadline", err)
	}
	if len(tries) != 3 || tries[0] == nil || tries[1] != tries[0] || tries[2] != tries[0] {
		t.Fatalf("attempts carried Tries %p, want one shared by all three", tries)
	}
	if got := len(tries[0].Addrs()); got != 3 {
		t.Fatalf("Tries holds %d addresses, want 3", got)
	}
	for i, c := range causes {
		if !errors.Is(c, ErrPerTryTimeout) {
			t.Errorf("attempt %d ended with cause %v, want ErrPerTryTimeout", i+1, c)
		}
	}

	// The caller's own cancellation has the caller's cause.
	causes = nil
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel2()
	c2, err := New(Config{Transport: hang, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	req2, _ := http.NewRequestWithContext(ctx2, http.MethodGet, "http://svc/", nil)
	_, _ = c2.Do(req2)
	if len(causes) != 1 || errors.Is(causes[0], ErrPerTryTimeout) {
		t.Fatalf("caller's deadline ended the attempt with cause %v", causes)
	}
}

func TestTriesAddrsStayUnchanged(t *testing.T) {
	var tr Tries
	if tr.Addrs() != nil {
		t.Fatal("Addrs before any attempt is not nil")
	}
	tr.Add("a:1")
	first := tr.Addrs()
	tr.Add("b:1")
	if len(first) != 1 || first[0] != "a:1" || len(tr.Addrs()) != 2 {
		t.Fatalf("Addrs %v then %v", first, tr.Addrs())
	}
	ctx := WithTries(context.Background())
	if WithTries(ctx) != ctx {
		t.Fatal("WithTries replaced an outer client's Tries")
	}
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

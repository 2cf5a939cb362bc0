package healthtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/healthtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestGetAndWait(t *testing.T) {
	c := health.New(nil, health.Check{Name: "db", Critical: true, Func: func(context.Context) error { return nil }})
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name        string
		act         func()
		path        string
		wantCode    int
		wantFailing []string
	}{
		{"pending check, not started", func() {}, "/readyz", 503, []string{"db"}},
		{"startup before MarkStarted", func() {}, "/startupz", 503, nil},
		{"started", c.MarkStarted, "/startupz", 200, nil},
		{"live", func() {}, "/livez?verbose", 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.act()
			code, rep := healthtest.Get(t, srv.URL+tt.path)
			if code != tt.wantCode || !slices.Equal(rep.Failing, tt.wantFailing) {
				t.Fatalf("%s: %d %+v, want %d failing %q", tt.path, code, rep, tt.wantCode, tt.wantFailing)
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if rep := healthtest.Wait(t, srv.URL+"/readyz", 200); rep.Status != health.StatusOK {
		t.Fatalf("report %+v", rep)
	}
	c.SetDraining()
	if rep := healthtest.Wait(t, srv.URL+"/healthz", 503); !rep.Draining || rep.Reason != "draining" {
		t.Fatalf("report %+v, want draining", rep)
	}
}

var _ healthtest.T = (*testing.T)(nil)

// printT stands in for a test's *testing.T in the example.
type printT struct{}

func (printT) Helper()                   {}
func (printT) Fatal(args ...any)         { fmt.Println(args...) }
func (printT) Fatalf(f string, a ...any) { fmt.Printf(f+"\n", a...) }

func ExampleWait() {
	c := health.New(nil)
	srv := httptest.NewServer(c.ReadyHandler())
	defer srv.Close()

	var t printT // in a test: the test's t
	c.MarkStarted()
	rep := healthtest.Wait(t, srv.URL, http.StatusOK)
	fmt.Println(rep.Status, rep.Started)
	// Output: ok true
}

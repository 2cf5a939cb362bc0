package session_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/shoal-dev/shoal/internal/testkit/redistest"
	"github.com/shoal-dev/shoal/session"
)

func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  time.Second,
		ReadTimeout:  time.Second,
		WriteTimeout: time.Second,
		MaxRetries:   1,
		// Without this go-redis retries each refused dial 5 times, 100ms
		// apart, so every request during an outage takes about a second.
		DialerRetries: 1,
		// The store's deadline reaches the socket only with this.
		ContextTimeoutEnabled: true,
	})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisStore(t *testing.T) {
	srv := redistest.Start(t)
	client := newRedisClient(t, srv.Addr())
	store := session.NewRedisStore(client, "test:")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := store.Load(ctx, "nobody"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("load of missing id: %v, want ErrNotFound", err)
	}
	if err := store.Touch(ctx, "nobody", time.Minute); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("touch of missing id: %v, want ErrNotFound", err)
	}
	d := session.Data{User: "ada", Values: map[string]json.RawMessage{"visits": json.RawMessage(`[{"page":"a"}]`)}}
	if err := store.Save(ctx, "id1", d, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := store.Load(ctx, "id1")
	if err != nil || got.User != "ada" || len(got.Values) != 1 || string(got.Values["visits"]) != `[{"page":"a"}]` {
		t.Fatalf("load = %+v, %v", got, err)
	}
	if ttl := client.PTTL(ctx, "test:id1").Val(); ttl <= 50*time.Second || ttl > time.Minute {
		t.Errorf("key TTL after save = %v, want about a minute", ttl)
	}
	if err := store.Touch(ctx, "id1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl := client.PTTL(ctx, "test:id1").Val(); ttl <= 59*time.Minute {
		t.Errorf("key TTL after touch = %v, want about an hour", ttl)
	}
	if err := store.Save(ctx, "id1", d, 0); err == nil {
		t.Error("save with zero ttl succeeded")
	}
	if err := client.Set(ctx, "test:bad", "{not json", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, "bad"); !errors.Is(err, session.ErrNotFound) || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("load of corrupt record: %v, want a corrupt ErrNotFound", err)
	}
	if err := store.Delete(ctx, "id1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, "id1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("load after delete: %v", err)
	}
	if err := store.Ping(ctx); err != nil {
		t.Errorf("ping: %v", err)
	}
	// Redis itself expires the key.
	if err := store.Save(ctx, "short", d, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "key expiry", func() bool {
		_, err := store.Load(ctx, "short")
		return errors.Is(err, session.ErrNotFound)
	})
}

// TestRedisOutage runs the application against a real Redis, stops Redis
// mid-test and starts it again on the same port. During the outage session
// routes answer 503 with a JSON error, other routes keep working and the
// health check fails; afterwards everything works again without any restart
// of the application, and the signed-in session survives.
func TestRedisOutage(t *testing.T) {
	// An append-only file lets the data outlive the restart, as a Redis
	// with persistence (or a replica) would.
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	client := newRedisClient(t, rs.Addr())
	m := newManager(t, session.Config{Store: session.NewRedisStore(client, "")})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b := &browser{t: t, srv: srv}
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	b.do("POST", "/v1/visit?page=before", "").want(t, http.StatusNoContent)
	if err := m.Check(ctx); err != nil {
		t.Fatalf("health check with Redis up: %v", err)
	}

	rs.Stop()

	err := m.Check(ctx)
	if !errors.Is(err, session.ErrUnavailable) {
		t.Fatalf("health check with Redis down = %v, want ErrUnavailable", err)
	}
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/v1/history", ""},
		{"POST", "/v1/visit?page=during", ""},
		{"POST", "/v1/login", `{"user":"bob"}`},
		{"POST", "/v1/note?v=x", ""},
	} {
		r := b.do(req.method, req.path, req.body).want(t, http.StatusServiceUnavailable)
		if msg := r.field(t, "error"); !strings.Contains(msg, "unavailable") {
			t.Errorf("%s %s: error %q does not say the store is unavailable", req.method, req.path, msg)
		}
		if r.header.Get("Retry-After") == "" || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: headers %v lack Retry-After or JSON type", req.method, req.path, r.header)
		}
	}
	b.do("GET", "/public", "").want(t, http.StatusOK)
	if b.cookie == nil {
		t.Fatal("the outage cost the client its cookie")
	}

	rs.Restart()

	waitFor(t, "health check to pass after restart", func() bool { return m.Check(ctx) == nil })
	r := b.do("GET", "/v1/history", "").want(t, http.StatusOK)
	if want := `{"history":[{"page":"before"}],"user":"ada"}`; strings.TrimSpace(r.body) != want {
		t.Errorf("history after restart = %s, want %s", r.body, want)
	}
	b.do("POST", "/v1/visit?page=after", "").want(t, http.StatusNoContent)
	other := &browser{t: t, srv: srv}
	other.do("POST", "/v1/login", `{"user":"bob"}`).want(t, http.StatusOK)
	other.do("GET", "/v1/history", "").want(t, http.StatusOK)
}

// TestRedisRestartWithoutPersistence: when Redis loses its data, sessions
// are simply gone; clients are asked to sign in again, not shown errors.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	rs := redistest.Start(t)
	client := newRedisClient(t, rs.Addr())
	m := newManager(t, session.Config{Store: session.NewRedisStore(client, "")})
	srv := httptest.NewServer(newApp(m))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b := &browser{t: t, srv: srv}
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	rs.Stop()
	rs.Restart()
	waitFor(t, "health check to pass after restart", func() bool { return m.Check(ctx) == nil })
	b.do("GET", "/v1/history", "").want(t, http.StatusUnauthorized)
	b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
	b.do("GET", "/v1/history", "").want(t, http.StatusOK)
}

// TestRedisHung pauses Redis (SIGSTOP): it still accepts connections but
// answers nothing. Each call must fail within the store's deadline, and
// once a few have, at once; when Redis answers again, a ping closes the
// breaker and calls succeed.
func TestRedisHung(t *testing.T) {
	rs := redistest.Start(t)
	client := newRedisClient(t, rs.Addr())
	const timeout = 200 * time.Millisecond
	store := session.NewRedisStore(client, "test:", session.WithTimeout(timeout), session.WithBreaker(3, time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := session.Data{User: "ada"}
	if err := store.Save(ctx, "id1", d, time.Minute); err != nil {
		t.Fatal(err)
	}

	rs.Pause()
	defer rs.Resume()
	for i := range 3 {
		start := time.Now()
		_, err := store.Load(ctx, "id1")
		took := time.Since(start)
		if !errors.Is(err, session.ErrUnavailable) || errors.Is(err, session.ErrBreakerOpen) {
			t.Fatalf("load %d from a hung Redis: %v, want ErrUnavailable from a real try", i, err)
		}
		if took > timeout+150*time.Millisecond {
			t.Fatalf("load %d from a hung Redis took %v, want about the %v deadline", i, took, timeout)
		}
	}
	if !store.Degraded() {
		t.Fatal("breaker not open after 3 failures in a row")
	}
	for _, op := range []func() error{
		func() error { _, err := store.Load(ctx, "id1"); return err },
		func() error { return store.Save(ctx, "id2", d, time.Minute) },
		func() error { return store.Touch(ctx, "id1", time.Minute) },
		func() error { return store.Delete(ctx, "id1") },
	} {
		start := time.Now()
		err := op()
		if took := time.Since(start); took > 20*time.Millisecond {
			t.Errorf("call with the breaker open took %v", took)
		}
		if !errors.Is(err, session.ErrUnavailable) || !errors.Is(err, session.ErrBreakerOpen) {
			t.Errorf("call with the breaker open: %v, want ErrUnavailable and ErrBreakerOpen", err)
		}
	}
	if err := store.Ping(ctx); !errors.Is(err, session.ErrUnavailable) || !strings.Contains(err.Error(), "no answer within") {
		t.Errorf("ping of a hung Redis: %v, want a deadline error", err)
	}

	rs.Resume()
	waitFor(t, "ping to pass after resume", func() bool { return store.Ping(ctx) == nil })
	if store.Degraded() {
		t.Fatal("breaker still open after a ping answered")
	}
	if got, err := store.Load(ctx, "id1"); err != nil || got.User != "ada" {
		t.Fatalf("load after resume = %+v, %v", got, err)
	}
}

// TestRedisCallerGivesUp: a request whose client went away says nothing
// about Redis, so it must not open the breaker.
func TestRedisCallerGivesUp(t *testing.T) {
	rs := redistest.Start(t)
	client := newRedisClient(t, rs.Addr())
	store := session.NewRedisStore(client, "test:", session.WithBreaker(1, time.Hour))
	rs.Pause()
	defer rs.Resume()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := store.Load(ctx, "x"); err == nil {
		t.Fatal("load from a hung Redis succeeded")
	}
	if store.Degraded() {
		t.Fatal("a caller's own deadline opened the breaker")
	}
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

package session_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
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
	for _, bad := range []string{"{not json", "\x01\x05ada", "\x07", ""} {
		if err := client.Set(ctx, "test:bad", bad, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := store.Load(ctx, "bad"); !errors.Is(err, session.ErrNotFound) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("load of corrupt record %q: %v, want a corrupt ErrNotFound", bad, err)
		}
		if _, _, err := store.Refresh(ctx, "bad", time.Minute, 0); !errors.Is(err, session.ErrNotFound) || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("refresh of corrupt record %q: %v, want a corrupt ErrNotFound", bad, err)
		}
	}
	if err := store.Delete(ctx, "id1"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Load(ctx, "id1"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("load after delete: %v", err)
	}
	if _, _, err := store.Refresh(ctx, "id1", time.Minute, 0); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("refresh after delete: %v", err)
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

// TestRedisRefresh: Refresh pushes the expiry only once refreshAfter has
// passed, by Redis's own clock (the test sets the key's TTL rather than
// waiting).
func TestRedisRefresh(t *testing.T) {
	srv := redistest.Start(t)
	client := newRedisClient(t, srv.Addr())
	store := session.NewRedisStore(client, "test:")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := session.Data{User: "ada", Values: map[string]json.RawMessage{"k": json.RawMessage(`[1,2]`)}}
	if err := store.Save(ctx, "id1", d, time.Hour); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name          string
		left          time.Duration // the key's TTL before the call; 0: none
		refreshAfter  time.Duration
		wantRefreshed bool
		wantLeftOver  time.Duration // the key's TTL after, at least
	}{
		{"recent: left alone", 50 * time.Minute, 15 * time.Minute, false, 49 * time.Minute},
		{"just due", 45 * time.Minute, 15 * time.Minute, true, 59 * time.Minute},
		{"long due", time.Minute, 15 * time.Minute, true, 59 * time.Minute},
		{"every time", 59 * time.Minute, 0, true, 59*time.Minute + 30*time.Second},
		{"every time, negative", 59 * time.Minute, -time.Second, true, 59*time.Minute + 30*time.Second},
		{"no expiry: given one", 0, 15 * time.Minute, true, 59 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.left > 0 {
				client.PExpire(ctx, "test:id1", tt.left)
			} else {
				client.Persist(ctx, "test:id1")
			}
			got, refreshed, err := store.Refresh(ctx, "id1", time.Hour, tt.refreshAfter)
			if err != nil || got.User != "ada" || string(got.Values["k"]) != "[1,2]" {
				t.Fatalf("refresh = %+v, %v", got, err)
			}
			if refreshed != tt.wantRefreshed {
				t.Errorf("refreshed = %v, want %v", refreshed, tt.wantRefreshed)
			}
			if left := client.PTTL(ctx, "test:id1").Val(); left < tt.wantLeftOver || left > time.Hour {
				t.Errorf("TTL after refresh = %v, want over %v", left, tt.wantLeftOver)
			}
		})
	}
}

// TestRedisRecordForms: records are written compactly and read in that
// form and in the JSON of earlier versions, so sessions survive the
// upgrade.
func TestRedisRecordForms(t *testing.T) {
	srv := redistest.Start(t)
	client := newRedisClient(t, srv.Addr())
	store := session.NewRedisStore(client, "test:")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := session.Data{User: "ada", Values: map[string]json.RawMessage{"visits": json.RawMessage(`[{"page":"a"}]`), "note": json.RawMessage(`"x"`)}}
	if err := store.Save(ctx, "new", d, time.Minute); err != nil {
		t.Fatal(err)
	}
	raw, err := client.Get(ctx, "test:new").Bytes()
	if err != nil || len(raw) == 0 || raw[0] != 0x01 {
		t.Fatalf("stored record %q, %v: want the version 1 form", raw, err)
	}
	if err := client.Set(ctx, "test:old", `{"user":"ada","values":{"note":"x","visits":[{"page":"a"}]}}`, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"new", "old"} {
		for _, how := range []string{"load", "refresh"} {
			var got session.Data
			if how == "load" {
				got, err = store.Load(ctx, id)
			} else {
				got, _, err = store.Refresh(ctx, id, time.Minute, 0)
			}
			if err != nil || got.User != "ada" || len(got.Values) != 2 || string(got.Values["visits"]) != `[{"page":"a"}]` || string(got.Values["note"]) != `"x"` {
				t.Errorf("%s of the %s record = %+v, %v", how, id, got, err)
			}
		}
	}
	bad := session.Data{User: "ada", Values: map[string]json.RawMessage{"k": json.RawMessage(`nope`)}}
	if err := store.Save(ctx, "bad", bad, time.Minute); err == nil {
		t.Error("save of a value that is not JSON succeeded")
	}
}

// TestRedisRoundTrips counts what each kind of request costs in Redis, by
// the commands Redis itself saw (MONITOR) and by the client's round trips
// (a go-redis hook, counting a pipeline as one): a signed-in request
// that only reads its session must make at most one round trip, whether
// or not its expiry is due; one that changes it, two.
func TestRedisRoundTrips(t *testing.T) {
	rs := redistest.Start(t)
	client := newRedisClient(t, rs.Addr())
	trips := &roundTrips{}
	client.AddHook(trips)
	mon := startMonitor(t, rs.Addr())

	for _, tt := range []struct {
		name         string
		refreshAfter time.Duration
		method, path string
		wantCommands []string // as MONITOR lists them, the script's own excluded
		wantCookie   bool
	}{
		{"read-only", 0, "GET", "/v1/history", []string{"evalsha"}, false},
		{"read-only, expiry due", -1, "GET", "/v1/history", []string{"evalsha"}, true},
		{"changes the session", 0, "POST", "/v1/visit?page=p", []string{"evalsha", "set"}, true},
		{"does not use the session", 0, "GET", "/public", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newManager(t, session.Config{Store: session.NewRedisStore(client, ""), RefreshAfter: tt.refreshAfter})
			srv := httptest.NewServer(newApp(m))
			defer srv.Close()
			b := &browser{t: t, srv: srv}
			b.do("POST", "/v1/login", `{"user":"ada"}`).want(t, http.StatusOK)
			// The first load puts the script in Redis's cache (EVALSHA
			// fails, EVAL follows): once per Redis, not per request.
			b.do("GET", "/v1/history", "").want(t, http.StatusOK)

			for i := range 3 {
				mon.skip(t)
				before := trips.n.Load()
				r := b.do(tt.method, tt.path, "")
				if r.code >= 300 {
					t.Fatalf("request %d: status %d %s", i, r.code, r.body)
				}
				got := mon.commands(t)
				if n := trips.n.Load() - before; n > int64(len(tt.wantCommands)) || len(got) != len(tt.wantCommands) {
					t.Errorf("request %d: %d round trips, commands %q; want %q", i, n, got, tt.wantCommands)
				}
				for j := range min(len(got), len(tt.wantCommands)) {
					if got[j] != tt.wantCommands[j] {
						t.Errorf("request %d: commands %q, want %q", i, got, tt.wantCommands)
						break
					}
				}
				if (len(r.cookies) > 0) != tt.wantCookie {
					t.Errorf("request %d: cookie set %v, want %v", i, len(r.cookies) > 0, tt.wantCookie)
				}
			}
		})
	}
}

// roundTrips counts the client's round trips to Redis.
type roundTrips struct{ n atomic.Int64 }

func (h *roundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *roundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}

func (h *roundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmds)
	}
}

// monitor reads Redis's MONITOR stream on its own connection. Another
// raw connection sends markers (ECHO) that delimit what one request made
// Redis do; neither sends anything else, so every other line comes from
// the client under test or from its scripts.
type monitor struct {
	conn, marker net.Conn
	rd, markRd   *bufio.Reader
	seq          int
}

func startMonitor(t *testing.T, addr string) *monitor {
	t.Helper()
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	m := &monitor{}
	m.conn, m.rd = dial()
	m.marker, m.markRd = dial()
	if line := m.send(t, m.conn, m.rd, "MONITOR"); line != "+OK" {
		t.Fatalf("MONITOR: %q", line)
	}
	return m
}

func (m *monitor) send(t *testing.T, c net.Conn, rd *bufio.Reader, cmd string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, cmd+"\r\n"); err != nil {
		t.Fatal(err)
	}
	line, err := rd.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(line)
}

// commands returns the names of the commands Redis ran since the last
// call, lower-case, except those a script ran.
func (m *monitor) commands(t *testing.T) []string {
	t.Helper()
	m.seq++
	mark := "mark-" + strconv.Itoa(m.seq)
	if got := m.send(t, m.marker, m.markRd, "ECHO "+mark); got != "$"+strconv.Itoa(len(mark)) {
		t.Fatalf("ECHO: %q", got)
	}
	if _, err := m.markRd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	m.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var cmds []string
	for {
		line, err := m.rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading MONITOR: %v", err)
		}
		// +1700000000.123456 [0 127.0.0.1:54321] "evalsha" "..." ...
		_, rest, _ := strings.Cut(line, "[")
		src, rest, _ := strings.Cut(rest, "]")
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			t.Fatalf("MONITOR line %q", line)
		}
		name := strings.ToLower(strings.Trim(fields[0], `"`))
		switch {
		case name == "echo" && strings.Contains(rest, `"`+mark+`"`):
			return cmds
		case strings.HasSuffix(src, " lua"):
		default:
			cmds = append(cmds, name)
		}
	}
}

// skip forgets the commands run so far.
func (m *monitor) skip(t *testing.T) { m.commands(t) }

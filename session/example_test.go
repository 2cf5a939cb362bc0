package session_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/shoal-dev/shoal/session"
)

func Example() {
	m, err := session.NewManager(session.Config{
		// In production: session.NewRedisStore(redisClient, "") and a
		// secret shared by all replicas.
		Store:  session.NewMemoryStore(nil),
		Secret: []byte("an example secret of 32+ bytes!!"),
	})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/login", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Start(w, r, r.FormValue("user")); err != nil {
			session.WriteError(w, err)
			return
		}
	})
	mux.Handle("GET /v1/visits", m.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, _ := session.FromContext(r.Context())
		// The application's own state is a named value it encodes as JSON.
		var visits []string
		if _, err := s.Get("visits", &visits); err != nil {
			session.WriteError(w, err)
			return
		}
		visits = append(visits, r.URL.Path)
		if err := s.Set("visits", visits); err != nil {
			session.WriteError(w, err)
			return
		}
		fmt.Fprintf(w, "%s has %d visits", s.User(), len(visits))
	})))
	app := m.Middleware(mux)

	get := func(cookie *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", "/v1/visits", nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		rec := httptest.NewRecorder()
		app.ServeHTTP(rec, req)
		return rec
	}

	fmt.Println("anonymous:", get(nil).Code)

	login := httptest.NewRequest("POST", "/v1/login", strings.NewReader("user=ada"))
	login.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	app.ServeHTTP(rec, login)
	cookie := rec.Result().Cookies()[0]

	get(cookie)
	fmt.Println(get(cookie).Body.String())
	// Output:
	// anonymous: 401
	// ada has 2 visits
}

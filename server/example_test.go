package server_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/server"
)

func Example() {
	app := http.NewServeMux()
	app.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello over HTTP/%d\n", r.ProtoMajor)
	})
	srv := server.New(server.Config{
		H2C:             true,
		MaxConnAge:      2 * time.Minute,
		MaxConnRequests: 1000,
	}, server.ServedBy("pod-a", app))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &h2c}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + ln.Addr().String() + "/hello")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Header.Get("X-Served-By"), ": ", string(body))
	// Output: pod-a: hello over HTTP/2
}

func ExampleAdminMux() {
	checker := health.New(nil)
	admin := server.New(server.Config{}, server.AdminMux(checker, http.NotFoundHandler()))
	fmt.Println(admin.Handler != nil)
	// Output: true
}

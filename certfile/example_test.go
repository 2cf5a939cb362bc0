package certfile_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"

	"github.com/shoal-dev/shoal/certfile"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/server"
)

// A service serving HTTPS with mutual TLS, and a client calling it with
// its own certificate. In Kubernetes the files would be a Secret volume's
// (tls.crt, tls.key, ca.crt), reloaded as cert-manager renews them.
func Example() {
	serverTLS, err := certfile.Server(certfile.Config{
		CertFile:     "testdata/server.crt",
		KeyFile:      "testdata/server.key",
		ClientCAFile: "testdata/ca.crt", // clients need a certificate from this CA
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := server.New(server.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s from %s", r.Proto, r.TLS.PeerCertificates[0].Subject.CommonName)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	done := make(chan error, 1)
	// A service hands the same two to lifecycle.Serve.
	go func() { done <- srv.Serve(tls.NewListener(ln, serverTLS)) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-done
	}()

	clientTLS, err := certfile.Client(certfile.Config{
		CertFile: "testdata/client.crt",
		KeyFile:  "testdata/client.key",
		CAFile:   "testdata/ca.crt", // servers need a certificate from this CA
	})
	if err != nil {
		log.Fatal(err)
	}
	clientTLS.ServerName = "localhost" // the name in the server's certificate
	tr := client.NewTransport(client.Config{TLSClientConfig: clientTLS})
	defer tr.CloseIdleConnections()

	resp, err := (&http.Client{Transport: tr}).Get("https://" + ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: HTTP/2.0 from client
}

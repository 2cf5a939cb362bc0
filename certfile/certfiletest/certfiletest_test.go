package certfiletest_test

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"testing"

	"github.com/shoal-dev/shoal/certfile/certfiletest"
)

func TestIssue(t *testing.T) {
	dir := t.TempDir()
	ca := certfiletest.NewCA(t)
	certFile, keyFile := ca.Issue(t, dir, "server", "localhost", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca.Write(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	fromFile := x509.NewCertPool()
	if !fromFile.AppendCertsFromPEM(caPEM) {
		t.Fatal("Write wrote no certificate")
	}
	tests := []struct {
		name  string
		roots *x509.CertPool
		host  string
		eku   x509.ExtKeyUsage
		ok    bool
	}{
		{"DNS name", ca.Pool(), "localhost", x509.ExtKeyUsageServerAuth, true},
		{"IP address", ca.Pool(), "127.0.0.1", x509.ExtKeyUsageServerAuth, true},
		{"client", fromFile, "", x509.ExtKeyUsageClientAuth, true},
		{"other name", ca.Pool(), "example.com", x509.ExtKeyUsageServerAuth, false},
		{"other CA", certfiletest.NewCA(t).Pool(), "localhost", x509.ExtKeyUsageServerAuth, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: tt.roots, DNSName: tt.host, KeyUsages: []x509.ExtKeyUsage{tt.eku}})
			if (err == nil) != tt.ok {
				t.Errorf("Verify: %v, want ok %v", err, tt.ok)
			}
		})
	}
	if ip := net.ParseIP("127.0.0.1"); len(pair.Leaf.IPAddresses) != 1 || !pair.Leaf.IPAddresses[0].Equal(ip) {
		t.Errorf("IP SANs %v, want [127.0.0.1]", pair.Leaf.IPAddresses)
	}

	// Issuing again under the same name replaces both files and leaves
	// no temporary file behind.
	ca.Issue(t, dir, "server", "localhost")
	again, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if again.Leaf.SerialNumber.Cmp(pair.Leaf.SerialNumber) == 0 {
		t.Error("the second Issue did not replace the certificate")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 3 {
		t.Errorf("%d files in dir, want server.crt, server.key, ca.crt", len(entries))
	}
}

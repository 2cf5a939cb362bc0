package certfile

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

func watchPair(cfg Config) (*watched[*tls.Certificate], error) {
	w := &watched[*tls.Certificate]{
		what:  "certificate",
		files: []string{cfg.CertFile, cfg.KeyFile},
		load:  func() (*tls.Certificate, error) { return loadPair(cfg.CertFile, cfg.KeyFile) },
		reloadable: func(c *tls.Certificate, now time.Time) error {
			// Every peer would refuse it, and an expired certificate
			// never becomes valid: the last good one serves better.
			if c.Leaf != nil && now.After(c.Leaf.NotAfter) {
				return fmt.Errorf("certfile: CertFile %s: the certificate expired at %s", cfg.CertFile, c.Leaf.NotAfter.Format(time.RFC3339))
			}
			return nil
		},
		describe: func(c *tls.Certificate) []any {
			if c.Leaf == nil {
				return nil
			}
			return []any{"subject", c.Leaf.Subject.String(), "not_after", c.Leaf.NotAfter}
		},
		interval: cfg.CheckInterval,
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	return w, w.start()
}

func watchPool(cfg Config, field, file string) (*watched[*x509.CertPool], error) {
	w := &watched[*x509.CertPool]{
		what:     field + " CAs",
		files:    []string{file},
		load:     func() (*x509.CertPool, error) { return loadPool(field, file) },
		interval: cfg.CheckInterval,
		now:      cfg.Now,
		log:      cfg.Logger,
	}
	return w, w.start()
}

// loadPair reads a certificate and its key. Its errors name the files and
// never quote them.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("certfile: CertFile: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("certfile: KeyFile: %w", err)
	}
	if err := wholePEM(certPEM); err != nil {
		return nil, fmt.Errorf("certfile: CertFile %s: %w", certFile, err)
	}
	if err := wholePEM(keyPEM); err != nil {
		return nil, fmt.Errorf("certfile: KeyFile %s: %w", keyFile, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certfile: CertFile %s with KeyFile %s: %w", certFile, keyFile, err)
	}
	return &pair, nil
}

// loadPool reads a CA bundle, field naming the Config field it is from.
func loadPool(field, file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certfile: %s: %w", field, err)
	}
	if err := wholePEM(data); err != nil {
		return nil, fmt.Errorf("certfile: %s %s: %w", field, file, err)
	}
	// Unlike x509.CertPool.AppendCertsFromPEM, a certificate that does
	// not parse fails the load rather than being skipped.
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certfile: %s %s: certificate %d: %w", field, file, n, err)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, fmt.Errorf("certfile: %s %s: no CERTIFICATE PEM block", field, file)
	}
	return pool, nil
}

// wholePEM fails for a file with no PEM block or with a block cut short,
// as a file caught in the middle of a write has: crypto/tls and x509 would
// take the complete blocks before it and ignore the rest.
func wholePEM(data []byte) error {
	n := 0
	rest := data
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		n++
	}
	switch {
	case n == 0:
		return errors.New("no PEM data (empty or partly written?)")
	case bytes.Contains(rest, []byte("-----")):
		return errors.New("a PEM block is cut short (partly written?)")
	}
	return nil
}

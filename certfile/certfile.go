package certfile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// DefaultCheckInterval is how often, at most, a handshake checks whether
// the files changed when [Config.CheckInterval] is zero. The kubelet takes
// up to a minute or so to update a Secret's volume, so checking more often
// gains little; a stat every 10s costs nothing.
const DefaultCheckInterval = 10 * time.Second

// Config names the files [Server] and [Client] load. The zero value is
// valid for Client (system roots, no client certificate); Server needs
// CertFile and KeyFile.
type Config struct {
	// CertFile and KeyFile hold a PEM certificate chain, leaf first, and
	// its PEM private key: the server's certificate for Server, the
	// client certificate for Client. Both or neither.
	CertFile, KeyFile string
	// ClientCAFile (Server only), when set, holds the PEM CAs a client's
	// certificate must be signed by: every client must present one
	// (mutual TLS). Empty means clients need no certificate.
	ClientCAFile string
	// CAFile (Client only) holds the PEM CAs a server's certificate must
	// be signed by. Empty means the system's roots, which are not
	// reloaded.
	CAFile string
	// CheckInterval is how often, at most, a handshake stats the files to
	// see whether they changed. Zero means DefaultCheckInterval (10s);
	// negative is invalid.
	CheckInterval time.Duration
	// Logger receives a line per reload and per failed reload. Nil means
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock CheckInterval is measured by. Nil means time.Now.
	Now func() time.Time
}

// Validate reports the first field of c that is invalid, by name.
func (c Config) Validate() error {
	switch {
	case c.CertFile != "" && c.KeyFile == "":
		return fmt.Errorf("certfile: CertFile %s is set without KeyFile", c.CertFile)
	case c.KeyFile != "" && c.CertFile == "":
		return fmt.Errorf("certfile: KeyFile %s is set without CertFile", c.KeyFile)
	case c.CheckInterval < 0:
		return fmt.Errorf("certfile: CheckInterval %s is negative", c.CheckInterval)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.CheckInterval == 0 {
		c.CheckInterval = DefaultCheckInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Server returns a tls.Config for a server. Its GetCertificate serves the
// pair in CertFile and KeyFile, reloaded as the package doc describes.
// With ClientCAFile, it requires and verifies a client certificate
// (tls.RequireAndVerifyClientCert) against those CAs, reloaded the same
// way through GetConfigForClient; its ClientCAs field holds the pool as
// first loaded, and handshakes use the current one. It offers TLS 1.2 and
// up, and "h2" and "http/1.1" by ALPN. CAFile is ignored.
//
// It fails if cfg is invalid, CertFile is empty, or the files cannot be
// loaded now; the error names the file. Change the returned config, if at
// all, before serving with it.
func Server(cfg Config) (*tls.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.CertFile == "" {
		return nil, errors.New("certfile: a server needs CertFile and KeyFile")
	}
	cfg = cfg.withDefaults()
	pair, err := watchPair(cfg)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return pair.get(), nil
		},
	}
	if cfg.ClientCAFile == "" {
		return tc, nil
	}
	cas, err := watchPool(cfg, "ClientCAFile", cfg.ClientCAFile)
	if err != nil {
		return nil, err
	}
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	tc.ClientCAs = cas.get()
	// A handshake takes its ClientCAs from the config GetConfigForClient
	// returns; one such config is built per CA pool, from the returned
	// config as it is at the first handshake that sees the pool.
	type derived struct {
		pool *x509.CertPool
		cfg  *tls.Config
	}
	var last atomic.Pointer[derived]
	tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		pool := cas.get()
		if d := last.Load(); d != nil && d.pool == pool {
			return d.cfg, nil
		}
		c := tc.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = pool
		last.Store(&derived{pool, c})
		return c, nil
	}
	return tc, nil
}

// Client returns a tls.Config for calling servers. With CAFile, it
// verifies a server's certificate against those CAs, reloaded as the
// package doc describes, for the name in ServerName (see "Calling" in the
// package doc): it does so in VerifyConnection, so InsecureSkipVerify is
// set and RootCAs is nil, and every handshake, resumed ones included, is
// verified; replacing VerifyConnection would turn verification off, so
// wrap it instead. Without CAFile, the system roots verify servers as
// usual.
// With CertFile and KeyFile, GetClientCertificate presents that pair,
// reloaded the same way, to servers that ask for one (mTLS). It offers TLS
// 1.2 and up; NextProtos is left to the transport. ClientCAFile is
// ignored.
//
// It fails if cfg is invalid or the files cannot be loaded now; the error
// names the file.
func Client(cfg Config) (*tls.Config, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CertFile != "" {
		pair, err := watchPair(cfg)
		if err != nil {
			return nil, err
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return pair.get(), nil
		}
	}
	if cfg.CAFile != "" {
		roots, err := watchPool(cfg, "CAFile", cfg.CAFile)
		if err != nil {
			return nil, err
		}
		// crypto/tls verifies against a fixed RootCAs; to use the pool
		// current at each handshake, verification moves to
		// VerifyConnection, which runs for every handshake whatever
		// InsecureSkipVerify says.
		tc.InsecureSkipVerify = true
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			return verifyServer(cs, roots.get())
		}
	}
	return tc, nil
}

// verifyServer does what crypto/tls does for a client with RootCAs set.
func verifyServer(cs tls.ConnectionState, roots *x509.CertPool) error {
	if cs.ServerName == "" {
		return errors.New("certfile: no server name to verify the server's certificate for: set tls.Config.ServerName to a DNS name in it (an IP address is not sent as one)")
	}
	if len(cs.PeerCertificates) == 0 {
		return errors.New("certfile: the server sent no certificate")
	}
	opts := x509.VerifyOptions{
		Roots:         roots,
		DNSName:       cs.ServerName,
		Intermediates: x509.NewCertPool(),
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("certfile: verifying the server's certificate for %s: %w", cs.ServerName, err)
	}
	return nil
}

// Package certfile loads TLS certificates and certificate authorities from
// files and reloads them when the files change, for HTTPS and mutual TLS
// (mTLS) between Shoal services.
//
// [Server] returns a tls.Config that serves the certificate in
// [Config.CertFile] and [Config.KeyFile] and, with [Config.ClientCAFile],
// requires every client to present a certificate signed by one of those
// CAs. [Client] returns a tls.Config for calls: it verifies servers by the
// CAs in [Config.CAFile] and, with CertFile and KeyFile, presents a client
// certificate. One Config can describe a service's identity for both
// sides: Server ignores CAFile and Client ignores ClientCAFile.
//
// # Reloading
//
// Certificates are renewed while services run: cert-manager rewrites a
// Secret before it expires, and the kubelet updates the Secret's volume in
// place by writing the new files into a fresh directory and swapping the
// ..data symlink the file names point through. Nothing watches the files.
// A handshake that finds the last check more than [Config.CheckInterval]
// old stats the files (following symlinks) and, if one's identity,
// modification time or size changed, reads them again; every other
// handshake uses what it has, so at most one stat per interval per file
// reaches the disk and no goroutine is needed. Connections already open
// keep the certificate they were made with; new ones get the new one
// within one CheckInterval of the change (plus the kubelet's own delay).
//
// A reload that fails (a file half written by a tool that does not write
// atomically, a key that does not match its certificate, a file missing
// in the middle of a swap, a certificate that has already expired) keeps
// the last good certificate or CA pool and logs the error once for that
// version of the files, naming the file but never its contents; the next
// change is tried again. A file whose last PEM block is cut short counts
// as failed, not as a shorter chain. The first load takes an expired
// certificate as it is: there is no good one to keep.
//
// # Serving
//
// A server built by server.New serves both HTTP/1.1 and HTTP/2 over TLS,
// chosen by ALPN, on a listener wrapped with tls.NewListener:
//
//	tlsCfg, err := certfile.Server(cfg)
//	...
//	srv := server.New(serverCfg, handler)
//	lc.Serve("https", srv, tls.NewListener(ln, tlsCfg))
//
// net/http's Serve sets up its HTTP/2 server when srv.TLSConfig is nil, as
// server.New leaves it, and the tls.Config from Server offers "h2" and
// "http/1.1". Keep-alive rebalancing (server.Config.MaxConnAge and
// MaxConnRequests) works unchanged: Connection: close on HTTP/1.1, GOAWAY
// on HTTP/2.
//
// # Calling
//
// Hand the tls.Config from Client to client.Config.TLSClientConfig (one
// per transport: net/http adds its protocols to the config it is given;
// Clone it to share the reloading between transports). With CAFile set,
// Client verifies a server's certificate itself, against the CAs current
// at the handshake, for the name in tls.Config.ServerName (which
// http.Transport fills from the URL's host when it is empty). An IP address
// is never sent as that name, so a call to an IP address fails
// verification unless ServerName is set: set it to a DNS name in the
// server's certificate (its Service's name, say) when a balancer dials pod
// addresses.
package certfile

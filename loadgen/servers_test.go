package loadgen

import (
	"bufio"
	"context"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testCtx bounds a test generously: the machine may be loaded.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// replica is a real HTTP server on loopback that names itself in
// X-Served-By and counts what it sees.
type replica struct {
	name    string
	srv     *httptest.Server
	served  atomic.Int64
	accepts atomic.Int64
	h2      atomic.Int64 // requests that arrived over HTTP/2
	// carriers counts the connections that carried at least one request
	// (by client address): a transport may also dial spares it never uses.
	carriers atomic.Int64
	seen     sync.Map
}

// startReplica starts a replica; handle, if not nil, answers after the
// replica has counted the request and set its header.
func startReplica(t *testing.T, name string, h2c bool, handle http.HandlerFunc) *replica {
	t.Helper()
	r := &replica{name: name}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.served.Add(1)
		if _, loaded := r.seen.LoadOrStore(req.RemoteAddr, true); !loaded {
			r.carriers.Add(1)
		}
		if req.ProtoMajor == 2 {
			r.h2.Add(1)
		}
		w.Header().Set("X-Served-By", name)
		if handle != nil {
			handle(w, req)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	r.srv.Listener = countingListener{Listener: r.srv.Listener, n: &r.accepts}
	if h2c {
		var p http.Protocols
		p.SetHTTP1(true)
		p.SetUnencryptedHTTP2(true)
		r.srv.Config.Protocols = &p
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replica) url() string { return r.srv.URL + "/" }

type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// tcpProxy forwards each accepted connection to a backend picked at
// random, as kube-proxy does for a ClusterIP Service.
type tcpProxy struct {
	ln       net.Listener
	backends []string
	rng      *rand.Rand // used by the accept loop only
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, seed uint64, backends ...string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, backends: backends, rng: rand.New(rand.NewPCG(seed, seed)), conns: map[net.Conn]struct{}{}}
	p.wg.Go(p.accept)
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) url() string { return "http://" + p.ln.Addr().String() + "/" }

func (p *tcpProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *tcpProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		backend := p.backends[p.rng.IntN(len(p.backends))]
		p.track(c, true)
		p.wg.Go(func() {
			defer p.track(c, false)
			defer c.Close()
			b, err := net.Dial("tcp", backend)
			if err != nil {
				return
			}
			p.track(b, true)
			defer p.track(b, false)
			defer b.Close()
			var up sync.WaitGroup
			up.Go(func() {
				_, _ = io.Copy(b, c)
				_ = b.(*net.TCPConn).CloseWrite()
			})
			_, _ = io.Copy(c, b)
			_ = c.(*net.TCPConn).CloseWrite()
			up.Wait()
		})
	}
}

// rawServer answers every HTTP/1.1 request on a keep-alive connection
// with a fixed response, allocating nothing per request, so that a
// benchmark's allocations are the generator's (and net/http client's).
type rawServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startRawServer(tb testing.TB) *rawServer {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &rawServer{ln: ln, conns: map[net.Conn]struct{}{}}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Served-By: raw\r\n\r\nok")
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return
					}
					if len(line) <= 2 { // the blank line ending the headers
						if _, err := c.Write(resp); err != nil {
							return
						}
					}
				}
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url() string { return "http://" + s.ln.Addr().String() + "/" }

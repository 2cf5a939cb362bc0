package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
)

// The attacked thumbnailer: the deploy kit's memory limit (256Mi, as
// MEMORY_LIMIT, from which it sets GOMEMLIMIT) and its largest gRPC
// message (an upload of MAX_BODY_BYTES, 10 MiB, and the request's other
// fields).
const (
	attackMaxMsg      = 10<<20 + 64
	resizeMethod      = "/shoal.thumbnailer.v1.Thumbnailer/Resize"
	healthCheckMethod = "/grpc.health.v1.Health/Check"
	attackDuration    = 4 * time.Second
)

var grpcAttackEnv = []string{
	"GRPC_PORT=" + grpcPort, fmt.Sprintf("GRPC_MAX_RECV_MSG_SIZE=%d", attackMaxMsg),
	fmt.Sprintf("MEMORY_LIMIT=%d", deployMemoryLimit),
	"DRAIN_DELAY=0s", "REQUEST_LOG_SAMPLE=0.01",
}

// attack is one hostile client's behaviour against addr (host:port of
// the gRPC port) until ctx ends; it returns once every connection and
// goroutine it made is gone.
type attack struct {
	name string
	run  func(ctx context.Context, t *testing.T, addr string)
	// floor is the least share of a well-behaved client's calls made
	// during the attack that must succeed; at least one must. Calls wait
	// their turn for the receive budget behind the attacker's
	// connections (up to 3s under silent streams): the caller is slowed,
	// not starved.
	floor float64
	// fresh makes the caller dial a new connection for each call, as a
	// client that starts, or whose connection aged out, while the attack
	// goes on: a cap on connections that only refuses would lock it out.
	fresh bool
}

// TestGRPCAttacks runs each attack for a few seconds against its own
// thumbnailer serving Resize on GRPC_PORT, while a well-behaved
// grpcclient caller keeps calling Resize. Each must leave the process's
// peak RSS below the container's limit, the caller's success share at
// or above the attack's floor, no panic in the logs, and the process
// healthy: grpc.health.v1 SERVING and a Resize answered after it.
func TestGRPCAttacks(t *testing.T) {
	attacks := []attack{
		{"large messages fast", func(ctx context.Context, t *testing.T, addr string) {
			h2cStreams(ctx, addr, 8, 12, resizeMethod, func(ctx context.Context) io.Reader {
				return &grpcBody{ctx: ctx, size: attackMaxMsg - 64}
			})
		}, 0.9, false},
		{"large messages stalled before their last byte", func(ctx context.Context, t *testing.T, addr string) {
			h2cStreams(ctx, addr, 8, 12, resizeMethod, func(ctx context.Context) io.Reader {
				return &grpcBody{ctx: ctx, size: attackMaxMsg - 64, stallAt: attackMaxMsg - 80}
			})
		}, 0.9, false},
		{"trickled messages", func(ctx context.Context, t *testing.T, addr string) {
			h2cStreams(ctx, addr, 8, 50, resizeMethod, func(ctx context.Context) io.Reader {
				return &grpcBody{ctx: ctx, size: attackMaxMsg - 64, stallAt: 16, trickle: true}
			})
		}, 0.9, false},
		{"streams that never send", func(ctx context.Context, t *testing.T, addr string) {
			h2cStreams(ctx, addr, 8, 100, resizeMethod, func(ctx context.Context) io.Reader {
				return &grpcBody{ctx: ctx, size: attackMaxMsg - 64, stallAt: -1}
			})
		}, 0.9, false},
		{"unknown method, large message", func(ctx context.Context, t *testing.T, addr string) {
			h2cStreams(ctx, addr, 8, 12, "/shoal.nope.v1.Nope/Nothing", func(ctx context.Context) io.Reader {
				return &grpcBody{ctx: ctx, size: attackMaxMsg - 64}
			})
		}, 0.9, false},
		{"huge metadata on streams that never send", func(ctx context.Context, t *testing.T, addr string) {
			rawConns(ctx, addr, 8, func(ctx context.Context, c *rawConn) { c.hugeHeaders(ctx, 64, 1<<20) })
		}, 0.9, false},
		{"malformed HTTP/2", func(ctx context.Context, t *testing.T, addr string) {
			rawConns(ctx, addr, 4, func(ctx context.Context, c *rawConn) { c.malformed(ctx) })
		}, 0.9, false},
		// Rapid resets take both cores: a caller's call that got its share
		// of the receive budget may not be scheduled to read its message
		// within the 500ms after which a waiting call evicts it.
		{"rapid reset", func(ctx context.Context, t *testing.T, addr string) {
			rawConns(ctx, addr, 4, func(ctx context.Context, c *rawConn) { c.rapidReset(ctx, resizeMethod, 2000) })
		}, 0.75, false},
		// The health service is never refused at its headers, so that
		// probes always get through: it must not be the way around the
		// bound on calls.
		{"rapid reset of health checks", func(ctx context.Context, t *testing.T, addr string) {
			rawConns(ctx, addr, 4, func(ctx context.Context, c *rawConn) { c.rapidReset(ctx, healthCheckMethod, 2000) })
		}, 0.75, false},
		{"keepalive abuse", func(ctx context.Context, t *testing.T, addr string) {
			rawConns(ctx, addr, 50, func(ctx context.Context, c *rawConn) { c.pingFlood(ctx) })
		}, 0.9, false},
		{"idle connections", func(ctx context.Context, t *testing.T, addr string) {
			idleConns(ctx, addr, 3000)
		}, 0.9, false},
		{"idle connections held open, new callers", func(ctx context.Context, t *testing.T, addr string) {
			heldConns(ctx, addr, 800, 1000)
		}, 0.9, true},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) { runAttack(t, a) })
	}
}

func runAttack(t *testing.T, a attack) {
	th := startThumbnailer(t, grpcAttackEnv...)
	addr := net.JoinHostPort(th.Host, grpcPort)
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := pb.NewThumbnailerClient(cc)
	img := smallPNG(t, 1)
	resize := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		c := c
		if a.fresh {
			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				return err
			}
			defer cc.Close()
			c = pb.NewThumbnailerClient(cc)
		}
		resp, err := c.Resize(ctx, &pb.ResizeRequest{Image: img, Width: 16, Height: 16})
		if err != nil {
			return err
		}
		if len(resp.GetThumbnail()) == 0 {
			return fmt.Errorf("empty thumbnail")
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := resize(ctx); err != nil {
		t.Fatalf("before the attack: %v", err)
	}
	baseRSS := th.PeakRSS()

	attackEnd := time.Now().Add(attackDuration)
	attackCtx, stopAttack := context.WithDeadline(ctx, attackEnd)
	defer stopAttack()
	attacked := make(chan struct{})
	go func() {
		defer close(attacked)
		a.run(attackCtx, t, addr)
	}()
	// The well-behaved caller: two workers, until the attack ends.
	var (
		mu       sync.Mutex
		slowest  time.Duration
		failedIn []time.Duration
	)
	res := hammer(attackCtx, 2, 1<<20, func(ctx context.Context, i int) error {
		begin := time.Now()
		err := resize(ctx)
		// The attack's end is no failure: past its deadline and before its
		// timer has fired (late, on a loaded machine) a call's context is
		// born expired.
		if err != nil && (attackCtx.Err() != nil || !time.Now().Before(attackEnd)) {
			stopAttack() // so that hammer stops counting
			return context.Canceled
		}
		took := time.Since(begin)
		mu.Lock()
		slowest = max(slowest, took)
		if err != nil && len(failedIn) < 5 {
			failedIn = append(failedIn, took.Round(time.Millisecond))
		}
		mu.Unlock()
		return err
	})
	<-attacked
	share := float64(res.OK) / float64(max(1, res.OK+res.Failed))
	if share < a.floor || res.OK < 1 {
		t.Errorf("well-behaved caller: %.1f%% of calls served, want at least %.0f%% and one call: %v", 100*share, 100*a.floor, res)
	}
	// Healthy after: still running, SERVING, and serving.
	if th.Exited() {
		t.Fatalf("thumbnailer exited: %v", th.waitErr)
	}
	hc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	waitUntil(t, ctx, "health SERVING and a Resize served after the attack", func() bool {
		r, err := healthpb.NewHealthClient(hc).Check(ctx, &healthpb.HealthCheckRequest{})
		return err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING && resize(ctx) == nil
	})
	// The peak counts until the server has read all the attacker sent:
	// frames queued in a closed connection's socket are still read, and
	// what they cost can peak after the attack. Then only the caller's
	// and the health client's connections are open.
	waitUntil(t, ctx, "the attack's connections closed", func() bool {
		open, ok := scrape(ctx, t, th).gauge("grpc_server_connections_open")
		return ok && open <= 2
	})
	settled := time.Since(attackEnd)
	peak := th.PeakRSS()
	m := scrape(ctx, t, th)
	resets, _ := m.gauge("grpc_server_connections_reset_total")
	t.Logf("%s: peak RSS %.0f MiB (%.0f MiB before), caller %.1f%% served, slowest call %v (failures after %v): %v; settled %v after, %.0f connections closed as rapid resets",
		a.name, float64(peak)/(1<<20), float64(baseRSS)/(1<<20), 100*share, slowest.Round(time.Millisecond), failedIn, res, settled.Round(100*time.Millisecond), resets)
	if peak >= deployMemoryLimit {
		t.Errorf("peak RSS %.0f MiB, at or above the %d MiB limit", float64(peak)/(1<<20), deployMemoryLimit>>20)
	}
	if strings.Contains(th.Logs(), "panic") {
		t.Errorf("a panic in the logs:\n%s", th.tail(40))
	}
}

// grpcBody is a gRPC-framed ResizeRequest whose image is size zero
// bytes (so Resize answers INVALID_ARGUMENT once it has it all), made as
// it is read. From stallAt bytes on it sends nothing more until ctx ends
// (trickle: a byte a second); negative stallAt sends nothing at all.
type grpcBody struct {
	ctx     context.Context
	size    int
	stallAt int
	trickle bool
	off     int
	prefix  []byte
}

var zeros = make([]byte, 32<<10)

func (b *grpcBody) total() int { return 5 + len(b.msgPrefix()) + b.size }

func (b *grpcBody) msgPrefix() []byte {
	if b.prefix == nil {
		p := []byte{0x0a}
		p = binary.AppendUvarint(p, uint64(b.size))
		b.prefix = p
	}
	return b.prefix
}

func (b *grpcBody) Read(p []byte) (int, error) {
	if b.stallAt != 0 && b.off >= max(b.stallAt, 0) {
		if !b.trickle || b.stallAt < 0 {
			<-b.ctx.Done()
			return 0, b.ctx.Err()
		}
		select {
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		case <-time.After(time.Second):
		}
		p = p[:1]
	} else if b.stallAt > 0 {
		p = p[:min(len(p), b.stallAt-b.off)]
	}
	if b.off >= b.total() {
		return 0, io.EOF
	}
	var head []byte
	head = append(head, 0)
	head = binary.BigEndian.AppendUint32(head, uint32(len(b.msgPrefix())+b.size))
	head = append(head, b.msgPrefix()...)
	n := 0
	for n < len(p) && b.off < b.total() {
		var m int
		if b.off < len(head) {
			m = copy(p[n:], head[b.off:])
		} else {
			m = copy(p[n:min(len(p), n+b.total()-b.off)], zeros)
		}
		n += m
		b.off += m
	}
	return n, nil
}

// h2cStreams opens conns h2c connections to addr and keeps streams
// calls of method open on each, bodies from body, until ctx ends.
func h2cStreams(ctx context.Context, addr string, conns, streams int, method string, body func(context.Context) io.Reader) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		dialed []net.Conn
	)
	// Every connection is closed at the end, as the attacker leaving:
	// one with a stream it cancelled may not be idle yet, and would stay
	// open until the server's MAX_CONN_AGE.
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range dialed {
			c.Close()
		}
	}()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			mu.Lock()
			dialed = append(dialed, c)
			mu.Unlock()
		}
		return c, err
	}
	for range conns {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos, MaxConnsPerHost: 1, DialContext: dial}
		defer tr.CloseIdleConnections()
		for range streams {
			wg.Go(func() {
				for ctx.Err() == nil {
					req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+addr+method, body(ctx))
					req.Header.Set("Content-Type", "application/grpc")
					req.Header.Set("TE", "trailers")
					resp, err := tr.RoundTrip(req)
					if err != nil {
						select { // refused or cut off: again, after a breath
						case <-ctx.Done():
						case <-time.After(10 * time.Millisecond):
						}
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			})
		}
	}
	wg.Wait()
}

// rawConn is a TCP connection speaking HTTP/2 frame by frame, whose
// frames from the server are read and dropped.
type rawConn struct {
	c      net.Conn
	fr     *http2.Framer
	addr   string
	nextID uint32
}

// rawConns runs fn on conns raw connections to addr at once, each
// redialled when fn returns, until ctx ends.
func rawConns(ctx context.Context, addr string, conns int, fn func(context.Context, *rawConn)) {
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					continue
				}
				stop := context.AfterFunc(ctx, func() { c.Close() })
				var reader sync.WaitGroup
				reader.Go(func() { io.Copy(io.Discard, c) })
				fn(ctx, &rawConn{c: c, fr: http2.NewFramer(c, nil), addr: addr, nextID: 1})
				c.Close()
				reader.Wait()
				stop()
			}
		})
	}
	wg.Wait()
}

func (c *rawConn) preface() error {
	if _, err := io.WriteString(c.c, http2.ClientPreface); err != nil {
		return err
	}
	return c.fr.WriteSettings()
}

// headerBlock is an HPACK block for a call of method with extra
// metadata, every field a literal (no dynamic table), so that it can be
// sent again on the same connection.
func headerBlock(addr, method string, extra ...hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	enc.SetMaxDynamicTableSize(0)
	for _, f := range append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method}, {Name: ":authority", Value: addr},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}, extra...) {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

// writeBlock sends block as a HEADERS frame and CONTINUATIONs of 16 KiB.
func (c *rawConn) writeBlock(id uint32, block []byte, endStream bool) error {
	const chunk = 16 << 10
	first := block[:min(chunk, len(block))]
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{
		StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) <= chunk,
	}); err != nil {
		return err
	}
	for rest := block[len(first):]; len(rest) > 0; {
		n := min(chunk, len(rest))
		if err := c.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return nil
}

// hugeHeaders opens streams calls whose metadata is about size bytes,
// sending no message, and holds them until ctx ends.
func (c *rawConn) hugeHeaders(ctx context.Context, streams, size int) {
	if c.preface() != nil {
		return
	}
	val := strings.Repeat("a", 8<<10)
	var extra []hpack.HeaderField
	for i := range size / len(val) {
		extra = append(extra, hpack.HeaderField{Name: fmt.Sprintf("x-pad-%d", i), Value: val})
	}
	block := headerBlock(c.addr, resizeMethod, extra...)
	for i := range streams {
		if c.writeBlock(uint32(2*i+1), block, false) != nil {
			return
		}
	}
	<-ctx.Done()
}

// malformed sends one kind of broken HTTP/2 per connection, in turn.
func (c *rawConn) malformed(ctx context.Context) {
	garbage := make([]byte, 64<<10)
	for i := range garbage {
		garbage[i] = byte(rand.Uint32())
	}
	kinds := []func() error{
		func() error { _, err := c.c.Write(garbage); return err }, // no preface
		func() error { // preface, then garbage
			if err := c.preface(); err != nil {
				return err
			}
			_, err := c.c.Write(garbage)
			return err
		},
		func() error { // a HEADERS frame claiming 16 MiB
			if err := c.preface(); err != nil {
				return err
			}
			_, err := c.c.Write([]byte{0xff, 0xff, 0xff, byte(http2.FrameHeaders), 0x4, 0, 0, 0, 1})
			if err == nil {
				_, err = c.c.Write(garbage)
			}
			return err
		},
		func() error { // CONTINUATION without end, the header list never complete
			if err := c.preface(); err != nil {
				return err
			}
			block := headerBlock(c.addr, resizeMethod)
			if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block}); err != nil {
				return err
			}
			for range 1000 {
				if err := c.fr.WriteContinuation(1, false, garbage[:16<<10]); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { // an invalid window size and frame size
			if _, err := io.WriteString(c.c, http2.ClientPreface); err != nil {
				return err
			}
			return c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31},
				http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1})
		},
		func() error { // window overflow on the connection
			if err := c.preface(); err != nil {
				return err
			}
			for range 3 {
				if err := c.fr.WriteWindowUpdate(0, 1<<31-1); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { // DATA on stream 0 and on a stream never opened
			if err := c.preface(); err != nil {
				return err
			}
			if err := c.fr.WriteData(0, false, garbage[:1000]); err != nil {
				return err
			}
			return c.fr.WriteData(7, true, garbage[:1000])
		},
		func() error { // headers with a bad HPACK block and a bad :path
			if err := c.preface(); err != nil {
				return err
			}
			if err := c.writeBlock(1, garbage[:4000], true); err != nil {
				return err
			}
			return c.writeBlock(3, headerBlock(c.addr, "no-slash"), true)
		},
		func() error { // a stream depending on itself
			if err := c.preface(); err != nil {
				return err
			}
			return c.fr.WritePriority(1, http2.PriorityParam{StreamDep: 1})
		},
		func() error { // a length prefix larger than the limit, a compressed flag without compression
			if err := c.preface(); err != nil {
				return err
			}
			if err := c.writeBlock(1, headerBlock(c.addr, resizeMethod), false); err != nil {
				return err
			}
			if err := c.fr.WriteData(1, true, []byte{0, 0xff, 0xff, 0xff, 0xff}); err != nil {
				return err
			}
			if err := c.writeBlock(3, headerBlock(c.addr, resizeMethod), false); err != nil {
				return err
			}
			return c.fr.WriteData(3, true, []byte{1, 0, 0, 0, 3, 1, 2, 3})
		},
	}
	k := kinds[rand.IntN(len(kinds))]
	_ = k()
	// Let the server answer (or close) before the next.
	select {
	case <-ctx.Done():
	case <-time.After(50 * time.Millisecond):
	}
}

// rapidReset opens n calls and cancels each at once (CVE-2023-44487).
func (c *rawConn) rapidReset(ctx context.Context, method string, n int) {
	if c.preface() != nil {
		return
	}
	block := headerBlock(c.addr, method)
	for i := range n {
		if ctx.Err() != nil {
			return
		}
		id := uint32(2*i + 1)
		if c.writeBlock(id, block, false) != nil || c.fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			return
		}
	}
}

// pingFlood pings every 10ms until the server hangs up or ctx ends.
func (c *rawConn) pingFlood(ctx context.Context) {
	if c.preface() != nil {
		return
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := uint64(0); ; i++ {
		var data [8]byte
		binary.BigEndian.PutUint64(data[:], i)
		if c.fr.WritePing(false, data) != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// idleConns opens n HTTP/2 connections (preface and settings) that send
// nothing more, and holds them until ctx ends.
func idleConns(ctx context.Context, addr string, n int) {
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
		open  atomic.Int64
	)
	for range 8 {
		wg.Go(func() {
			for ctx.Err() == nil && open.Add(1) <= int64(n) {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					open.Add(-1)
					continue
				}
				io.WriteString(c, http2.ClientPreface)
				http2.NewFramer(c, nil).WriteSettings()
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				wg.Go(func() { io.Copy(io.Discard, c) })
			}
		})
	}
	<-ctx.Done()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
}

// heldConns keeps n connections to addr open, each after the HTTP/2
// preface and settings and silent from then on, opening a new one
// whenever the server closes one, at most perSecond a second, until ctx
// ends.
func heldConns(ctx context.Context, addr string, n, perSecond int) {
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(perSecond))
	defer tick.Stop()
	slots := make(chan struct{}, n)
	for range n {
		slots <- struct{}{}
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-slots:
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
		}
		wg.Go(func() {
			defer func() { slots <- struct{}{} }()
			var d net.Dialer
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return
			}
			stop := context.AfterFunc(ctx, func() { c.Close() })
			defer stop()
			defer c.Close()
			io.WriteString(c, http2.ClientPreface)
			http2.NewFramer(c, nil).WriteSettings()
			io.Copy(io.Discard, c) // until the server or ctx closes it
		})
	}
}

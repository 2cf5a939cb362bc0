package chaos

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-dev/shoal/grpcclient"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
)

// grpcPort is the thumbnailers' gRPC port on their own loopback
// addresses: one port for all, as a headless Service's A records carry
// none.
const grpcPort = "8082"

// thumbnailerGRPCEnv serves Resize on grpcPort, taking the uploads HTTP
// takes, with a short drain so a rolling restart stays short, and no
// cache, so every call is work.
var thumbnailerGRPCEnv = []string{
	"GRPC_PORT=" + grpcPort, "GRPC_MAX_RECV_MSG_SIZE=10485824", "DRAIN_DELAY=1s", "SHUTDOWN_TIMEOUT=10s", "CACHE_BYTES=-1",
}

// TestGRPCRollingRestart: three thumbnailer processes behind a DNS name,
// as a headless Service's, are replaced one by one (SIGTERM to the old
// one as its record leaves the name, start of its replacement, wait until
// it is ready and its record is in, next) while a grpcclient ClientConn
// with Shoal's defaults and consistent hashing on the image's digest keeps
// four callers of Resize busy. Not one call may fail: the old replica's
// health turns NOT_SERVING at SIGTERM, its connections get GOAWAY during
// the drain and finish their calls, and the client re-resolves the name
// and retries what a closing connection refused.
func TestGRPCRollingRestart(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
	}{
		{"shoal's client defaults", 0},
		// Without retries only the drain keeps calls whole: a replica
		// killed at once fails the calls it holds (SIGKILL in place of
		// SIGTERM fails this case, and not the first).
		{"no retries", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { rollingRestart(t, tt.maxAttempts) })
	}
}

func rollingRestart(t *testing.T, maxAttempts int) {
	const (
		name     = "thumbnailer-headless.chaos.test"
		workers  = 4
		maxCalls = 50_000 // a bound; the rollout ends the load first
	)
	olds := make([]*proc, 3)
	for i := range olds {
		olds[i] = startThumbnailer(t, thumbnailerGRPCEnv...)
	}
	ns := startDNS(t, name)
	ns.set(hostsOf(olds...)...)
	cc, err := grpcclient.New("dns://"+ns.addr+"/"+name+":"+grpcPort, grpcclient.Config{
		Policy: grpcclient.ConsistentHash, MaxAttempts: maxAttempts,
		// The resolver looks again soon after a replica joins; its
		// connection losses ask for a lookup at once.
		DNSInterval: 200 * time.Millisecond, DNSMinInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := pb.NewThumbnailerClient(cc)

	// 32 distinct small images: calls spread over the replicas by their
	// digests. The replicas cache nothing, so each call is work in
	// flight that a replica going away must finish, yet small enough
	// that the load tests the restart, not the CPU.
	images := make([][]byte, 32)
	for i := range images {
		images[i] = smallPNG(t, i)
	}
	var (
		mu       sync.Mutex
		servedBy = map[string]int{}
		phase    atomic.Int32 // index of the replica being replaced; 3 once done
		perPhase [4]atomic.Int64
	)
	ctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	var loaded sync.WaitGroup
	var res loadResult
	loaded.Go(func() {
		res = hammer(ctx, workers, maxCalls, func(ctx context.Context, i int) error {
			img := images[i%len(images)]
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			var header metadata.MD
			resp, err := c.Resize(grpcclient.WithBalanceKey(callCtx, thumbnail.Digest(img)),
				&pb.ResizeRequest{Image: img, Width: 16, Height: 16}, grpc.Header(&header))
			if err != nil && ctx.Err() != nil {
				return ctx.Err() // the load's end, not a failure
			}
			if err != nil {
				return err
			}
			if resp.ContentType != "image/png" || len(resp.Thumbnail) == 0 {
				return fmt.Errorf("answer %q of %d bytes", resp.ContentType, len(resp.Thumbnail))
			}
			perPhase[phase.Load()].Add(1)
			mu.Lock()
			for _, by := range header.Get("x-served-by") {
				servedBy[by]++
			}
			mu.Unlock()
			return nil
		})
	})
	// Calls flow to every replica before the first is touched.
	waitCalls(t, &perPhase[0], 200)

	news := make([]*proc, 0, len(olds))
	for i, old := range olds {
		phase.Store(int32(i))
		before := perPhase[i].Load()
		// Kubernetes sends SIGTERM and takes the pod's address out of
		// the Service at about the same time; the drain covers the
		// clients that have not heard yet.
		ns.set(hostsOf(append(slices.Clone(olds[i+1:]), news...)...)...)
		old.Signal(syscall.SIGTERM)
		nu := startThumbnailer(t, thumbnailerGRPCEnv...)
		news = append(news, nu)
		ns.set(hostsOf(append(slices.Clone(olds[i+1:]), news...)...)...)
		waitCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := old.Wait(waitCtx)
		cancel()
		if err != nil {
			t.Fatalf("replica %d after SIGTERM: %v\n%s", i, err, old.tail(30))
		}
		// Calls went on while this replica was replaced.
		waitCalls(t, &perPhase[i], before+100)
	}
	phase.Store(3)
	// The replacements take the load alone for a while.
	waitCalls(t, &perPhase[3], 300)
	stopLoad()
	loaded.Wait()

	if res.Failed != 0 {
		t.Fatalf("%d of %d calls failed through the rolling restart:\n%v", res.Failed, res.OK+res.Failed, res)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, nu := range news {
		if servedBy[nu.name+"@"+nu.Host] == 0 {
			t.Errorf("replacement %s served no call: %v", nu.Host, servedBy)
		}
	}
	t.Logf("%d calls, none failed; per phase %d %d %d %d; served by %v",
		res.OK, perPhase[0].Load(), perPhase[1].Load(), perPhase[2].Load(), perPhase[3].Load(), servedBy)
}

// waitCalls waits until n reaches want, failing the test after 60s.
func waitCalls(t *testing.T, n *atomic.Int64, want int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.Load() < want {
		select {
		case <-ctx.Done():
			t.Fatalf("%d calls succeeded in 60s, want %d", n.Load(), want)
		case <-tick.C:
		}
	}
}

// smallPNG is a 64x64 PNG that differs for each seed.
func smallPNG(t *testing.T, seed int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for y := range 64 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{uint8(seed), uint8(x * 4), uint8(y * 4), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hostsOf returns the loopback addresses of ps, for A records.
func hostsOf(ps ...*proc) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Host
	}
	return out
}

// dnsServer answers A queries for one name with the addresses set last,
// on a loopback UDP port: the cluster DNS of a headless Service.
type dnsServer struct {
	addr string
	name string
	mu   sync.Mutex
	ips  []string
}

func startDNS(t testing.TB, name string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), name: dns.Fqdn(name)}
	started := make(chan struct{})
	srv := &dns.Server{PacketConn: pc, Handler: d, NotifyStartedFunc: func() { close(started) }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ActivateAndServe()
	}()
	<-started
	t.Cleanup(func() {
		_ = srv.Shutdown()
		<-done
	})
	return d
}

func (d *dnsServer) set(ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ips = ips
}

func (d *dnsServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	d.mu.Lock()
	ips := slices.Clone(d.ips)
	d.mu.Unlock()
	switch {
	case len(r.Question) == 0 || r.Question[0].Name != d.name:
		m.Rcode = dns.RcodeNameError
	case r.Question[0].Qtype == dns.TypeA:
		for _, ip := range ips {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: d.name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 0},
				A:   net.ParseIP(ip),
			})
		}
	}
	_ = w.WriteMsg(m)
}

// TestHungGRPCThumbnailerLosesNoRequest stops one of three thumbnailers
// with SIGSTOP (it keeps its connections and answers nothing) while users
// make thumbnails through a gallery calling them over gRPC with
// consistent hashing. Each call that meets it must time out after its
// per-try half of THUMBNAILER_TIMEOUT and be tried on another replica, as
// the HTTP call is: no user request may fail. Without a per-try timeout
// every call in flight to it waited the whole timeout and failed with 504.
func TestHungGRPCThumbnailerLosesNoRequest(t *testing.T) {
	const (
		name    = "thumbnailer-headless.chaos.test"
		workers = 4
		count   = 400
		stopAt  = 100 // successful requests before the SIGSTOP
		timeout = 4 * time.Second
	)
	ths := []*proc{startThumbnailer(t, thumbnailerGRPCEnv...), startThumbnailer(t, thumbnailerGRPCEnv...), startThumbnailer(t, thumbnailerGRPCEnv...)}
	ns := startDNS(t, name)
	ns.set(hostsOf(ths...)...)
	g := startGallery(t, "THUMBNAILER_GRPC=dns://"+ns.addr+"/"+name+":"+grpcPort, "THUMBNAILER_TIMEOUT="+timeout.String())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	u := newUser(ctx, t, g)
	imgs := pngs(t, 64)
	victim := ths[0]
	defer func() {
		if !victim.Exited() {
			victim.Signal(syscall.SIGCONT)
		}
	}()
	var (
		ok      atomic.Int64
		stopped atomic.Bool
		slow    atomic.Int64 // requests after the stop that took a per-try timeout
		once    sync.Once
		stopNow = make(chan struct{})
	)
	done := make(chan loadResult, 1)
	go func() {
		done <- hammer(ctx, workers, count, func(ctx context.Context, i int) error {
			t0 := time.Now()
			_, err := u.thumbnail(ctx, imgs[i%len(imgs)])
			if stopped.Load() && time.Since(t0) >= timeout/2 {
				slow.Add(1)
			}
			if err == nil && ok.Add(1) == stopAt {
				once.Do(func() { close(stopNow) })
			}
			return err
		})
	}()
	select {
	case <-stopNow:
	case res := <-done:
		t.Fatalf("load ended before the stop: %v", res)
	}
	victim.Signal(syscall.SIGSTOP)
	stopped.Store(true)
	res := <-done
	t.Logf("load: %v; %d requests after the SIGSTOP waited a per-try timeout (%v)", res, slow.Load(), timeout/2)
	if res.Failed != 0 || res.OK != count {
		t.Errorf("lost requests: %v", res)
	}
}

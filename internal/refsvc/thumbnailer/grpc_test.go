package thumbnailer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"image/png"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail/thumbnailtest"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
)

// newGRPC serves cfg's API over gRPC on a loopback port, as the service
// kit would (its receive limit the API's), until the test ends.
func newGRPC(t *testing.T, cfg Config) (*API, pb.ThumbnailerClient) {
	t.Helper()
	cfg.Logger = slog.New(slog.DiscardHandler)
	api, err := New(cfg, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(api.MaxRecvMsgSize()))
	api.RegisterGRPC(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = srv.Serve(ln) })
	conn, err := grpc.NewClient(ln.Addr().String(),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20), grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		wg.Wait()
	})
	return api, pb.NewThumbnailerClient(conn)
}

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGRPCResizeAnswers(t *testing.T) {
	api, c := newGRPC(t, Config{MaxBodyBytes: 64 << 10, MaxPixels: 200 * 200})
	good := pngBytes(t, 120, 80)
	tests := []struct {
		name     string
		req      *pb.ResizeRequest
		wantCode codes.Code
		wantMsg  string // in the status message
	}{
		{"ok", &pb.ResizeRequest{Image: good, Width: 60, Height: 60, Fit: pb.Fit_FIT_CONTAIN}, codes.OK, ""},
		{"fit unspecified is contain", &pb.ResizeRequest{Image: good, Width: 60, Height: 60}, codes.OK, ""},
		{"missing width", &pb.ResizeRequest{Image: good, Height: 60}, codes.InvalidArgument, "width 0 is outside 1..4096"},
		{"huge height", &pb.ResizeRequest{Image: good, Width: 6, Height: 1 << 31}, codes.InvalidArgument, "height 4097 is outside 1..4096"},
		{"unknown fit", &pb.ResizeRequest{Image: good, Width: 6, Height: 6, Fit: 9}, codes.InvalidArgument, "fit 9 is not one of"},
		{"garbage", &pb.ResizeRequest{Image: []byte("not an image"), Width: 6, Height: 6}, codes.InvalidArgument, "bad image: not a PNG, JPEG or GIF"},
		{"empty", &pb.ResizeRequest{Width: 6, Height: 6}, codes.InvalidArgument, "bad image"},
		{"truncated", &pb.ResizeRequest{Image: good[:len(good)-20], Width: 6, Height: 6}, codes.InvalidArgument, "bad image: decoding png"},
		{"too many pixels", &pb.ResizeRequest{Image: pngBytes(t, 300, 300), Width: 6, Height: 6}, codes.ResourceExhausted, "300x300 exceeds 40000 pixels"},
		// The HTTP API takes a body of exactly MaxBodyBytes: so does this.
		{"upload at the limit", &pb.ResizeRequest{Image: make([]byte, 64<<10), Width: 6, Height: 6}, codes.InvalidArgument, "bad image"},
		// grpc-go refuses the message before Resize sees it.
		{"upload over the limit", &pb.ResizeRequest{Image: make([]byte, 64<<10+requestOverhead), Width: 6, Height: 6}, codes.ResourceExhausted, "larger than max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var header, trailer metadata.MD
			resp, err := c.Resize(callCtx(t), tt.req, grpc.Header(&header), grpc.Trailer(&trailer))
			st := status.Convert(err)
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Fatalf("Resize: %v, want %v with %q", err, tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(st.Message(), "127.0.0.1") || strings.Contains(st.Message(), ".go:") {
				t.Errorf("message %q names the process's internals", st.Message())
			}
			if want := reasonOf(tt.wantCode); tt.wantMsg != "larger than max" && reasonIn(st) != want {
				t.Errorf("ErrorInfo reason %q, want %q", reasonIn(st), want)
			}
			if len(trailer.Get(PushbackMetadata)) != 0 {
				t.Errorf("pushback %v on a %v", trailer.Get(PushbackMetadata), st.Code())
			}
			if tt.wantCode != codes.OK {
				return
			}
			sum := sha256.Sum256(tt.req.Image)
			if resp.Digest != hex.EncodeToString(sum[:]) || header.Get(DigestMetadata)[0] != resp.Digest {
				t.Errorf("digest %q, header %v, want %x", resp.Digest, header.Get(DigestMetadata), sum)
			}
			img, err := png.Decode(bytes.NewReader(resp.Thumbnail))
			if err != nil || resp.ContentType != "image/png" {
				t.Fatalf("result %s is not a PNG: %v", resp.ContentType, err)
			}
			if b := img.Bounds(); b.Dx() != 60 || b.Dy() != 40 {
				t.Errorf("result %v, want 60x40", b)
			}
		})
	}
	assertBudgetsFree(t, api)
}

// TestGRPCResizeCaches: the same image and options are made once; the
// second call is answered from the cache, as over HTTP, whose cache it
// shares.
func TestGRPCResizeCaches(t *testing.T) {
	api, c := newGRPC(t, Config{})
	req := &pb.ResizeRequest{Image: pngBytes(t, 50, 50), Width: 10, Height: 10}
	first, err := c.Resize(callCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	second, err := c.Resize(callCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Cached || !second.Cached || !bytes.Equal(first.Thumbnail, second.Thumbnail) {
		t.Fatalf("cached %v then %v, same bytes %v; want a miss, then the same bytes from the cache",
			first.Cached, second.Cached, bytes.Equal(first.Thumbnail, second.Thumbnail))
	}
	if api.cache.Len() != 1 {
		t.Fatalf("cache holds %d entries, want 1", api.cache.Len())
	}
}

// TestGRPCResizeMemoryBudget: the HTTP API's memory budget cases
// (TestMemoryBudget) over gRPC: an image whose decoding needs more than
// the whole images budget is refused from its header with
// RESOURCE_EXHAUSTED, the decompression bomb among them.
func TestGRPCResizeMemoryBudget(t *testing.T) {
	// 192 MiB: 96 − 32 (cache) − 16 = 48 MiB usable, 24 MiB for images.
	api, c := newGRPC(t, Config{MemoryLimit: 192 << 20, MaxBodyBytes: 4 << 20, MemoryWait: -1})
	tests := []struct {
		name          string
		image         []byte
		width, height uint32
		wantCode      codes.Code
	}{
		{"interlaced 16-bit png bomb", thumbnailtest.PNG(2000, 1500, true, true), 64, 64, codes.ResourceExhausted},
		{"progressive jpeg", thumbnailtest.JPEG(3000, 2000, 3, true), 64, 64, codes.ResourceExhausted},
		{"same jpeg, baseline", thumbnailtest.JPEG(3000, 2000, 3, false), 64, 64, codes.OK},
		{"one pixel to 4096x4096", thumbnailtest.PNG(1, 1, false, false), 4096, 4096, codes.ResourceExhausted},
		{"one pixel to 1024x1024", thumbnailtest.PNG(1, 1, false, false), 1024, 1024, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.Resize(callCtx(t), &pb.ResizeRequest{Image: tt.image, Width: tt.width, Height: tt.height})
			if got := status.Code(err); got != tt.wantCode {
				t.Fatalf("Resize: %v, want %v", err, tt.wantCode)
			}
			if tt.wantCode == codes.ResourceExhausted && !strings.Contains(status.Convert(err).Message(), "images budget") {
				t.Errorf("message %q does not name the images budget", status.Convert(err).Message())
			}
		})
	}
	assertBudgetsFree(t, api)
}

// TestGRPCResizeBusy: with a budget spent by others, a call waits up to
// MemoryWait, then gets UNAVAILABLE with a second's pushback (HTTP's 503
// with Retry-After: 1); one whose memory frees up in time is served.
func TestGRPCResizeBusy(t *testing.T) {
	tests := []struct {
		name    string
		budget  string
		wait    time.Duration
		release bool // free the budget once the call waits
	}{
		{"uploads spent, no wait", "uploads", -1, false},
		{"images spent, no wait", "images", -1, false},
		{"images spent, waits for its turn", "images", time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api, c := newGRPC(t, Config{MemoryLimit: 192 << 20, MaxBodyBytes: 4 << 20, MemoryWait: tt.wait})
			b := api.images
			if tt.budget == "uploads" {
				b = api.uploads
			}
			release, err := b.Acquire(context.Background(), b.Capacity())
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			type answer struct {
				err     error
				trailer metadata.MD
			}
			done := make(chan answer, 1)
			go func() {
				var trailer metadata.MD
				_, err := c.Resize(callCtx(t), &pb.ResizeRequest{Image: pngBytes(t, 20, 20), Width: 8, Height: 8}, grpc.Trailer(&trailer))
				done <- answer{err, trailer}
			}()
			if tt.release {
				// Its upload counted, the call is on its way to, or in,
				// the images budget's queue.
				waitFor(t, func() bool { return api.uploads.InUse() > 0 })
				release()
			}
			got := <-done
			if tt.release {
				if got.err != nil {
					t.Fatalf("Resize after the budget freed: %v", got.err)
				}
				return
			}
			st := status.Convert(got.err)
			if st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "memory for "+tt.budget+" is in use") {
				t.Fatalf("Resize: %v, want UNAVAILABLE naming %s", got.err, tt.budget)
			}
			if reasonIn(st) != ReasonMemoryInUse {
				t.Errorf("ErrorInfo reason %q, want %q", reasonIn(st), ReasonMemoryInUse)
			}
			if p := got.trailer.Get(PushbackMetadata); len(p) != 1 || p[0] != "1000" {
				t.Fatalf("pushback %v, want [1000]", p)
			}
			release()
			assertBudgetsFree(t, api)
		})
	}
}

// TestGRPCResizeCanceled: a caller that leaves mid-decode stops the work,
// and every byte it held returns to its budget.
func TestGRPCResizeCanceled(t *testing.T) {
	api, c := newGRPC(t, Config{})
	// 9 megapixels: long enough to decode that the cancel lands inside.
	img := thumbnailtest.PNG(3000, 3000, false, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.Resize(ctx, &pb.ResizeRequest{Image: img, Width: 64, Height: 64})
		done <- err
	}()
	waitFor(t, func() bool { return api.images.InUse() > 0 })
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Fatalf("Resize after cancel: %v, want CANCELED", err)
	}
	assertBudgetsFree(t, api)
	if api.cache.Len() != 0 {
		t.Fatalf("a canceled thumbnail reached the cache")
	}
}

func reasonOf(c codes.Code) string {
	return map[codes.Code]string{codes.InvalidArgument: ReasonBadRequest, codes.ResourceExhausted: ReasonTooLarge, codes.Unavailable: ReasonMemoryInUse}[c]
}

// reasonIn returns the reason of st's ErrorInfo in ErrorDomain, or "".
func reasonIn(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.Domain == ErrorDomain {
			return ei.Reason
		}
	}
	return ""
}

// waitFor polls cond until it holds, failing the test after 30s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("condition not met in 30s")
		case <-tick.C:
		}
	}
}

// assertBudgetsFree waits until the server's handlers have given back
// every byte of every budget.
func assertBudgetsFree(t *testing.T, api *API) {
	t.Helper()
	waitFor(t, func() bool {
		return api.uploads.InUse() == 0 && api.images.InUse() == 0 && api.results.inUse() == 0
	})
}

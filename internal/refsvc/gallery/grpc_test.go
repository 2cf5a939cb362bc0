package gallery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcclient"
	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail/thumbnailtest"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
	"github.com/shoal-dev/shoal/session"
)

// fakeResize answers every Resize with resp or err, setting header and
// trailer metadata, and keeps the incoming metadata of the last call.
type fakeResize struct {
	pb.UnimplementedThumbnailerServer
	resp    *pb.ResizeResponse
	err     error
	header  metadata.MD
	trailer metadata.MD
	block   bool // answer only once the call's context ends

	mu   sync.Mutex
	last metadata.MD
}

func (f *fakeResize) Resize(ctx context.Context, _ *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	f.last = md
	f.mu.Unlock()
	if f.block {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	_ = grpc.SetHeader(ctx, f.header)
	_ = grpc.SetTrailer(ctx, f.trailer)
	return f.resp, f.err
}

func (f *fakeResize) lastMD() metadata.MD {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// serveGRPC serves srv's Thumbnailer on a loopback port until the test
// ends and returns its address.
func serveGRPC(t *testing.T, register func(grpc.ServiceRegistrar)) string {
	t.Helper()
	s := grpc.NewServer()
	register(s)
	// grpcclient watches the health service; a server without it is
	// taken as healthy, with an error logged per connection.
	healthpb.RegisterHealthServer(s, grpchealth.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.Serve(ln) })
	t.Cleanup(func() {
		s.Stop()
		wg.Wait()
	})
	return ln.Addr().String()
}

// newGRPCGallery serves the gallery calling the Thumbnailer at addr
// through grpcclient, and returns its URL and a client signed in as ann.
func newGRPCGallery(t *testing.T, addr string, cfg gallery.Config, ccfg grpcclient.Config) (string, *http.Client) {
	t.Helper()
	ccfg.Policy, ccfg.Logger = grpcclient.ConsistentHash, slog.New(slog.DiscardHandler)
	cc, err := grpcclient.New("dns:///"+addr, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	m, err := session.NewManager(session.Config{Secret: bytes.Repeat([]byte("s"), 32), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sessions, cfg.GRPC, cfg.Logger = m, pb.NewThumbnailerClient(cc), slog.New(slog.DiscardHandler)
	api, err := gallery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if code, body := call(t, c, "POST", srv.URL+"/v1/login", `{"user":"ann"}`); code != http.StatusOK {
		t.Fatalf("login: %d %s", code, body)
	}
	return srv.URL, c
}

// thumbnailerStatus is a status as the thumbnailer answers it itself.
func thumbnailerStatus(t *testing.T, code codes.Code, reason, msg string) error {
	t.Helper()
	st, err := status.New(code, msg).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: thumbnailer.ErrorDomain})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// TestGRPCUpstreamAnswers: a Resize's outcome reaches the gallery's
// caller as the HTTP call's would: the thumbnailer's refusals of the
// image with its message, its shedding as 503 with its pushback as
// Retry-After, the call's time running out as 504, anything else 502.
func TestGRPCUpstreamAnswers(t *testing.T) {
	png := &pb.ResizeResponse{Thumbnail: []byte("thumb"), ContentType: "image/png"}
	tests := []struct {
		name           string
		fake           *fakeResize
		wantStatus     int
		wantRetryAfter string
		wantBody       string // in the body
	}{
		{name: "ok", fake: &fakeResize{resp: png, header: metadata.Pairs("x-served-by", "thumbnailer-0")}, wantStatus: 200, wantBody: "thumb"},
		{name: "bad image", fake: &fakeResize{err: thumbnailerStatus(t, codes.InvalidArgument, thumbnailer.ReasonBadRequest, "thumbnail: bad image: not a PNG, JPEG or GIF")},
			wantStatus: 400, wantBody: "bad image: not a PNG, JPEG or GIF"},
		{name: "image too large", fake: &fakeResize{err: thumbnailerStatus(t, codes.ResourceExhausted, thumbnailer.ReasonTooLarge, "thumbnail: image too large: 9000x9000 exceeds 40000000 pixels")},
			wantStatus: 413, wantBody: "9000x9000 exceeds"},
		{name: "message made safe", fake: &fakeResize{err: thumbnailerStatus(t, codes.InvalidArgument, thumbnailer.ReasonBadRequest, "bad\x00image\n<script>")},
			wantStatus: 400, wantBody: `bad image \u003cscript\u003e`},
		{name: "shedding", fake: &fakeResize{err: status.Error(codes.Unavailable, "busy"), trailer: metadata.Pairs(thumbnailer.PushbackMetadata, "1500")},
			wantStatus: 503, wantRetryAfter: "2", wantBody: "shedding"},
		{name: "memory in use", fake: &fakeResize{err: thumbnailerStatus(t, codes.Unavailable, thumbnailer.ReasonMemoryInUse, "memory"), trailer: metadata.Pairs(thumbnailer.PushbackMetadata, "1000")},
			wantStatus: 503, wantRetryAfter: "1"},
		{name: "pushback too long", fake: &fakeResize{err: status.Error(codes.Unavailable, "busy"), trailer: metadata.Pairs(thumbnailer.PushbackMetadata, "3600001")},
			wantStatus: 502, wantBody: "thumbnailer unreachable"},
		{name: "unavailable without pushback", fake: &fakeResize{err: status.Error(codes.Unavailable, "dial tcp 10.1.2.3:8082: refused")},
			wantStatus: 502, wantBody: "thumbnailer unreachable"},
		{name: "invalid argument not from the thumbnailer", fake: &fakeResize{err: status.Error(codes.InvalidArgument, "internal detail")},
			wantStatus: 502, wantBody: "InvalidArgument"},
		{name: "internal", fake: &fakeResize{err: status.Error(codes.Internal, "panic at foo.go:12")},
			wantStatus: 502, wantBody: "thumbnailer failed with code Internal"},
		{name: "not an image", fake: &fakeResize{resp: &pb.ResizeResponse{Thumbnail: []byte("<script>"), ContentType: "text/html"}},
			wantStatus: 502, wantBody: "other than a PNG or JPEG"},
		// 8x8 takes far less than a MiB: grpc-go stops reading at the
		// call's receive limit, and the answer says so as the HTTP
		// call's does.
		{name: "answer too large", fake: &fakeResize{resp: &pb.ResizeResponse{Thumbnail: make([]byte, 4<<20), ContentType: "image/png"}},
			wantStatus: 502, wantBody: "thumbnailer response is larger than 4360 bytes, the most a 8x8 thumbnail takes"},
		{name: "time runs out", fake: &fakeResize{block: true}, wantStatus: 504, wantBody: "did not answer in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := serveGRPC(t, func(s grpc.ServiceRegistrar) { pb.RegisterThumbnailerServer(s, tt.fake) })
			url, c := newGRPCGallery(t, addr, gallery.Config{Timeout: time.Second}, grpcclient.Config{MaxAttempts: 1})
			img := []byte("img")
			r := do(t, c, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", img)
			if r.code != tt.wantStatus || r.hdr.Get("Retry-After") != tt.wantRetryAfter || !strings.Contains(string(r.body), tt.wantBody) {
				t.Fatalf("got %d, Retry-After %q, body %s; want %d, %q, body with %q",
					r.code, r.hdr.Get("Retry-After"), r.body, tt.wantStatus, tt.wantRetryAfter, tt.wantBody)
			}
			for _, leak := range []string{"10.1.2.3", "foo.go", "internal detail"} {
				if strings.Contains(string(r.body), leak) {
					t.Errorf("body %s passes on %q", r.body, leak)
				}
			}
			if r.code != http.StatusOK {
				return
			}
			if got := tt.fake.lastMD().Get(grpcclient.BalanceKey); len(got) != 1 || got[0] != thumbnail.Digest(img) {
				t.Errorf("balance key %v, want the digest %s", got, thumbnail.Digest(img))
			}
			if r.hdr.Get("X-Upstream-Served-By") != "thumbnailer-0" || r.hdr.Get("Content-Type") != "image/png" {
				t.Errorf("headers %v", r.hdr)
			}
		})
	}
}

// TestGRPCUpstreamRetriesShedding: a thumbnailer that sheds once is
// asked again after its pushback, within the call's time, under the
// client's default retry policy.
func TestGRPCUpstreamRetriesShedding(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	fake := &flaky{answer: func() (*pb.ResizeResponse, metadata.MD, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return nil, metadata.Pairs(thumbnailer.PushbackMetadata, "10"), status.Error(codes.Unavailable, "busy")
		}
		return &pb.ResizeResponse{Thumbnail: []byte("thumb"), ContentType: "image/jpeg"}, nil, nil // no trailer
	}}
	addr := serveGRPC(t, func(s grpc.ServiceRegistrar) { pb.RegisterThumbnailerServer(s, fake) })
	url, c := newGRPCGallery(t, addr, gallery.Config{}, grpcclient.Config{})
	r := do(t, c, http.MethodPost, url+"/v1/thumbnails?width=8&height=8", []byte("img"))
	if r.code != http.StatusOK || r.hdr.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("got %d %s, want 200 image/jpeg", r.code, r.body)
	}
	var hist struct{ History []gallery.HistoryEntry }
	h := do(t, c, http.MethodGet, url+"/v1/history", nil)
	if err := json.Unmarshal(h.body, &hist); err != nil || len(hist.History) != 1 || hist.History[0].ContentType != "image/jpeg" {
		t.Fatalf("history %s: %v", h.body, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 2 {
		t.Fatalf("%d calls, want 2", calls)
	}
}

// flaky answers each Resize as answer says.
type flaky struct {
	pb.UnimplementedThumbnailerServer
	answer func() (*pb.ResizeResponse, metadata.MD, error)
}

func (f *flaky) Resize(ctx context.Context, _ *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	resp, trailer, err := f.answer()
	_ = grpc.SetTrailer(ctx, trailer)
	return resp, err
}

// TestGRPCReferenceSystem runs the thumbnailer and the gallery as their
// mains do, the gallery calling Resize on the thumbnailer's GRPC_PORT
// (THUMBNAILER_GRPC; THUMBNAILER_URL points nowhere), and checks the
// answers a user sees, the readiness report and the answer once the
// thumbnailer is gone.
func TestGRPCReferenceSystem(t *testing.T) {
	thumb := start(t, thumbnailerProgram(), "thumbnailer-0", map[string]string{
		"GRPC_PORT": "-1", "GRPC_MAX_RECV_MSG_SIZE": "10485824", "MAX_PIXELS": "1000000",
	})
	gal := start(t, galleryProgram(), "gallery-0", map[string]string{
		"SESSION_SECRET": secret, "THUMBNAILER_URL": "http://127.0.0.1:1",
		"THUMBNAILER_GRPC": "dns:///" + thumb.svc.GRPCAddr().String(),
	})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	if r := do(t, c, http.MethodPost, gal.url+"/v1/login", []byte(`{"user":"ann"}`)); r.code != http.StatusOK {
		t.Fatalf("login: %d %s", r.code, r.body)
	}
	tests := []struct {
		name     string
		query    string
		image    []byte
		wantCode int
		wantBody string
	}{
		{"thumbnail", "width=40&height=40", testPNG(t, 120, 60), 200, ""},
		{"same again, from the cache", "width=40&height=40", testPNG(t, 120, 60), 200, ""},
		{"not an image", "width=40&height=40", []byte("hello"), 400, "bad image: not a PNG, JPEG or GIF"},
		{"decompression bomb", "width=40&height=40", thumbnailtest.PNG(2000, 1000, false, false), 413, "2000x1000 exceeds 1000000 pixels"},
		{"bad fit", "width=40&height=40&fit=zoom", testPNG(t, 10, 10), 400, "fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, c, http.MethodPost, gal.url+"/v1/thumbnails?"+tt.query, tt.image)
			if r.code != tt.wantCode || !strings.Contains(string(r.body), tt.wantBody) {
				t.Fatalf("%d %s, want %d with %q", r.code, r.body, tt.wantCode, tt.wantBody)
			}
			if r.code != http.StatusOK {
				return
			}
			if _, err := png.Decode(bytes.NewReader(r.body)); err != nil || r.hdr.Get("X-Upstream-Served-By") != "thumbnailer-0" {
				t.Fatalf("answer from %q is no PNG: %v", r.hdr.Get("X-Upstream-Served-By"), err)
			}
		})
	}
	var hist struct{ History []gallery.HistoryEntry }
	if r := do(t, c, http.MethodGet, gal.url+"/v1/history", nil); json.Unmarshal(r.body, &hist) != nil || len(hist.History) != 2 ||
		hist.History[1].Digest != thumbnail.Digest(testPNG(t, 120, 60)) || hist.History[1].ServedBy != "thumbnailer-0" {
		t.Fatalf("history %s", r.body)
	}
	if code, rep := healthtest.Get(t, gal.adm+"/readyz"); code != http.StatusOK || slices.Contains(rep.Degraded, "thumbnailer") {
		t.Fatalf("readyz %d %+v with the thumbnailer up", code, rep)
	}

	thumb.stop()
	waitThumbnailerDegraded(t, gal.adm+"/readyz")
	if r := do(t, c, http.MethodPost, gal.url+"/v1/thumbnails?width=41&height=41", testPNG(t, 120, 60)); r.code != http.StatusBadGateway {
		t.Fatalf("with the thumbnailer gone: %d %s, want 502", r.code, r.body)
	}
}

// waitThumbnailerDegraded polls readiness until it names the thumbnailer
// check degraded; readiness must answer 200 throughout.
func waitThumbnailerDegraded(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		code, rep := healthtest.Get(t, url)
		if code != http.StatusOK {
			t.Fatalf("readyz %d %+v, want 200: the thumbnailer check is not critical", code, rep)
		}
		if slices.Contains(rep.Degraded, "thumbnailer") {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("readyz degraded %v, want thumbnailer among them", rep.Degraded)
		case <-tick.C:
		}
	}
}

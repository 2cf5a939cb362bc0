package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
)

// galleryMemoryLimit is the gallery's memory limit in deploy/base
// (128Mi), passed as MEMORY_LIMIT as the deploy kit passes it.
const galleryMemoryLimit = 128 << 20

// floodingThumbnailer answers every thumbnail 200 with a gigabyte of
// zeros, declared in its Content-Length or chunked, for as long as its
// caller reads.
func floodingThumbnailer(declared bool) http.Handler {
	const gib = 1 << 30
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "image/png")
		if declared {
			w.Header().Set("Content-Length", strconv.Itoa(gib))
		}
		chunk := make([]byte, 64<<10)
		for left := gib; left > 0; left -= len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	})
}

// TestFloodingThumbnailerDoesNotExhaustTheGallery points a gallery with
// the deploy kit's 128 MiB at a thumbnailer that answers every call with
// 1 GiB, and asks it for 48 thumbnails, a third of the largest size,
// sixteen at a time: every answer is a 502 with a JSON error (or a 503 with
// Retry-After while the reads fill the gallery's memory budget), and the
// gallery's peak RSS stays below its limit.
func TestFloodingThumbnailerDoesNotExhaustTheGallery(t *testing.T) {
	tests := []struct {
		name     string
		declared bool
	}{
		{"Content-Length 1 GiB", true},
		{"chunked 1 GiB", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := httptest.NewServer(floodingThumbnailer(tt.declared))
			defer up.Close()
			g := startGallery(t, "THUMBNAILER_ADDRS="+up.Listener.Addr().String(),
				fmt.Sprintf("MEMORY_LIMIT=%d", galleryMemoryLimit))
			askThumbnails(t, g, false)
		})
	}
}

// galleryGRPCThumbnail is the largest thumbnail the deploy kit's gallery
// takes over gRPC: a third of what its uploads budget (a quarter of its
// memory) holds beside the largest upload (10 MiB), as grpc-go holds an
// answer three times while it is decoded.
const galleryGRPCThumbnail = (galleryMemoryLimit/4 - 10<<20) / 3

// largeThumbnails is a gRPC thumbnailer that answers every Resize with as
// many bytes as a thumbnail of that size that does not compress takes,
// and no more than most.
type largeThumbnails struct {
	pb.UnimplementedThumbnailerServer
	most int
}

func (l largeThumbnails) Resize(ctx context.Context, req *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	n := thumbnail.MaxResultBytes(thumbnail.Options{Width: int(req.GetWidth()), Height: int(req.GetHeight())})
	return &pb.ResizeResponse{Thumbnail: make([]byte, min(int(n), l.most)-64), ContentType: "image/png"}, nil
}

// TestLargeGRPCThumbnailsDoNotExhaustTheGallery points a gallery with the
// deploy kit's 128 MiB at a gRPC thumbnailer whose every answer is as large
// as the gallery takes (noise makes a thumbnail that large), or as large
// as a thumbnail of the size can be, above that, and asks for 48
// thumbnails, a third of the largest size, sixteen at a time. grpc-go
// reads a message whole before the gallery sees it, so what it holds must
// be counted before the call: every answer is a 200, a 502 for a thumbnail
// larger than the gallery takes, or a 503 with Retry-After, and the
// gallery's peak RSS stays below its limit.
func TestLargeGRPCThumbnailsDoNotExhaustTheGallery(t *testing.T) {
	tests := []struct {
		name string
		most int
	}{
		{"the largest the gallery takes", galleryGRPCThumbnail},
		{"the largest a thumbnail takes", 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			pb.RegisterThumbnailerServer(srv, largeThumbnails{most: tt.most})
			healthpb.RegisterHealthServer(srv, health.NewServer())
			var wg sync.WaitGroup
			wg.Go(func() { _ = srv.Serve(lis) })
			defer wg.Wait()
			defer srv.Stop()

			g := startGallery(t, "THUMBNAILER_GRPC=dns:///"+lis.Addr().String(),
				fmt.Sprintf("MEMORY_LIMIT=%d", galleryMemoryLimit))
			if codes := askThumbnails(t, g, true); codes[http.StatusOK] == 0 {
				t.Error("no thumbnail answered")
			}
		})
	}
}

// askThumbnails asks the gallery g, whose thumbnailer answers too much,
// for 48 thumbnails, a third of them 2048x2048, sixteen at a time, and
// returns the answers' status codes. Every answer must be a 503 with
// Retry-After, a 502 whose JSON error names the gallery's limit or, when
// served, a 200 with a thumbnail of at least a byte a pixel; and the
// gallery's peak RSS must stay below its limit.
func askThumbnails(t *testing.T, g *proc, served bool) map[int]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u := newUser(ctx, t, g)
	img := pngBody(t)
	var mu sync.Mutex
	codes := map[int]int{}
	const calls = 48
	res := hammer(ctx, 16, calls, func(ctx context.Context, i int) error {
		size := []int{8, 256, 2048}[i%3]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost,
			g.URL(fmt.Sprintf("/v1/thumbnails?width=%d&height=%d", size, size)), bytes.NewReader(img))
		resp, err := u.c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
		if err != nil {
			return err
		}
		mu.Lock()
		codes[resp.StatusCode]++
		mu.Unlock()
		var e struct{ Error string }
		switch {
		case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		case resp.StatusCode == http.StatusBadGateway:
			if json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error, "thumbnailer response is larger than") {
				return fmt.Errorf("502 with body %.200q", body)
			}
		case resp.StatusCode != http.StatusOK || !served:
			return fmt.Errorf("status %d, want 502 or 503 (or 200 when served: %v)", resp.StatusCode, served)
		case len(body) < size*size:
			return fmt.Errorf("a %dx%d thumbnail of %d bytes, want the thumbnailer's", size, size, len(body))
		}
		return nil
	})
	peak := g.PeakRSS()
	t.Logf("%v; answers %v; gallery peak RSS %.1f MiB of %d MiB", res, codes, float64(peak)/(1<<20), galleryMemoryLimit>>20)
	if res.Failed > 0 || res.OK != calls {
		t.Errorf("calls: %v", res)
	}
	if peak >= galleryMemoryLimit {
		t.Errorf("gallery peak RSS %d bytes, at or above the %d limit", peak, galleryMemoryLimit)
	}
	return codes
}

package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"runtime"
	"testing"

	"golang.org/x/image/draw"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail/thumbnailtest"
)

// allocated returns the bytes f allocates: an upper bound on the memory
// it holds at its peak, whatever the collector does meanwhile.
func allocated(t *testing.T, f func()) int64 {
	if raceEnabled {
		t.Skip("the race detector changes what allocations measure")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// decodeCases are one image of each kind the estimate distinguishes.
func decodeCases(t testing.TB) []struct {
	name string
	data []byte
} {
	const w, h = 1200, 900
	return []struct {
		name string
		data []byte
	}{
		{"png rgba8", thumbnailtest.PNG(w, h, false, false)},
		{"png rgba16", thumbnailtest.PNG(w, h, true, false)},
		{"png rgba8 interlaced", thumbnailtest.PNG(w, h, false, true)},
		{"png rgba16 interlaced", thumbnailtest.PNG(w, h, true, true)},
		{"png gray (encoder)", encoded(t, "png", image.NewGray(image.Rect(0, 0, w, h)))},
		{"png gray tRNS", thumbnailtest.GreyTransparentPNG(w, h, false)},
		{"png gray16 tRNS", thumbnailtest.GreyTransparentPNG(w, h, true)},
		{"jpeg grey", thumbnailtest.JPEG(w, h, 1, false)},
		{"jpeg 4:2:0", thumbnailtest.JPEG(w, h, 3, false)},
		{"jpeg grey progressive", thumbnailtest.JPEG(w, h, 1, true)},
		{"jpeg 4:2:0 progressive", thumbnailtest.JPEG(w, h, 3, true)},
		{"jpeg (encoder)", encoded(t, "jpeg", gradient(w, h))},
		{"gif", thumbnailtest.GIF(w, h)},
	}
}

// TestDecodeBytesCoversMeasured is where the factors of DecodeBytes come
// from: for each kind of image it measures what decoding allocates, and
// requires the estimate to cover it without wasting more than a quarter.
func TestDecodeBytesCoversMeasured(t *testing.T) {
	for _, tt := range decodeCases(t) {
		t.Run(tt.name, func(t *testing.T) {
			hd, err := ReadHeader(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var derr error
			got := allocated(t, func() { _, _, derr = Decode(context.Background(), tt.data, Limits{}) })
			if derr != nil {
				t.Fatal(derr)
			}
			est := hd.DecodeBytes()
			t.Logf("%s %dx%d: %.2f bytes/pixel allocated, %.2f estimated", tt.name, hd.Width, hd.Height,
				float64(got)/float64(hd.Width*hd.Height), float64(est)/float64(hd.Width*hd.Height))
			if got > est {
				t.Errorf("decoding allocated %d bytes, more than the estimate %d", got, est)
			}
			if slack := est - got; slack > got/4+1<<20 {
				t.Errorf("estimate %d wastes %d over the %d allocated", est, slack, got)
			}
		})
	}
}

func TestNeedCoversMake(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		opts Options
	}{
		{"shrink interlaced png", thumbnailtest.PNG(1600, 1200, true, true), Options{Width: 256, Height: 256}},
		{"shrink progressive jpeg", thumbnailtest.JPEG(1600, 1200, 3, true), Options{Width: 256, Height: 256, Fit: Cover}},
		{"fill tall from wide", encoded(t, "png", gradient(2000, 100)), Options{Width: 100, Height: 2000, Fit: Fill}},
		{"enlarge one pixel", encoded(t, "png", gradient(1, 1)), Options{Width: 2048, Height: 2048}},
		{"gif", thumbnailtest.GIF(2000, 1500), Options{Width: 300, Height: 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hd, err := ReadHeader(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			var merr error
			got := allocated(t, func() { _, _, merr = Make(context.Background(), tt.data, tt.opts, Limits{}) })
			if merr != nil {
				t.Fatal(merr)
			}
			if need := Need(hd, tt.opts); got > need {
				t.Errorf("Make allocated %d bytes, more than Need's %d", got, need)
			}
		})
	}
}

func TestReadHeader(t *testing.T) {
	tests := []struct {
		name        string
		data        []byte
		want        Header
		wantBadData bool
	}{
		{"png16 interlaced", thumbnailtest.PNG(30, 20, true, true), Header{Format: "png", Width: 30, Height: 20, BytesPerPixel: 8, Interlaced: true}, false},
		{"jpeg progressive", thumbnailtest.JPEG(30, 20, 3, true), Header{Format: "jpeg", Width: 30, Height: 20, BytesPerPixel: 1.5, Progressive: true, Components: 3, jpegPlanes: 1.5}, false},
		{"gif", thumbnailtest.GIF(30, 20), Header{Format: "gif", Width: 30, Height: 20, BytesPerPixel: 1}, false},
		{"png gray", encoded(t, "png", image.NewGray(image.Rect(0, 0, 30, 20))), Header{Format: "png", Width: 30, Height: 20, BytesPerPixel: 1}, false},
		{"png gray tRNS", thumbnailtest.GreyTransparentPNG(30, 20, false), Header{Format: "png", Width: 30, Height: 20, BytesPerPixel: 4}, false},
		{"png gray16 tRNS", thumbnailtest.GreyTransparentPNG(30, 20, true), Header{Format: "png", Width: 30, Height: 20, BytesPerPixel: 8}, false},
		{"text", []byte("hello"), Header{}, true},
		{"jpeg cut in its header", thumbnailtest.JPEG(30, 20, 3, true)[:30], Header{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadHeader(tt.data)
			if (err != nil) != tt.wantBadData || (err != nil && !errors.Is(err, ErrBadImage)) {
				t.Fatalf("err = %v, want bad data %v", err, tt.wantBadData)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzReadHeader(f *testing.F) {
	f.Add(thumbnailtest.PNG(3, 2, true, true))
	f.Add(thumbnailtest.JPEG(3, 2, 3, true))
	f.Add(thumbnailtest.JPEG(3, 2, 1, false))
	f.Add(thumbnailtest.GIF(3, 2))
	f.Add(encoded(f, "jpeg", gradient(8, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		hd, err := ReadHeader(data)
		if err != nil {
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("error %v does not wrap ErrBadImage", err)
			}
			return
		}
		if hd.DecodeBytes() < 0 || hd.BytesPerPixel <= 0 {
			t.Fatalf("header %+v gives %d bytes", hd, hd.DecodeBytes())
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
		if err != nil {
			return // the decoders check more than the header
		}
		if format != hd.Format || cfg.Width != hd.Width || cfg.Height != hd.Height {
			t.Fatalf("header %s %dx%d, image.DecodeConfig %s %dx%d", hd.Format, hd.Width, hd.Height, format, cfg.Width, cfg.Height)
		}
	})
}

// TestResampleMatchesXImageDraw keeps the banded resampler honest against
// the one it replaces.
func TestResampleMatchesXImageDraw(t *testing.T) {
	src := gradient(301, 157)
	for y := 40; y < 60; y++ { // a hard edge, where kernels differ most
		for x := range 301 {
			src.Set(x, y, color.RGBA{255, 255, 255, 255})
		}
	}
	tests := []struct {
		name   string
		dw, dh int
	}{
		{"shrink", 100, 50},
		{"enlarge", 700, 400},
		{"shrink across, enlarge down", 50, 500},
		{"enlarge across, shrink down", 900, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := image.NewRGBA(image.Rect(0, 0, tt.dw, tt.dh))
			if err := resample(context.Background(), got, src, src.Bounds()); err != nil {
				t.Fatal(err)
			}
			want := image.NewRGBA(got.Rect)
			draw.CatmullRom.Scale(want, want.Rect, src, src.Bounds(), draw.Src, nil)
			worst := 0
			for i := range got.Pix {
				worst = max(worst, absDiff(got.Pix[i], want.Pix[i]))
			}
			if worst > 3 {
				t.Errorf("a sample differs by %d from x/image/draw's", worst)
			}
		})
	}
}

func absDiff(a, b uint8) int {
	if a > b {
		return int(a - b)
	}
	return int(b - a)
}

func TestWorkStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("caller left")
	cancel(cause)
	data := thumbnailtest.PNG(400, 300, true, true)
	if _, _, err := Decode(ctx, data, Limits{}); !errors.Is(err, cause) {
		t.Errorf("Decode after cancel: %v, want the cause", err)
	}
	for _, o := range []Options{{Width: 40, Height: 30}, {Width: 4000, Height: 3000}} {
		if _, err := Resize(ctx, gradient(400, 300), o); !errors.Is(err, cause) {
			t.Errorf("Resize to %dx%d after cancel: %v, want the cause", o.Width, o.Height, err)
		}
	}
}

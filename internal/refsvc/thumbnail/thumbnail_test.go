package thumbnail

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
)

// gradient returns a w×h image whose colour varies across both axes, so a
// resample that ignores part of the source changes the result.
func gradient(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x * 255 / max(1, w-1)), uint8(y * 255 / max(1, h-1)), 128, 255})
		}
	}
	return img
}

func encoded(t testing.TB, format string, img image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&buf, img)
	case "jpeg":
		err = jpeg.Encode(&buf, img, nil)
	case "gif":
		err = gif.Encode(&buf, img, nil)
	}
	if err != nil {
		t.Fatalf("encoding %s: %v", format, err)
	}
	return buf.Bytes()
}

func TestResizeBounds(t *testing.T) {
	src := gradient(400, 200)
	tests := []struct {
		name         string
		opts         Options
		wantW, wantH int
	}{
		{"contain wide source", Options{Width: 100, Height: 100, Fit: Contain}, 100, 50},
		{"contain default fit", Options{Width: 100, Height: 100}, 100, 50},
		{"contain tall box", Options{Width: 50, Height: 300, Fit: Contain}, 50, 25},
		{"cover crops", Options{Width: 100, Height: 100, Fit: Cover}, 100, 100},
		{"fill stretches", Options{Width: 30, Height: 90, Fit: Fill}, 30, 90},
		{"upscale contain", Options{Width: 800, Height: 800, Fit: Contain}, 800, 400},
		{"one pixel", Options{Width: 1, Height: 1, Fit: Contain}, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img, err := Resize(context.Background(), src, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := img.Bounds()
			if got.Dx() != tt.wantW || got.Dy() != tt.wantH {
				t.Fatalf("Resize(%+v) = %dx%d, want %dx%d", tt.opts, got.Dx(), got.Dy(), tt.wantW, tt.wantH)
			}
		})
	}
}

func TestResizeCoverKeepsCentre(t *testing.T) {
	// A 300x100 source whose middle third is red: covering a square box must
	// keep only the middle, so every corner of the result is red.
	src := image.NewRGBA(image.Rect(0, 0, 300, 100))
	for y := range 100 {
		for x := range 300 {
			c := color.RGBA{0, 0, 255, 255}
			if x >= 100 && x < 200 {
				c = color.RGBA{255, 0, 0, 255}
			}
			src.Set(x, y, c)
		}
	}
	dst, err := Resize(context.Background(), src, Options{Width: 50, Height: 50, Fit: Cover})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []image.Point{{2, 2}, {47, 2}, {2, 47}, {47, 47}} {
		r, _, b, _ := dst.At(p.X, p.Y).RGBA()
		if r>>8 < 200 || b>>8 > 50 {
			t.Errorf("pixel %v = r%d b%d, want red from the source's centre", p, r>>8, b>>8)
		}
	}
}

func TestMakeFormats(t *testing.T) {
	src := gradient(64, 48)
	tests := []struct {
		format, wantType string
	}{
		{"png", "image/png"},
		{"jpeg", "image/jpeg"},
		{"gif", "image/png"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			out, ct, err := Make(context.Background(), encoded(t, tt.format, src), Options{Width: 32, Height: 32}, Limits{})
			if err != nil {
				t.Fatalf("Make: %v", err)
			}
			if ct != tt.wantType {
				t.Errorf("content type %q, want %q", ct, tt.wantType)
			}
			img, _, err := image.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("decoding result: %v", err)
			}
			if b := img.Bounds(); b.Dx() != 32 || b.Dy() != 24 {
				t.Errorf("result %dx%d, want 32x24", b.Dx(), b.Dy())
			}
		})
	}
}

// TestMakeResultHoldsItsLength: the cache and the thumbnailer's budget
// count a result by its length, so its backing array must not be the
// encoder's worst-case buffer (raw pixels), ten times a JPEG's length.
func TestMakeResultHoldsItsLength(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		opts Options
	}{
		{"jpeg enlarged", encoded(t, "jpeg", gradient(64, 48)), Options{Width: 1024, Height: 1024}},
		{"flat png enlarged", encoded(t, "png", image.NewRGBA(image.Rect(0, 0, 8, 8))), Options{Width: 1024, Height: 1024}},
		{"png shrunk", encoded(t, "png", gradient(640, 480)), Options{Width: 64, Height: 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := Make(context.Background(), tt.data, tt.opts, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if cap(out) > len(out)+len(out)/8 {
				t.Errorf("a %d-byte result holds %d bytes", len(out), cap(out))
			}
		})
	}
}

// TestMakeStaysWithinMaxResultBytes: what callers bound their reads by
// holds for pixels that do not compress, in every output format.
func TestMakeStaysWithinMaxResultBytes(t *testing.T) {
	noise := image.NewRGBA(image.Rect(0, 0, 200, 150))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise.Pix {
		noise.Pix[i] = byte(rng.Uint32())
	}
	tests := []struct {
		name string
		data []byte
		opts Options
	}{
		{"png noise kept", encoded(t, "png", noise), Options{Width: 200, Height: 150}},
		{"png noise stretched", encoded(t, "png", noise), Options{Width: 300, Height: 301, Fit: Fill}},
		{"jpeg noise kept", encoded(t, "jpeg", noise), Options{Width: 200, Height: 150}},
		{"gif noise kept", encoded(t, "gif", noise), Options{Width: 200, Height: 150}},
		{"one pixel", encoded(t, "png", noise), Options{Width: 1, Height: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := Make(context.Background(), tt.data, tt.opts, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if max := MaxResultBytes(tt.opts); int64(len(out)) > max {
				t.Errorf("%d bytes, more than MaxResultBytes %d", len(out), max)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := encoded(t, "png", gradient(100, 100))
	tests := []struct {
		name    string
		data    []byte
		lim     Limits
		wantErr error
	}{
		{"empty", nil, Limits{}, ErrBadImage},
		{"not an image", []byte("hello, world"), Limits{}, ErrBadImage},
		{"truncated png", good[:len(good)/2], Limits{}, ErrBadImage},
		{"truncated jpeg", encoded(t, "jpeg", gradient(100, 100))[:200], Limits{}, ErrBadImage},
		{"over pixel limit", good, Limits{MaxPixels: 9999}, ErrTooLarge},
		{"at pixel limit", good, Limits{MaxPixels: 10000}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Decode(context.Background(), tt.data, tt.lim)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeRejectsNegativeLimit(t *testing.T) {
	_, _, err := Decode(context.Background(), encoded(t, "png", gradient(4, 4)), Limits{MaxPixels: -1})
	if err == nil || !strings.Contains(err.Error(), "MaxPixels -1 is negative") {
		t.Fatalf("Decode with MaxPixels -1: %v, want an error naming the field", err)
	}
}

func TestDecodeRefusesHugeHeaderWithoutAllocating(t *testing.T) {
	// A PNG header declaring 100000x100000 pixels with no pixel data must be
	// refused from the header alone.
	var hdr bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 1, 1))
	if err := png.Encode(&hdr, img); err != nil {
		t.Fatal(err)
	}
	data := hdr.Bytes()
	// IHDR width and height sit at bytes 16..23, covered by the chunk's
	// CRC at bytes 29..32.
	copy(data[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(data[29:33], crc32.ChecksumIEEE(data[12:29]))
	_, _, err := Decode(context.Background(), data, Limits{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode error = %v, want ErrTooLarge", err)
	}
}

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name               string
		width, height, fit string
		want               Options
		wantErr            bool
	}{
		{"ok", "10", "20", "cover", Options{10, 20, Cover}, false},
		{"default fit", "10", "20", "", Options{10, 20, ""}, false},
		{"missing width", "", "20", "", Options{}, true},
		{"width not integer", "ten", "20", "", Options{}, true},
		{"zero height", "10", "0", "", Options{}, true},
		{"too wide", "5000", "20", "", Options{}, true},
		{"bad fit", "10", "20", "zoom", Options{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions(tt.width, tt.height, tt.fit)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrBadOptions) {
				t.Errorf("err = %v, want ErrBadOptions", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encoded(f, "png", gradient(8, 8)))
	f.Add(encoded(f, "jpeg", gradient(8, 8)))
	f.Add(encoded(f, "gif", gradient(8, 8)))
	f.Add([]byte("GIF89a"))
	f.Fuzz(func(t *testing.T, data []byte) {
		const maxPixels = 1 << 16
		img, _, err := Decode(context.Background(), data, Limits{MaxPixels: maxPixels})
		if err != nil {
			if !errors.Is(err, ErrBadImage) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error class: %v", err)
			}
			return
		}
		b := img.Bounds()
		if b.Dx()*b.Dy() > maxPixels {
			t.Fatalf("decoded %dx%d past the %d pixel limit", b.Dx(), b.Dy(), maxPixels)
		}
		if _, err := Resize(context.Background(), img, Options{Width: 4, Height: 4, Fit: Cover}); err != nil {
			t.Fatal(err)
		}
	})
}

func BenchmarkMake(b *testing.B) {
	src := encoded(b, "jpeg", gradient(1024, 768))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		if _, _, err := Make(context.Background(), src, Options{Width: 256, Height: 256}, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

package thumbnail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"strconv"
)

// Errors a caller branches on to choose a status code.
var (
	// ErrTooLarge reports an image whose declared dimensions exceed the
	// pixel limit. Services answer 413.
	ErrTooLarge = errors.New("thumbnail: image too large")
	// ErrBadImage reports input that is not a complete PNG, JPEG or GIF.
	// Services answer 400.
	ErrBadImage = errors.New("thumbnail: bad image")
	// ErrBadOptions reports invalid width, height or fit. Services answer 400.
	ErrBadOptions = errors.New("thumbnail: bad options")
)

// Fit says how the source is mapped onto the requested box.
type Fit string

const (
	// Contain scales the image to fit inside the box, keeping its aspect
	// ratio; the result may be smaller than the box on one side.
	Contain Fit = "contain"
	// Cover scales the image to cover the box, keeping its aspect ratio,
	// and crops the overflow around the centre.
	Cover Fit = "cover"
	// Fill stretches the image to the box exactly.
	Fill Fit = "fill"
)

// MaxSide is the largest width or height a thumbnail may ask for.
const MaxSide = 4096

// Options describe one thumbnail.
type Options struct {
	Width, Height int
	Fit           Fit // Contain when empty
}

// ParseOptions reads width, height and fit from query-style values, naming
// the parameter that is wrong.
func ParseOptions(width, height, fit string) (Options, error) {
	var o Options
	var err error
	if o.Width, err = parseSide("width", width); err != nil {
		return Options{}, err
	}
	if o.Height, err = parseSide("height", height); err != nil {
		return Options{}, err
	}
	o.Fit = Fit(fit)
	if err := o.Validate(); err != nil {
		return Options{}, err
	}
	return o, nil
}

func parseSide(name, v string) (int, error) {
	if v == "" {
		return 0, fmt.Errorf("%w: %s is required", ErrBadOptions, name)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not an integer", ErrBadOptions, name, v)
	}
	return n, nil
}

// Validate reports whether the options describe a thumbnail that can be made.
func (o Options) Validate() error {
	if o.Width < 1 || o.Width > MaxSide {
		return fmt.Errorf("%w: width %d is outside 1..%d", ErrBadOptions, o.Width, MaxSide)
	}
	if o.Height < 1 || o.Height > MaxSide {
		return fmt.Errorf("%w: height %d is outside 1..%d", ErrBadOptions, o.Height, MaxSide)
	}
	switch o.Fit {
	case "", Contain, Cover, Fill:
		return nil
	}
	return fmt.Errorf("%w: fit %q is not one of contain, cover, fill", ErrBadOptions, o.Fit)
}

// DefaultMaxPixels is [Limits.MaxPixels] when it is zero: 40 megapixels.
const DefaultMaxPixels = 40_000_000

// Limits bound the work one image may cause. The zero value is valid.
type Limits struct {
	// MaxPixels is the largest width×height accepted, checked from the
	// header before any pixel is decoded. Zero means DefaultMaxPixels;
	// negative is invalid and makes Decode fail.
	MaxPixels int
}

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.MaxPixels == 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	return l
}

// Decode decodes a PNG, JPEG or GIF held in data, refusing images whose
// declared size exceeds the limits before decoding their pixels. It returns
// the image and its format name ("png", "jpeg" or "gif"). It stops with
// ctx's cause once ctx ends.
func Decode(ctx context.Context, data []byte, lim Limits) (image.Image, string, error) {
	lim = lim.withDefaults()
	if lim.MaxPixels < 0 {
		return nil, "", fmt.Errorf("thumbnail: Limits.MaxPixels %d is negative", lim.MaxPixels)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return nil, "", fmt.Errorf("%w: reading header: %v", ErrBadImage, err)
	}
	if err := lim.Check(cfg.Width, cfg.Height); err != nil {
		return nil, "", err
	}
	// The decoders read as they go: a reader that fails once ctx ends
	// stops them within a buffer's worth of input.
	r := &ctxReader{ctx: ctx, r: bytes.NewReader(data)}
	var img image.Image
	switch format {
	case "png":
		img, err = png.Decode(r)
	case "jpeg":
		img, err = jpeg.Decode(r)
	case "gif":
		img, err = gif.Decode(r)
	default:
		return nil, "", fmt.Errorf("%w: format %q is not png, jpeg or gif", ErrBadImage, format)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			return nil, "", cause
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, "", fmt.Errorf("%w: truncated %s: %v", ErrBadImage, format, err)
		}
		return nil, "", fmt.Errorf("%w: decoding %s: %v", ErrBadImage, format, err)
	}
	return img, format, nil
}

// Check refuses a declared size outside the limits: ErrBadImage for an
// empty one, ErrTooLarge past MaxPixels.
func (l Limits) Check(w, h int) error {
	l = l.withDefaults()
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: declared size %dx%d", ErrBadImage, w, h)
	}
	if max := l.MaxPixels; w > max/h {
		return fmt.Errorf("%w: %dx%d exceeds %d pixels", ErrTooLarge, w, h, max)
	}
	return nil
}

// ctxReader reads from r until ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := context.Cause(c.ctx); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// layout returns the size of the thumbnail of an sw×sh source and the
// part of the source it shows.
func layout(sb image.Rectangle, o Options) (dw, dh int, srcRect image.Rectangle) {
	sw, sh := sb.Dx(), sb.Dy()
	dw, dh = o.Width, o.Height
	srcRect = sb
	switch o.Fit {
	case "", Contain:
		// Scale by the smaller ratio so both sides fit.
		if sw*dh > sh*dw {
			dh = max(1, sh*dw/sw)
		} else {
			dw = max(1, sw*dh/sh)
		}
	case Cover:
		// Crop the source to the box's aspect ratio around the centre.
		if sw*dh > sh*dw {
			cw := max(1, sh*dw/dh)
			x0 := sb.Min.X + (sw-cw)/2
			srcRect = image.Rect(x0, sb.Min.Y, x0+cw, sb.Max.Y)
		} else {
			ch := max(1, sw*dh/dw)
			y0 := sb.Min.Y + (sh-ch)/2
			srcRect = image.Rect(sb.Min.X, y0, sb.Max.X, y0+ch)
		}
	}
	return dw, dh, srcRect
}

// Resize resamples src into a new image as the options say, with a
// Catmull-Rom kernel, a band of rows at a time. It stops with ctx's cause
// once ctx ends.
func Resize(ctx context.Context, src image.Image, o Options) (image.Image, error) {
	dw, dh, sr := layout(src.Bounds(), o)
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	if err := resample(ctx, dst, src, sr); err != nil {
		return nil, err
	}
	return dst, nil
}

// Need estimates, from the header alone, the memory [Make] takes for one
// image and options: decoding, resizing and encoding, each at its worst.
// A service holds this much of its memory budget while it makes the
// thumbnail.
func Need(h Header, o Options) int64 {
	dw, dh, sr := layout(image.Rect(0, 0, max(1, h.Width), max(1, h.Height)), o)
	out := int64(dw) * int64(dh) * 4
	encoded := out + out/32 + encoderOverhead
	return h.DecodeBytes() + out + resampleBytes(sr.Dx(), sr.Dy(), dw, dh) + encoded
}

// MaxResultBytes is the most [Make] can return for o: a PNG of
// incompressible pixels takes their raw RGBA bytes and a little more
// (filter bytes, deflate's stored blocks, chunk headers); a JPEG at
// Make's quality takes less. A caller reading a thumbnail made elsewhere
// bounds its read by it.
func MaxResultBytes(o Options) int64 {
	return encodedBound(o.Width, o.Height)
}

// encodedBound is the most an encoded w×h thumbnail takes: its raw RGBA
// bytes, a thirty-second of them for the formats' overhead on data that
// does not compress, and 4 KiB of headers.
func encodedBound(w, h int) int64 {
	raw := int64(w) * int64(h) * 4
	return raw + raw/32 + 4096
}

// encoderOverhead covers an encoder's fixed state: deflate's tables and
// window, a JPEG encoder's buffers.
const encoderOverhead = 2 << 20

// Encode writes img in the given format. GIF sources are written as PNG:
// re-quantising a resampled image to a palette costs more than it saves.
// It returns the content type written.
func Encode(w io.Writer, img image.Image, format string) (string, error) {
	switch format {
	case "jpeg":
		if err := jpeg.Encode(w, img, &jpeg.Options{Quality: 85}); err != nil {
			return "", fmt.Errorf("thumbnail: encoding jpeg: %w", err)
		}
		return "image/jpeg", nil
	default:
		enc := png.Encoder{CompressionLevel: png.BestSpeed}
		if err := enc.Encode(w, img); err != nil {
			return "", fmt.Errorf("thumbnail: encoding png: %w", err)
		}
		return "image/png", nil
	}
}

// Make decodes data, resizes it and encodes the result: the whole job of
// one request. It returns the encoded bytes and their content type, or
// ctx's cause once ctx ends. The bytes hold no more memory than their
// length (within an eighth), so that a cache or a budget counting their
// length counts what they keep alive.
func Make(ctx context.Context, data []byte, o Options, lim Limits) ([]byte, string, error) {
	if err := o.Validate(); err != nil {
		return nil, "", err
	}
	img, format, err := Decode(ctx, data, lim)
	if err != nil {
		return nil, "", err
	}
	thumb, err := Resize(ctx, img, o)
	if err != nil {
		return nil, "", err
	}
	// Sized up front, the buffer does not double (and leave garbage) as it
	// fills; Need counts this size.
	b := thumb.Bounds()
	var buf bytes.Buffer
	buf.Grow(int(encodedBound(b.Dx(), b.Dy())))
	ct, err := Encode(&buf, thumb, format)
	if err != nil {
		return nil, "", err
	}
	out := buf.Bytes()
	if cap(out)-len(out) > len(out)/8 {
		// The buffer was sized for the worst case, raw pixels; a JPEG or
		// a flat PNG fills a tenth of it. Whoever keeps the result (the
		// cache, a response being written) would keep it all alive. Need
		// counts the copy in thumb's pixels, dead by now and more than
		// eight ninths of the buffer.
		out = bytes.Clone(out)
	}
	return out, ct, nil
}

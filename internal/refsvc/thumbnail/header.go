package thumbnail

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Header is what an image's header says about the memory decoding it
// takes, read without decoding any pixel.
type Header struct {
	Format        string // "png", "jpeg" or "gif"
	Width, Height int
	// BytesPerPixel is the size of one pixel of the image the standard
	// decoder returns: 8 for a 16-bit RGBA PNG, 1.5 for a 4:2:0 JPEG.
	BytesPerPixel float64
	// Interlaced is an Adam7 PNG; Progressive a progressive JPEG. Both
	// make the decoder hold more than the final image (see [Header.DecodeBytes]).
	Interlaced, Progressive bool
	// Components is a JPEG's colour components; 0 otherwise.
	Components int
	// jpegPlanes is the bytes per pixel of a JPEG's component planes, MCU
	// padding left out; a progressive decode keeps 4 bytes of
	// coefficients for each of their bytes.
	jpegPlanes float64
}

// ReadHeader parses the header of a PNG, JPEG or GIF. Its errors wrap
// [ErrBadImage].
func ReadHeader(data []byte) (Header, error) {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return pngHeader(data)
	case bytes.HasPrefix(data, []byte("\xff\xd8")):
		return jpegHeader(data)
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return gifHeader(data)
	}
	return Header{}, fmt.Errorf("%w: not a PNG, JPEG or GIF", ErrBadImage)
}

func pngHeader(data []byte) (Header, error) {
	// Signature, then IHDR: length, type, width, height, bit depth,
	// colour type, compression, filter, interlace.
	if len(data) < 8+8+13 || string(data[12:16]) != "IHDR" {
		return Header{}, fmt.Errorf("%w: png without IHDR", ErrBadImage)
	}
	ihdr := data[16:]
	w, h := binary.BigEndian.Uint32(ihdr[0:4]), binary.BigEndian.Uint32(ihdr[4:8])
	depth, colour := ihdr[8], ihdr[9]
	hd := Header{Format: "png", Width: int(min(w, 1<<31-1)), Height: int(min(h, 1<<31-1)), Interlaced: ihdr[12] == 1}
	// The image types image/png decodes each combination into.
	switch colour {
	case 0: // grey: Gray or Gray16, but NRGBA or NRGBA64 with a tRNS chunk
		hd.BytesPerPixel = 1
		if pngTransparent(data) {
			hd.BytesPerPixel = 4
		}
	case 3: // palette: Paletted
		hd.BytesPerPixel = 1
	case 2, 4, 6: // RGB, grey+alpha, RGBA: RGBA/NRGBA, or their 64-bit forms
		hd.BytesPerPixel = 4
	default:
		return Header{}, fmt.Errorf("%w: png colour type %d", ErrBadImage, colour)
	}
	if depth == 16 {
		hd.BytesPerPixel *= 2
	}
	return hd, nil
}

// pngTransparent reports whether a tRNS chunk comes before the image data.
// image/png decodes a grey image that has one into NRGBA or NRGBA64, four
// times the bytes of Gray or Gray16; a header that says grey cannot be
// budgeted without looking for it.
func pngTransparent(data []byte) bool {
	for i := int64(8); i+8 <= int64(len(data)); {
		n := int64(binary.BigEndian.Uint32(data[i : i+4]))
		switch string(data[i+4 : i+8]) {
		case "tRNS":
			return true
		case "IDAT", "IEND":
			return false
		}
		i += 12 + n // length, type, data, CRC
	}
	return false
}

func jpegHeader(data []byte) (Header, error) {
	hd := Header{Format: "jpeg"}
	var jfif, adobeRGB bool
	for i := 2; ; {
		// Markers may be padded with 0xff bytes.
		for i < len(data) && data[i] == 0xff && i+1 < len(data) && data[i+1] == 0xff {
			i++
		}
		if i+4 > len(data) || data[i] != 0xff {
			return Header{}, fmt.Errorf("%w: jpeg without a frame header", ErrBadImage)
		}
		marker := data[i+1]
		if marker == 0xd8 || (marker >= 0xd0 && marker <= 0xd7) || marker == 0x01 {
			i += 2 // no length
			continue
		}
		n := int(binary.BigEndian.Uint16(data[i+2 : i+4]))
		if n < 2 || i+2+n > len(data) {
			return Header{}, fmt.Errorf("%w: jpeg segment %#x overruns the data", ErrBadImage, marker)
		}
		seg := data[i+4 : i+2+n]
		i += 2 + n
		switch {
		case marker == 0xe0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			jfif = true
		case marker == 0xee && len(seg) >= 12 && bytes.HasPrefix(seg, []byte("Adobe")):
			adobeRGB = seg[11] == 0
		case marker == 0xc0 || marker == 0xc1 || marker == 0xc2:
			return hd, hd.jpegFrame(seg, marker == 0xc2, jfif, adobeRGB)
		case marker >= 0xc3 && marker <= 0xcf && marker != 0xc4 && marker != 0xc8 && marker != 0xcc:
			return Header{}, fmt.Errorf("%w: unsupported jpeg frame type %#x", ErrBadImage, marker)
		case marker == 0xda || marker == 0xd9:
			return Header{}, fmt.Errorf("%w: jpeg scan before its frame header", ErrBadImage)
		}
	}
}

// jpegFrame reads a start-of-frame segment into hd: precision, height,
// width, then per component an id, sampling factors and a table.
func (hd *Header) jpegFrame(seg []byte, progressive, jfif, adobeRGB bool) error {
	if len(seg) < 6 {
		return fmt.Errorf("%w: short jpeg frame header", ErrBadImage)
	}
	hd.Height = int(binary.BigEndian.Uint16(seg[1:3]))
	hd.Width = int(binary.BigEndian.Uint16(seg[3:5]))
	hd.Progressive = progressive
	nc := int(seg[5])
	if (nc != 1 && nc != 3 && nc != 4) || len(seg) < 6+3*nc {
		return fmt.Errorf("%w: jpeg with %d components", ErrBadImage, nc)
	}
	hd.Components = nc
	var hs, vs [4]int
	hmax, vmax := 1, 1
	ids := make([]byte, nc)
	for c := range nc {
		ids[c] = seg[6+3*c]
		hs[c], vs[c] = max(1, int(seg[7+3*c]>>4)), max(1, int(seg[7+3*c]&15))
		hmax, vmax = max(hmax, hs[c]), max(vmax, vs[c])
	}
	if nc == 1 {
		// A grey image is decoded block by block, whatever its sampling.
		hs[0], vs[0], hmax, vmax = 1, 1, 1, 1
	}
	for c := range nc {
		hd.jpegPlanes += float64(hs[c]*vs[c]) / float64(hmax*vmax)
	}
	hd.BytesPerPixel = hd.jpegPlanes
	switch {
	case nc == 4:
		// CMYK: the planes, then an image.CMYK of 4 bytes a pixel.
		hd.BytesPerPixel += 4
	case nc == 3 && !jfif && (adobeRGB || string(ids) == "RGB"):
		// RGB components are converted to an image.RGBA.
		hd.BytesPerPixel += 4
	}
	return nil
}

func gifHeader(data []byte) (Header, error) {
	if len(data) < 10 {
		return Header{}, fmt.Errorf("%w: short gif header", ErrBadImage)
	}
	// image/gif decodes only the first frame, which must lie inside the
	// logical screen: one byte a pixel of the screen bounds it.
	return Header{
		Format:        "gif",
		Width:         int(binary.LittleEndian.Uint16(data[6:8])),
		Height:        int(binary.LittleEndian.Uint16(data[8:10])),
		BytesPerPixel: 1,
	}, nil
}

// Factors of [Header.DecodeBytes], measured by TestDecodeBytesCoversMeasured
// from the bytes one decode allocates.
const (
	// interlacedFactor: an Adam7 PNG decodes each pass into an image of
	// its own, merged into the final image: about two images in all.
	interlacedFactor = 2
	// progressiveCoefficients is the bytes a progressive JPEG keeps per
	// byte of component planes: a 64 × int32 block of coefficients for
	// each 8×8 block of samples until the last scan.
	progressiveCoefficients = 4
	// decoderOverhead covers a decoder's fixed buffers: zlib's window, a
	// JPEG's Huffman tables and row scratch.
	decoderOverhead = 256 << 10
)

// DecodeBytes estimates, from the header alone, the most memory decoding
// the image allocates: the decoded image and the decoder's own buffers.
func (h Header) DecodeBytes() int64 {
	px := float64(h.Width) * float64(h.Height)
	var b float64
	switch {
	case h.Format == "jpeg":
		// Planes are padded to whole MCUs of up to 32×32 pixels.
		px = float64(h.Width+32) * float64(h.Height+32)
		b = px * h.BytesPerPixel
		if h.Progressive {
			b += px * h.jpegPlanes * progressiveCoefficients
		}
	case h.Interlaced:
		b = px * h.BytesPerPixel * interlacedFactor
		// Each row is read into two buffers of its raw size.
		b += 4 * float64(h.Width) * h.BytesPerPixel
	default:
		b = px*h.BytesPerPixel + 4*float64(h.Width)*h.BytesPerPixel
	}
	// Headers may declare billions of pixels; keep the sum in range.
	return int64(min(b, 1<<60)) + decoderOverhead
}

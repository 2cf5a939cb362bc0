// Package thumbnailtest writes images that are small to send and large to
// decode, for tests of the thumbnailer's memory bounds: interlaced 16-bit
// PNGs, grey PNGs with transparency, progressive JPEGs and GIFs of huge
// frames, each of one flat colour
// so that megapixels compress to kilobytes.
//
// The standard library's encoders write neither interlaced PNGs nor
// progressive JPEGs, and encoding a flat image with them would first
// allocate every pixel; these writers stream the compressed form instead.
package thumbnailtest

import (
	"bytes"
	"compress/lzw"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
)

// PNG returns a w×h RGBA PNG, 16 bits a sample when deep, Adam7-interlaced
// when interlaced, every pixel transparent black.
func PNG(w, h int, deep, interlaced bool) []byte {
	depth, bpp := byte(8), 4
	if deep {
		depth, bpp = 16, 8
	}
	return png(w, h, depth, 6, bpp, interlaced, false)
}

// GreyTransparentPNG returns a w×h grey PNG, 16 bits a sample when deep,
// with a tRNS chunk: its header says grey (1 or 2 bytes a pixel), but
// image/png decodes it into NRGBA or NRGBA64 (4 or 8).
func GreyTransparentPNG(w, h int, deep bool) []byte {
	depth, bpp := byte(8), 1
	if deep {
		depth, bpp = 16, 2
	}
	return png(w, h, depth, 0, bpp, false, true)
}

func png(w, h int, depth, colour byte, bpp int, interlaced, trns bool) []byte {
	var out bytes.Buffer
	out.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], uint32(w))
	binary.BigEndian.PutUint32(ihdr[4:], uint32(h))
	ihdr[8], ihdr[9] = depth, colour
	if interlaced {
		ihdr[12] = 1
	}
	chunk(&out, "IHDR", ihdr)
	if trns {
		chunk(&out, "tRNS", []byte{0, 0}) // grey sample 0 is transparent
	}

	var idat bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&idat, zlib.BestSpeed)
	passes := [][4]int{{0, 0, 8, 8}} // x0, y0, dx, dy
	if interlaced {
		passes = [][4]int{{0, 0, 8, 8}, {4, 0, 8, 8}, {0, 4, 4, 8}, {2, 0, 4, 4}, {0, 2, 2, 4}, {1, 0, 2, 2}, {0, 1, 1, 2}}
	} else {
		passes[0] = [4]int{0, 0, 1, 1}
	}
	var row []byte
	for _, p := range passes {
		pw := (w - p[0] + p[2] - 1) / p[2]
		ph := (h - p[1] + p[3] - 1) / p[3]
		if pw <= 0 || ph <= 0 {
			continue
		}
		if n := 1 + pw*bpp; cap(row) < n {
			row = make([]byte, n) // filter byte 0, then zero samples
		}
		for range ph {
			zw.Write(row[:1+pw*bpp])
		}
	}
	zw.Close()
	chunk(&out, "IDAT", idat.Bytes())
	chunk(&out, "IEND", nil)
	return out.Bytes()
}

func chunk(out *bytes.Buffer, typ string, data []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(data)))
	out.Write(n[:])
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	out.WriteString(typ)
	out.Write(data)
	binary.BigEndian.PutUint32(n[:], crc.Sum32())
	out.Write(n[:])
}

// JPEG returns a w×h mid-grey JFIF JPEG of one (grey) or three (YCbCr
// 4:2:0) components, progressive or baseline. A progressive one holds only
// its DC scan, which decoders accept: its AC coefficients stay zero.
func JPEG(w, h, components int, progressive bool) []byte {
	var out bytes.Buffer
	seg := func(marker byte, data []byte) {
		out.Write([]byte{0xff, marker, byte((len(data) + 2) >> 8), byte(len(data) + 2)})
		out.Write(data)
	}
	out.Write([]byte{0xff, 0xd8})
	seg(0xe0, []byte("JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"))
	dqt := make([]byte, 65)
	for i := 1; i < 65; i++ {
		dqt[i] = 1
	}
	seg(0xdb, dqt)
	sof := []byte{8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), byte(components)}
	blocksPerMCU, mcuSide := 1, 8
	if components == 3 {
		sof = append(sof, 1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0)
		blocksPerMCU, mcuSide = 6, 16
	} else {
		sof = append(sof, 1, 0x11, 0)
	}
	sofMarker := byte(0xc0)
	if progressive {
		sofMarker = 0xc2
	}
	seg(sofMarker, sof)
	// One code each, "0": DC difference category 0, AC end of block.
	table := func(class byte) []byte {
		t := make([]byte, 18)
		t[0], t[1] = class, 1
		return t
	}
	seg(0xc4, append(table(0x00), table(0x10)...))
	sos := []byte{byte(components)}
	for c := 1; c <= components; c++ {
		sos = append(sos, byte(c), 0x00)
	}
	bitsPerBlock := 2 // DC 0, then end of block
	if progressive {
		sos = append(sos, 0, 0, 0) // DC only
		bitsPerBlock = 1
	} else {
		sos = append(sos, 0, 63, 0)
	}
	seg(0xda, sos)
	mcus := ((w + mcuSide - 1) / mcuSide) * ((h + mcuSide - 1) / mcuSide)
	bits := mcus * blocksPerMCU * bitsPerBlock
	out.Write(make([]byte, bits/8))
	if pad := bits % 8; pad != 0 {
		out.WriteByte(0xff >> pad) // the last codes, then ones
	}
	out.Write([]byte{0xff, 0xd9})
	return out.Bytes()
}

// GIF returns a GIF whose logical screen and single frame are w×h pixels
// of colour 0.
func GIF(w, h int) []byte {
	var out bytes.Buffer
	out.WriteString("GIF89a")
	binary.Write(&out, binary.LittleEndian, [2]uint16{uint16(w), uint16(h)})
	out.Write([]byte{0x80, 0, 0}) // global table of 2 colours
	out.Write([]byte{0, 0, 0, 255, 255, 255})
	out.WriteByte(0x2c) // image descriptor
	binary.Write(&out, binary.LittleEndian, [4]uint16{0, 0, uint16(w), uint16(h)})
	out.WriteByte(0)
	out.WriteByte(2) // LZW minimum code size
	var lz bytes.Buffer
	lw := lzw.NewWriter(&lz, lzw.LSB, 2)
	zeros := make([]byte, 64<<10)
	for left := w * h; left > 0; left -= len(zeros) {
		lw.Write(zeros[:min(left, len(zeros))])
	}
	lw.Close()
	for b := lz.Bytes(); len(b) > 0; {
		n := min(len(b), 255)
		out.WriteByte(byte(n))
		out.Write(b[:n])
		b = b[n:]
	}
	out.WriteByte(0)
	out.WriteByte(0x3b)
	return out.Bytes()
}

package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"net/http"
	"strconv"

	"golang.org/x/image/draw"
)

// Source images: distinct, deterministic, and small, so each request's work
// is the CPU of a decode, a resample and an encode, not memory or I/O.
const (
	numImages        = 16
	srcW, srcH       = 200, 150
	thumbW, thumbH   = 100, 75
	resizePath       = "/resize"
	statsPath        = "/stats"
	imageQueryParam  = "i"
	resizeMediaType  = "image/png"
	imageSeedPerItem = 7919
)

// images returns the PNG-encoded source images: smooth gradients with a
// little noise, so they compress like photographs rather than flat colour.
func images() [][]byte {
	out := make([][]byte, numImages)
	for k := range out {
		rng := rand.New(rand.NewPCG(uint64(k+1)*imageSeedPerItem, 1))
		img := image.NewRGBA(image.Rect(0, 0, srcW, srcH))
		for y := range srcH {
			for x := range srcW {
				n := uint8(rng.IntN(24))
				img.SetRGBA(x, y, color.RGBA{
					R: uint8(x*255/srcW) + n,
					G: uint8(y*255/srcH) + n,
					B: uint8((x+y+k*16)%256) ^ n,
					A: 255,
				})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			panic(err) // encoding into memory cannot fail
		}
		out[k] = b.Bytes()
	}
	return out
}

// thumbEncoder favours speed, as thumbnail services do.
var thumbEncoder = png.Encoder{CompressionLevel: png.BestSpeed}

// resizer is the benchmark's handler, the same for every variant: GET
// /resize?i=N decodes source image N mod 16, scales it to 160×120 with
// Catmull-Rom into a fresh image, and answers the PNG. Like the
// thumbnailer, it stops between stages once the client has gone.
type resizer struct{ src [][]byte }

func newResizer() *resizer { return &resizer{src: images()} }

func (h *resizer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	i, err := strconv.Atoi(r.URL.Query().Get(imageQueryParam))
	if err != nil || i < 0 {
		http.Error(w, "bad i", http.StatusBadRequest)
		return
	}
	out, err := h.resize(r.Context(), h.src[i%len(h.src)])
	if err != nil {
		// The client left; nobody reads the answer.
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", resizeMediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}

func (h *resizer) resize(ctx context.Context, src []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	img, err := png.Decode(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dst := image.NewRGBA(image.Rect(0, 0, thumbW, thumbH))
	draw.CatmullRom.Scale(dst, dst.Bounds(), img, img.Bounds(), draw.Src, nil)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := thumbEncoder.Encode(&b, dst); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return b.Bytes(), nil
}

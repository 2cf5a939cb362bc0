package thumbnail

import (
	"context"
	"image"
	"image/draw"
	"math"
)

// The resampler is separable Catmull-Rom, like x/image/draw's CatmullRom,
// but it works in bands of rows: x/image/draw's Scale first resamples
// every source row across into a buffer of 32 bytes per (destination
// column × source row), which is 500 MB for a 40-megapixel source filled
// into a 4096-wide box, and it cannot be stopped. Here each source row is
// resampled across as it is needed and combined down at once, so memory
// is a few rows (see resampleBytes) and the work checks its context
// between rows.

// catmullRom is the Catmull-Rom cubic (B=0, C=1/2), support 2.
func catmullRom(x float64) float64 {
	x = math.Abs(x)
	switch {
	case x < 1:
		return (1.5*x-2.5)*x*x + 1
	case x < 2:
		return ((-0.5*x+2.5)*x-4)*x + 2
	}
	return 0
}

// taps maps dstLen samples onto srcLen: destination i is the sum of
// w[off[i]:off[i+1]] times the sources from start[i] on.
type taps struct {
	start, off []int32
	w          []float32
}

// tapsPer bounds the taps of one destination sample: the kernel spans 4
// source samples, widened by the reduction factor when shrinking.
func tapsPer(srcLen, dstLen int) int {
	return int(math.Ceil(4*max(1, float64(srcLen)/float64(dstLen)))) + 1
}

func newTaps(srcLen, dstLen int) taps {
	scale := float64(srcLen) / float64(dstLen)
	fs := max(1, scale)
	t := taps{
		start: make([]int32, dstLen),
		off:   make([]int32, dstLen+1),
		w:     make([]float32, 0, dstLen*tapsPer(srcLen, dstLen)),
	}
	for i := range dstLen {
		c := (float64(i)+0.5)*scale - 0.5 // the sample's centre in source indices
		lo := max(0, int(math.Ceil(c-2*fs)))
		hi := min(srcLen-1, int(math.Floor(c+2*fs)))
		first := len(t.w)
		var sum float64
		for j := lo; j <= hi; j++ {
			k := catmullRom((float64(j) - c) / fs)
			sum += k
			t.w = append(t.w, float32(k))
		}
		if sum == 0 { // cannot happen with c inside the source; be safe
			t.w = append(t.w[:first], 1)
			lo, sum = min(srcLen-1, max(0, int(math.Round(c)))), 1
		}
		for k := first; k < len(t.w); k++ {
			t.w[k] /= float32(sum)
		}
		t.start[i] = int32(lo)
		t.off[i+1] = int32(len(t.w))
	}
	return t
}

func (t taps) of(i int) (start int, w []float32) {
	return int(t.start[i]), t.w[t.off[i]:t.off[i+1]]
}

// openRows bounds the rows of floats resample keeps at once: the source
// rows one destination row needs when enlarging, the destination rows one
// source row feeds when shrinking.
const openRows = 6

// resampleBytes is the most resample allocates besides dst.
func resampleBytes(sw, sh, dw, dh int) int64 {
	tapBytes := func(srcLen, dstLen int) int64 {
		return int64(dstLen) * (int64(tapsPer(srcLen, dstLen))*4 + 8)
	}
	return tapBytes(sw, dw) + tapBytes(sh, dh) + // weights
		int64(sw)*4 + // one source row as RGBA
		(openRows+1)*int64(dw)*16 // rows of float32 RGBA
}

// resample scales sr of src onto all of dst. It returns ctx's cause if ctx
// ends first.
func resample(ctx context.Context, dst *image.RGBA, src image.Image, sr image.Rectangle) error {
	sw, sh := sr.Dx(), sr.Dy()
	dw, dh := dst.Rect.Dx(), dst.Rect.Dy()
	hx, vy := newTaps(sw, dw), newTaps(sh, dh)
	srow := image.NewRGBA(image.Rect(0, 0, sw, 1))

	// across converts source row j to RGBA and resamples it into out.
	across := func(j int, out []float32) {
		draw.Draw(srow, srow.Rect, src, image.Pt(sr.Min.X, sr.Min.Y+j), draw.Src)
		for x := range dw {
			s, ws := hx.of(x)
			p := srow.Pix[4*s:]
			var r, g, b, a float32
			for k, w := range ws {
				q := p[4*k : 4*k+4 : 4*k+4]
				r += w * float32(q[0])
				g += w * float32(q[1])
				b += w * float32(q[2])
				a += w * float32(q[3])
			}
			out[4*x], out[4*x+1], out[4*x+2], out[4*x+3] = r, g, b, a
		}
	}
	emit := func(y int, acc []float32) {
		row := dst.Pix[y*dst.Stride : y*dst.Stride+4*dw]
		for x := range dw {
			a := clamp8(acc[4*x+3], 255)
			row[4*x] = clamp8(acc[4*x], float32(a))
			row[4*x+1] = clamp8(acc[4*x+1], float32(a))
			row[4*x+2] = clamp8(acc[4*x+2], float32(a))
			row[4*x+3] = a
		}
	}
	newRow := func() []float32 { return make([]float32, 4*dw) }

	if dh >= sh {
		// Enlarging down: each destination row reads a few source rows,
		// kept in a ring keyed by source row.
		ring := make([][]float32, openRows)
		held := make([]int, openRows)
		for i := range ring {
			ring[i], held[i] = newRow(), -1
		}
		acc := newRow()
		for y := range dh {
			if y%8 == 0 {
				if err := context.Cause(ctx); err != nil {
					return err
				}
			}
			clear(acc)
			s, ws := vy.of(y)
			for k, w := range ws {
				j := s + k
				slot := j % openRows
				if held[slot] != j {
					across(j, ring[slot])
					held[slot] = j
				}
				for i, v := range ring[slot] {
					acc[i] += w * v
				}
			}
			emit(y, acc)
		}
		return nil
	}

	// Shrinking down: each source row is resampled across once and added
	// into the few destination rows it feeds, each written out once its
	// last source row is in.
	tmp := newRow()
	var free [][]float32
	open := make([][]float32, 0, openRows) // destination rows lo..lo+len(open)-1
	lo := 0
	for j := range sh {
		if j%8 == 0 {
			if err := context.Cause(ctx); err != nil {
				return err
			}
		}
		for y := lo + len(open); y < dh && int(vy.start[y]) <= j; y++ {
			var r []float32
			if n := len(free); n > 0 {
				r, free = free[n-1], free[:n-1]
				clear(r)
			} else {
				r = newRow()
			}
			open = append(open, r)
		}
		across(j, tmp)
		for i, acc := range open {
			s, ws := vy.of(lo + i)
			if k := j - s; k >= 0 && k < len(ws) {
				w := ws[k]
				for x, v := range tmp {
					acc[x] += w * v
				}
			}
		}
		for len(open) > 0 {
			s, ws := vy.of(lo)
			if s+len(ws)-1 > j {
				break
			}
			emit(lo, open[0])
			free = append(free, open[0])
			open = open[1:]
			lo++
		}
	}
	return nil
}

func clamp8(v, hi float32) uint8 {
	return uint8(max(0, min(hi, v+0.5)))
}

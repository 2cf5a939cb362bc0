package balancer

import (
	"math"
	"testing"
)

func TestExpNeg(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi float64
		steps  int
	}{
		{name: "recent samples", lo: 0, hi: 1e-3, steps: 100_000},
		{name: "within a few decay times", lo: 0, hi: 10, steps: 1_000_000},
		{name: "long stale", lo: 10, hi: 700, steps: 1_000_000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			worst, at := 0.0, 0.0
			for i := range tt.steps + 1 {
				x := tt.lo + (tt.hi-tt.lo)*float64(i)/float64(tt.steps)
				want := math.Exp(-x)
				if e := math.Abs(expNeg(x)-want) / want; e > worst {
					worst, at = e, x
				}
			}
			if worst > 1e-8 {
				t.Fatalf("relative error %.3g at x = %v, want below 1e-8", worst, at)
			}
			t.Logf("worst relative error %.3g at x = %v", worst, at)
		})
	}
	edges := []struct {
		x, want float64
	}{
		{x: 0, want: 1}, {x: -1, want: 1}, {x: math.NaN(), want: 1},
		{x: 701, want: 0}, {x: math.Inf(1), want: 0},
	}
	for _, e := range edges {
		if got := expNeg(e.x); got != e.want {
			t.Errorf("expNeg(%v) = %v, want %v", e.x, got, e.want)
		}
	}
}

func BenchmarkExpNeg(b *testing.B) {
	xs := make([]float64, 1024)
	for i := range xs {
		xs[i] = float64(i) / 100
	}
	recent := make([]float64, 1024)
	for i := range recent {
		recent[i] = float64(i) / 1024 / 256 // a sample under 40ms ago, at a 10s decay
	}
	b.Run("expNeg/recent", func(b *testing.B) {
		s := 0.0
		i := 0
		for b.Loop() {
			s += expNeg(recent[i&1023])
			i++
		}
		_ = s
	})
	b.Run("expNeg", func(b *testing.B) {
		s := 0.0
		i := 0
		for b.Loop() {
			s += expNeg(xs[i&1023])
			i++
		}
		_ = s
	})
	b.Run("math.Exp", func(b *testing.B) {
		s := 0.0
		i := 0
		for b.Loop() {
			s += math.Exp(-xs[i&1023])
			i++
		}
		_ = s
	})
}

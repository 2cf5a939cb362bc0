package balancer

import "math"

// expNeg returns e^-x for x ≥ 0 (1 for x ≤ 0, 0 beyond x = 700), with a
// relative error below 1e-8 (TestExpNeg checks it against math.Exp): the
// decay factor of a latency estimate, computed on every pick for every
// candidate endpoint. It costs a few multiplications where math.Exp,
// exact to the last bit, cost 14% of a gRPC pick's time in a profile.
//
// An endpoint in use was measured milliseconds ago against a decay time
// of seconds, so x is usually below 1/256, where the Taylor series to x^3
// leaves less than x^4/24 < 1e-11. Otherwise e^-x = 2^-n · e^-z with
// n = round(x·log2 e) and |z| ≤ ln2/2; e^-z is its Taylor series to z^7,
// whose remainder is under (ln2/2)^8/8! · e^(ln2/2) < 7.3e-9; the power of
// two goes straight into the exponent bits.
func expNeg(x float64) float64 {
	if !(x > 0) {
		return 1 // also NaN: no decay rather than a poisoned estimate
	}
	if x < 1.0/256 {
		return 1 - x*(1-x*(1.0/2-x*(1.0/6)))
	}
	if x > 700 {
		return 0 // below 1e-304, and 2^-n would leave the normal range
	}
	y := x * math.Log2E
	n := int64(y + 0.5)
	z := (y - float64(n)) * math.Ln2
	p := 1 - z*(1-z*(1.0/2-z*(1.0/6-z*(1.0/24-z*(1.0/120-z*(1.0/720-z*(1.0/5040)))))))
	return math.Float64frombits(math.Float64bits(p) - uint64(n)<<52)
}

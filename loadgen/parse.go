package loadgen

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// ParseSteps reads a stepped rate such as "100:10s,400:20s,100:10s":
// comma-separated RATE:DURATION pairs, RATE in requests per second
// (0 pauses), DURATION in time.ParseDuration syntax.
func ParseSteps(s string) ([]Step, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("loadgen: steps: empty, want RATE:DURATION[,RATE:DURATION...]")
	}
	parts := strings.Split(s, ",")
	steps := make([]Step, 0, len(parts))
	var total time.Duration
	for i, p := range parts {
		p = strings.TrimSpace(p)
		rateStr, durStr, ok := strings.Cut(p, ":")
		if !ok {
			return nil, fmt.Errorf("loadgen: step %d %q: want RATE:DURATION", i+1, p)
		}
		rate, err := strconv.ParseFloat(strings.TrimSpace(rateStr), 64)
		if err != nil || math.IsNaN(rate) || rate < 0 || rate > MaxRate {
			return nil, fmt.Errorf("loadgen: step %d %q: rate %q is not a number in [0, %d]", i+1, p, rateStr, MaxRate)
		}
		d, err := time.ParseDuration(strings.TrimSpace(durStr))
		if err != nil {
			return nil, fmt.Errorf("loadgen: step %d %q: duration: %w", i+1, p, err)
		}
		if d <= 0 {
			return nil, fmt.Errorf("loadgen: step %d %q: duration must be positive", i+1, p)
		}
		total += d
		if d > MaxDuration || total > MaxDuration {
			return nil, fmt.Errorf("loadgen: step %d %q: steps last longer than the cap of %v", i+1, p, MaxDuration)
		}
		steps = append(steps, Step{Rate: rate, Duration: d})
	}
	return steps, nil
}

// ParseHeader reads one "Name: value" header as curl's -H takes it. The
// name is returned in canonical form.
func ParseHeader(s string) (name, value string, err error) {
	n, v, ok := strings.Cut(s, ":")
	if !ok {
		// The value may be a credential: name only what comes before it,
		// and with nothing before it, not even that.
		if !strings.ContainsAny(s, nameEnds) {
			return "", "", fmt.Errorf("loadgen: a header of %d characters has no colon: want \"Name: value\"", len(s))
		}
		return "", "", fmt.Errorf("loadgen: header %q: want \"Name: value\"", shownName(s))
	}
	n = strings.TrimSpace(n)
	v = strings.TrimSpace(v)
	if err := checkHeader(n, v); err != nil {
		return "", "", err
	}
	return http.CanonicalHeaderKey(n), v, nil
}

func checkHeader(name, value string) error {
	if !validToken(name) {
		return fmt.Errorf("loadgen: header %q: invalid name", shownName(name))
	}
	if !httpguts.ValidHeaderFieldValue(value) {
		// Not the value itself: it may be a credential.
		return fmt.Errorf("loadgen: header %q: its value holds a control character", name)
	}
	return nil
}

func validToken(s string) bool { return httpguts.ValidHeaderFieldName(s) }

// nameEnds are the characters that end what an error shows of a header:
// a mistyped separator ("Authorization=Bearer …", "Authorization Bearer
// …") leaves the value inside what would otherwise be the name.
const nameEnds = "=: \t"

// shownName is what an error may show of a header or metadata name: the
// part before the first '=', ':', space or tab, marked "…" when cut. The
// rest may be the value, and a header's value is often a credential.
func shownName(s string) string {
	if i := strings.IndexAny(s, nameEnds); i >= 0 {
		return s[:i] + "…"
	}
	return s
}

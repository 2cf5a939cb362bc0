package hpa

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/shoal-dev/shoal/autoscale"
)

// ErrQuery is wrapped when a Prometheus range query cannot be run or
// gives no curve.
var ErrQuery = errors.New("hpa: prometheus query")

// maxCurveBytes bounds a CSV curve: ParseCurve fails past it.
const maxCurveBytes = 16 << 20

var errCurveTooLarge = fmt.Errorf("larger than %d MiB; resample the curve at a coarser step", maxCurveBytes>>20)

// maxQueryPoints is Prometheus's own bound on the points of one series in
// a range query; checking it first gives a clearer error than the server's.
const maxQueryPoints = 11000

// ParseCurve reads a demand curve from CSV: a header `time,value` (after
// a UTF-8 byte order mark, if any), then
// one row per sample, times strictly increasing, either all RFC 3339 or
// all seconds (such as Unix times), values within [0, autoscale.MaxDemand]. The
// curve starts at the first row's time.
//
// It reads at most maxCurveBytes: MaxCurvePoints rows take a few
// megabytes, and a row of its own is held whole while it is parsed.
func ParseCurve(r io.Reader) ([]autoscale.LoadPoint, error) {
	cr := csv.NewReader(&capped{ReadCloser: io.NopCloser(r), left: maxCurveBytes, err: errCurveTooLarge})
	cr.FieldsPerRecord = 2
	cr.TrimLeadingSpace = true
	cr.ReuseRecord = true
	head, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: csv: empty; want a header time,value and rows", ErrInput)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: csv: %v", ErrInput, err)
	}
	// Spreadsheets save CSV as UTF-8 with a byte order mark first.
	head[0] = strings.TrimPrefix(head[0], "\ufeff")
	if !strings.EqualFold(strings.TrimSpace(head[0]), "time") || !strings.EqualFold(strings.TrimSpace(head[1]), "value") {
		return nil, fmt.Errorf("%w: csv: line 1: the header is %q,%q; want time,value", ErrInput, head[0], head[1])
	}
	var (
		out      []autoscale.LoadPoint
		first    time.Time
		firstSec float64
		rfc3339  bool
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: csv: %v", ErrInput, err)
		}
		line, _ := cr.FieldPos(0)
		if len(out) == autoscale.MaxCurvePoints {
			return nil, fmt.Errorf("%w: csv: line %d: more than %d rows; resample the curve at a coarser step", ErrInput, line, autoscale.MaxCurvePoints)
		}
		ts := strings.TrimSpace(rec[0])
		var at time.Duration
		if len(out) == 0 {
			if first, err = time.Parse(time.RFC3339Nano, ts); err == nil {
				rfc3339 = true
			} else if firstSec, err = parseSeconds(ts); err != nil {
				return nil, fmt.Errorf("%w: csv: line %d: time %q is neither RFC 3339 nor seconds", ErrInput, line, ts)
			}
		} else if rfc3339 {
			t, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				return nil, fmt.Errorf("%w: csv: line %d: time %q is not RFC 3339 like the first row's", ErrInput, line, ts)
			}
			at = t.Sub(first)
		} else {
			s, err := parseSeconds(ts)
			if err != nil {
				return nil, fmt.Errorf("%w: csv: line %d: time %q is not seconds like the first row's", ErrInput, line, ts)
			}
			if at, err = secondsDuration(s - firstSec); err != nil {
				return nil, fmt.Errorf("%w: csv: line %d: time %q: %v", ErrInput, line, ts, err)
			}
		}
		if len(out) > 0 && at <= out[len(out)-1].At {
			return nil, fmt.Errorf("%w: csv: line %d: time %q is not after the previous row's", ErrInput, line, ts)
		}
		if at > maxCurveSpan {
			return nil, fmt.Errorf("%w: csv: line %d: time %q is more than %s after the first row", ErrInput, line, ts, maxCurveSpan)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rec[1]), 64)
		if err != nil || !(v >= 0 && v <= autoscale.MaxDemand) {
			return nil, fmt.Errorf("%w: csv: line %d: value %q is not a number within [0, %g]", ErrInput, line, rec[1], autoscale.MaxDemand)
		}
		out = append(out, autoscale.LoadPoint{At: at, Value: v})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: csv: no rows after the header", ErrInput)
	}
	return out, nil
}

// maxCurveSpan is the longest curve a replay runs, as for a simulation.
const maxCurveSpan = 7 * 24 * time.Hour

func parseSeconds(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e11 {
		return 0, fmt.Errorf("not seconds")
	}
	return v, nil
}

func secondsDuration(s float64) (time.Duration, error) {
	if s < 0 || s > maxCurveSpan.Seconds() {
		return 0, fmt.Errorf("more than %s from the first row, or before it", maxCurveSpan)
	}
	// Milliseconds: CSV seconds carry float error below that.
	return time.Duration(math.Round(s*1000)) * time.Millisecond, nil
}

// PromSource is a Prometheus range query giving a demand curve.
type PromSource struct {
	// URL is the server's base URL; it must not carry credentials.
	URL string
	// Query is the PromQL expression; it must give one series.
	Query string
	// Start, End and Step are the range query's.
	Start, End time.Time
	Step       time.Duration
	// BearerTokenFile, if set, holds a token sent as
	// `Authorization: Bearer`, read when each request is made.
	BearerTokenFile string
	// Timeout bounds the query. If zero, 1 minute.
	Timeout time.Duration
}

// Validate checks the source without contacting the server.
func (p PromSource) Validate() error {
	u, err := url.Parse(p.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: --prometheus must be an http or https URL", ErrInput)
	}
	if u.User != nil {
		return fmt.Errorf("%w: --prometheus must not carry credentials; give a token with --bearer-token-file", ErrInput)
	}
	if strings.TrimSpace(p.Query) == "" {
		return fmt.Errorf("%w: --query is required with --prometheus", ErrInput)
	}
	if p.Start.IsZero() || p.End.IsZero() {
		return fmt.Errorf("%w: --start and --end are required with --prometheus", ErrInput)
	}
	if !p.End.After(p.Start) {
		return fmt.Errorf("%w: --end %s is not after --start %s", ErrInput, p.End.Format(time.RFC3339), p.Start.Format(time.RFC3339))
	}
	if p.End.Sub(p.Start) > maxCurveSpan {
		return fmt.Errorf("%w: --start to --end spans %s, more than %s", ErrInput, p.End.Sub(p.Start), maxCurveSpan)
	}
	if p.Step < time.Second {
		return fmt.Errorf("%w: --step %s: must be at least 1s", ErrInput, p.Step)
	}
	if n := int64(p.End.Sub(p.Start)/p.Step) + 1; n > maxQueryPoints {
		return fmt.Errorf("%w: --step %s over %s gives %d points, more than Prometheus's %d: use a larger step", ErrInput, p.Step, p.End.Sub(p.Start), n, maxQueryPoints)
	}
	if p.BearerTokenFile != "" {
		if _, err := os.Stat(p.BearerTokenFile); err != nil {
			return fmt.Errorf("%w: --bearer-token-file: %v", ErrInput, err)
		}
	}
	return nil
}

// Curve runs the range query and returns its one series as a curve
// starting at its first sample. A step with no sample (a gap in the
// series) keeps the previous sample's value.
func (p PromSource) Curve(ctx context.Context) ([]autoscale.LoadPoint, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	timeout := p.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	transport := &http.Transport{Proxy: http.ProxyFromEnvironment}
	defer transport.CloseIdleConnections()
	rt := http.RoundTripper(limitedAnswer{next: transport})
	if p.BearerTokenFile != "" {
		rt = bearerTransport{file: p.BearerTokenFile, next: rt}
	}
	base, err := url.Parse(p.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: --prometheus must be an http or https URL", ErrInput)
	}
	client, err := api.NewClient(api.Config{Address: p.URL, Client: &http.Client{Transport: rt, CheckRedirect: sameOrigin(base)}})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrQuery, err)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errQueryTimeout)
	defer cancel()
	v, _, _, err := promv1.NewAPI(client).QueryRange(ctx, p.Query, promv1.Range{Start: p.Start, End: p.End, Step: p.Step})
	if err != nil && errors.Is(context.Cause(ctx), errQueryTimeout) {
		return nil, fmt.Errorf("%w: no whole answer within %s", ErrQuery, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrQuery, err)
	}
	if v == nil {
		return nil, fmt.Errorf("%w: the answer holds no result", ErrQuery)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("%w: the result is a %s, not a range vector", ErrQuery, v.Type())
	}
	switch {
	case len(m) == 0 || len(m[0].Values) == 0:
		return nil, fmt.Errorf("%w: no samples between --start and --end", ErrQuery)
	case len(m) > 1:
		return nil, fmt.Errorf("%w: the query gives %d series; aggregate them to one, e.g. sum(...)", ErrQuery, len(m))
	}
	// The server is not trusted to have answered the range asked: a
	// sample outside it, out of order or beyond the asked count would
	// otherwise surface later as an error about the spec.
	values := m[0].Values
	if asked := int(p.End.Sub(p.Start)/p.Step) + 1; len(values) > asked {
		return nil, fmt.Errorf("%w: the answer has %d samples for a range of %d steps", ErrQuery, len(values), asked)
	}
	first := values[0].Timestamp.Time()
	out := make([]autoscale.LoadPoint, 0, len(values))
	for i, s := range values {
		at := s.Timestamp.Time()
		stamp := at.UTC().Format(time.RFC3339Nano)
		if at.Before(p.Start) || at.After(p.End) {
			return nil, fmt.Errorf("%w: the sample at %s is outside --start to --end", ErrQuery, stamp)
		}
		if i > 0 && !at.After(values[i-1].Timestamp.Time()) {
			return nil, fmt.Errorf("%w: the sample at %s is not after the one before it", ErrQuery, stamp)
		}
		v := float64(s.Value)
		if !(v >= 0 && v <= autoscale.MaxDemand) {
			return nil, fmt.Errorf("%w: the sample at %s is %g, not a number within [0, %g]", ErrQuery, stamp, v, autoscale.MaxDemand)
		}
		out = append(out, autoscale.LoadPoint{At: at.Sub(first), Value: v})
	}
	return out, nil
}

// sameOrigin refuses a redirect away from base's scheme, host and port,
// so the bearer token (added to every request the client sends) never
// reaches another server. A redirect within the server is followed.
func sameOrigin(base *url.URL) func(*http.Request, []*http.Request) error {
	return func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if req.URL.Scheme != base.Scheme || !strings.EqualFold(req.URL.Host, base.Host) {
			return fmt.Errorf("%w: the server redirected to %s://%s; give that URL with --prometheus if it is the server meant", ErrQuery, req.URL.Scheme, req.URL.Host)
		}
		return nil
	}
}

var errQueryTimeout = errors.New("the query's time is up")

// parseFlagTime reads --start or --end: RFC 3339 or Unix seconds.
func parseFlagTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if v, err := parseSeconds(s); err == nil {
		return time.Unix(0, 0).Add(time.Duration(math.Round(v*1000)) * time.Millisecond).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%w: --%s %q is neither RFC 3339 nor Unix seconds", ErrInput, name, s)
}

// maxAnswerBytes bounds Prometheus' answer to the range query. One series
// of at most maxQueryPoints samples is under half a megabyte; decoding
// holds about fifteen times what it reads, so the bound is what keeps a
// query that gives many series (refused once read) from costing a
// gigabyte.
const maxAnswerBytes = 8 << 20

// limitedAnswer ends a response body with errAnswerTooLarge past
// maxAnswerBytes.
type limitedAnswer struct{ next http.RoundTripper }

var errAnswerTooLarge = fmt.Errorf("the answer is larger than %d MiB; aggregate the query to one series, e.g. sum(...)", maxAnswerBytes>>20)

func (l limitedAnswer) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = &capped{ReadCloser: resp.Body, left: maxAnswerBytes, err: errAnswerTooLarge}
	return resp, nil
}

// capped reads its body until left bytes have been read, then fails with
// err.
type capped struct {
	io.ReadCloser
	left int64
	err  error
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

// bearerTransport adds `Authorization: Bearer` with the token read from
// file at each request, so a rotated token is picked up; the token never
// appears in a URL, a flag or a log line.
type bearerTransport struct {
	file string
	next http.RoundTripper
}

func (b bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := readToken(b.file)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("hpa: read --bearer-token-file: %w", err)
	}
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	return b.next.RoundTrip(req)
}

// maxTokenBytes bounds a bearer token file; a service account's token is
// about a kilobyte.
const maxTokenBytes = 64 << 10

// readToken reads the bearer token at path, refusing a file over
// maxTokenBytes (a device such as /dev/zero would never end).
func readToken(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tok, whole, err := readAtMost(f, maxTokenBytes)
	if err != nil {
		return nil, err
	}
	if !whole {
		return nil, fmt.Errorf("%s is larger than %d KiB", path, maxTokenBytes>>10)
	}
	return tok, nil
}

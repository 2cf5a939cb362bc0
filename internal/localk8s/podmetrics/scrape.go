package podmetrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The series of the Shoal services' request metrics (package metrics).
const (
	RequestsTotal   = "http_requests_total"
	RequestDuration = "http_request_duration_seconds"
	InFlight        = "http_requests_in_flight"
)

// ErrScrape is wrapped by every error of [Scrape] and [Parse]: the target
// could not be reached or answered something that is not an exposition.
var ErrScrape = errors.New("podmetrics: scrape failed")

// maxExpositionBytes bounds what one scrape reads, as Prometheus'
// body_size_limit does, so a broken target cannot exhaust memory.
const maxExpositionBytes = 16 << 20

// Sample is one scrape of one pod.
type Sample struct {
	// Time is when the scrape completed.
	Time time.Time
	// Requests is http_requests_total summed over method and route, by
	// the code label.
	Requests map[string]float64
	// Duration is http_request_duration_seconds summed over its labels.
	Duration Histogram
	// InFlight is http_requests_in_flight (summed, should it have labels).
	InFlight float64
	// Series holds every sample of the exposition as Prometheus stores
	// it: counters, gauges and untyped by name, histograms and summaries
	// as their _bucket, _sum and _count (and quantile) series. It is what
	// the adapter rules and KEDA triggers are evaluated on.
	Series []Series
}

// Series is one sample of one series.
type Series struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Histogram is a cumulative histogram: Buckets sorted by UpperBound, the
// last one +Inf, each Count counting the observations <= UpperBound.
type Histogram struct {
	Count   float64
	Sum     float64
	Buckets []Bucket
}

// Bucket is one cumulative bucket of a [Histogram].
type Bucket struct {
	UpperBound float64
	Count      float64
}

// Scrape fetches url (a pod's /metrics) with client and parses it. The
// sample's Time is the moment the response was read. A nil client means
// [http.DefaultClient]; the context bounds the whole exchange.
func Scrape(ctx context.Context, client *http.Client, url string) (Sample, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Sample{}, fmt.Errorf("%w: %s: %w", ErrScrape, url, err)
	}
	// The classic text format: every client library serves it, and it is
	// what Prometheus falls back to.
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
	if err != nil {
		return Sample{}, fmt.Errorf("%w: %s: %w", ErrScrape, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return Sample{}, fmt.Errorf("%w: %s: status %s", ErrScrape, url, resp.Status)
	}
	format := expfmt.ResponseFormat(resp.Header)
	if format.FormatType() == expfmt.TypeUnknown {
		format = expfmt.NewFormat(expfmt.TypeTextPlain)
	}
	s, err := decode(io.LimitReader(resp.Body, maxExpositionBytes), format, time.Now())
	if err != nil {
		return Sample{}, fmt.Errorf("%w: %s: %w", ErrScrape, url, err)
	}
	return s, nil
}

// Parse reads a Prometheus text exposition taken at the given time.
func Parse(r io.Reader, at time.Time) (Sample, error) {
	s, err := decode(r, expfmt.NewFormat(expfmt.TypeTextPlain), at)
	if err != nil {
		return Sample{}, fmt.Errorf("%w: %w", ErrScrape, err)
	}
	return s, nil
}

func decode(r io.Reader, format expfmt.Format, at time.Time) (Sample, error) {
	dec := expfmt.NewDecoder(r, format)
	var fams []*dto.MetricFamily
	for {
		var mf dto.MetricFamily
		err := dec.Decode(&mf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Sample{}, err
		}
		fams = append(fams, &mf)
	}
	// Map iteration in the text decoder makes the order random.
	sort.Slice(fams, func(i, j int) bool { return fams[i].GetName() < fams[j].GetName() })
	s := Sample{Time: at, Requests: map[string]float64{}}
	for _, mf := range fams {
		switch mf.GetName() {
		case RequestsTotal:
			for _, m := range mf.GetMetric() {
				s.Requests[labelValue(m, "code")] += metricValue(m)
			}
		case RequestDuration:
			for _, m := range mf.GetMetric() {
				if h := m.GetHistogram(); h != nil {
					s.Duration = addHistogram(s.Duration, h)
				}
			}
		case InFlight:
			for _, m := range mf.GetMetric() {
				s.InFlight += metricValue(m)
			}
		}
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.TimeFromUnixNano(at.UnixNano())}, mf)
		if err != nil {
			return Sample{}, err
		}
		for _, v := range vec {
			labels := make(map[string]string, len(v.Metric))
			name := ""
			for k, lv := range v.Metric {
				if k == model.MetricNameLabel {
					name = string(lv)
					continue
				}
				labels[string(k)] = string(lv)
			}
			s.Series = append(s.Series, Series{Name: name, Labels: labels, Value: float64(v.Value)})
		}
	}
	return s, nil
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

// addHistogram adds h to acc bucket by bucket (matched on the upper
// bound), completing the +Inf bucket from the count when it is implicit.
func addHistogram(acc Histogram, h *dto.Histogram) Histogram {
	count := h.GetSampleCountFloat()
	if count <= 0 {
		count = float64(h.GetSampleCount())
	}
	acc.Count += count
	acc.Sum += h.GetSampleSum()
	byBound := make(map[float64]float64, len(acc.Buckets)+len(h.GetBucket())+1)
	for _, b := range acc.Buckets {
		byBound[b.UpperBound] += b.Count
	}
	hasInf := false
	for _, b := range h.GetBucket() {
		c := b.GetCumulativeCountFloat()
		if c <= 0 {
			c = float64(b.GetCumulativeCount())
		}
		if math.IsInf(b.GetUpperBound(), 1) {
			hasInf = true
		}
		byBound[b.GetUpperBound()] += c
	}
	if !hasInf {
		byBound[math.Inf(1)] += count
	}
	acc.Buckets = acc.Buckets[:0]
	for ub, c := range byBound {
		if math.IsNaN(ub) {
			continue
		}
		acc.Buckets = append(acc.Buckets, Bucket{UpperBound: ub, Count: c})
	}
	sort.Slice(acc.Buckets, func(i, j int) bool { return acc.Buckets[i].UpperBound < acc.Buckets[j].UpperBound })
	return acc
}

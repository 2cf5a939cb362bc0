package metricstest

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value returns the value of the series called name whose labels include
// every name/value pair in labelPairs ("code", "200", ...): the value of a
// counter, gauge or untyped metric, or the sample count of a histogram or
// summary. Labels not named are not compared. It fails the test if gathering
// fails, labelPairs is odd, or not exactly one series matches.
func Value(t testing.TB, g prometheus.Gatherer, name string, labelPairs ...string) float64 {
	t.Helper()
	if len(labelPairs)%2 != 0 {
		t.Fatalf("metricstest: odd number of label arguments for %s: %q", name, labelPairs)
	}
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("metricstest: gather: %v", err)
	}
	var found []*dto.Metric
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if hasLabels(m, labelPairs) {
				found = append(found, m)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("metricstest: %d series of %s match labels %q, want 1", len(found), name, labelPairs)
	}
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	case m.Summary != nil:
		return float64(m.Summary.GetSampleCount())
	}
	t.Fatalf("metricstest: series of %s has no value", name)
	return 0
}

func hasLabels(m *dto.Metric, pairs []string) bool {
	for i := 0; i < len(pairs); i += 2 {
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == pairs[i] && lp.GetValue() == pairs[i+1] {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Scrape GETs url and returns the body, failing the test unless the answer
// is 200 within 30 seconds.
func Scrape(t testing.TB, url string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("metricstest: scrape %s: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("metricstest: scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("metricstest: scrape %s: read body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metricstest: scrape %s: status %s: %s", url, resp.Status, body)
	}
	return body
}

// Promtool lints exposition (Prometheus text format) with
// `promtool check metrics` and fails the test with promtool's findings if it
// reports any. It fails, rather than skips, when promtool is not installed:
// Debian's prometheus package provides it.
func Promtool(t testing.TB, exposition []byte) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("metricstest: promtool not found (install Debian package prometheus): %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("metricstest: promtool check metrics: %v\n%s", err, out)
	}
}

// Families returns the sorted names of the metric families in exposition
// text, for asserting that a scrape contains what it should.
func Families(exposition []byte) []string {
	seen := map[string]bool{}
	for line := range strings.SplitSeq(string(exposition), "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if name, _, ok := strings.Cut(rest, " "); ok {
				seen[name] = true
			}
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

package loadgen

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// keyedReplicas answers as replica a, b or c by the request's balance
// key (key-i is served by "abc"[i%3]), and with 503 for key-0.
func keyedReplicas(t *testing.T) *replica {
	return startReplica(t, "", false, func(w http.ResponseWriter, req *http.Request) {
		i, _ := strconv.Atoi(strings.TrimPrefix(req.Header.Get("X-Balance-Key"), "key-"))
		w.Header().Set("X-Served-By", string("abc"[i%3]))
		if i == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
}

// normalize replaces what depends on the clock with fixed values, so
// the rest of a real run's report can be compared with a golden file.
func normalize(r *Report) {
	r.Target = "http://127.0.0.1:8080/"
	r.Start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r.Elapsed = 2 * time.Second
	r.Throughput = float64(r.Completed) / 2
	r.Latency = Latency{P50: 1200 * time.Microsecond, P90: 3 * time.Millisecond, P99: 15 * time.Millisecond,
		P999: 40 * time.Millisecond, Max: 41 * time.Millisecond, Mean: 1500 * time.Microsecond}
	for i := range r.Windows {
		r.Windows[i].MaxLatency = time.Duration(i+1) * time.Millisecond
	}
}

func TestReportGolden(t *testing.T) {
	r := keyedReplicas(t)
	rep := run(t, Config{URL: r.url(), Steps: []Step{{100, time.Second}, {50, time.Second}}, Window: time.Second,
		KeyHeader: "X-Balance-Key", Keys: 7, Seed: 1})
	if rep.Scheduled != 150 || rep.Completed != 150 {
		t.Fatalf("scheduled %d completed %d, errors %v", rep.Scheduled, rep.Completed, rep.Errors)
	}
	normalize(rep)
	var text, js bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "report.txt.golden"), text.Bytes(), *update)
	golden.Check(t, filepath.Join("testdata", "report.json.golden"), js.Bytes(), *update)
}

// TestJSONSchema checks the JSON report against the field list in
// testdata/schema.txt, the one docs/load.md documents.
func TestJSONSchema(t *testing.T) {
	r := keyedReplicas(t)
	rep := run(t, Config{URL: r.url(), Rate: 200, Count: 20, Window: 50 * time.Millisecond, KeyHeader: "X-Balance-Key", Keys: 5})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var got []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if prefix == "errors" || prefix == "error_samples" {
				got = append(got, prefix+": object") // keyed by error kind
				return
			}
			for k, e := range v {
				walk(strings.TrimPrefix(prefix+"."+k, "."), e)
			}
		case []any:
			got = append(got, prefix+": array")
			if len(v) > 0 {
				walk(prefix+"[]", v[0])
			}
		case string:
			got = append(got, prefix+": string")
		case float64:
			got = append(got, prefix+": number")
		case bool:
			got = append(got, prefix+": boolean")
		}
	}
	walk("", doc)
	slices.Sort(got)
	golden.Check(t, filepath.Join("testdata", "schema.txt"), []byte(strings.Join(got, "\n")+"\n"), *update)
	if doc["schema"] != SchemaVersion {
		t.Errorf("schema %v, want %s", doc["schema"], SchemaVersion)
	}
}

func TestRecorderArithmetic(t *testing.T) {
	rec := newRecorder(time.Second)
	add := func(off time.Duration, lat time.Duration, status int, kind, by string) {
		rec.record(result{offset: off, latency: lat, answered: status != 0, status: status, kind: kind, servedBy: by})
	}
	add(0, 10*time.Millisecond, 200, "", "a")
	add(100*time.Millisecond, 20*time.Millisecond, 200, "", "a")
	add(200*time.Millisecond, 30*time.Millisecond, 200, "", "b")
	add(300*time.Millisecond, 0, 0, KindDropped, "")
	add(1100*time.Millisecond, 40*time.Millisecond, 503, "http_503", "b")
	add(1200*time.Millisecond, 0, 0, KindRefused, "")
	add(2500*time.Millisecond, 50*time.Millisecond, 200, "", "")
	rep := rec.report(3 * time.Second)

	if rep.Scheduled != 7 || rep.Sent != 6 || rep.Dropped != 1 || rep.Completed != 5 || rep.OK != 4 || rep.Unattributed != 1 {
		t.Errorf("counts: %+v", rep)
	}
	if rep.Errors[KindDropped] != 1 || rep.Errors[KindRefused] != 1 || rep.Errors["http_503"] != 1 || len(rep.Errors) != 3 {
		t.Errorf("errors %v", rep.Errors)
	}
	if sh := rep.Shares(); math.Abs(sh["a"]-0.5) > 1e-12 || math.Abs(sh["b"]-0.5) > 1e-12 || rep.CV() != 0 {
		t.Errorf("shares %v cv %v", sh, rep.CV())
	}
	if rep.Latency.Max < 49*time.Millisecond || rep.Latency.Max > 51*time.Millisecond {
		t.Errorf("max %v", rep.Latency.Max)
	}
	if p := rep.Latency.P50; p < 29*time.Millisecond || p > 31*time.Millisecond {
		t.Errorf("p50 %v, want 30ms", p)
	}
	if math.Abs(rep.Throughput-5.0/3) > 1e-9 {
		t.Errorf("throughput %v", rep.Throughput)
	}
	want := []Window{
		{Start: 0, Scheduled: 4, Completed: 3, Errors: 1, MaxLatency: 30 * time.Millisecond, Replicas: map[string]int64{"a": 2, "b": 1}},
		{Start: time.Second, Scheduled: 2, Completed: 1, Errors: 2, MaxLatency: 40 * time.Millisecond, Replicas: map[string]int64{"b": 1}},
		{Start: 2 * time.Second, Scheduled: 1, Completed: 1, Errors: 0, MaxLatency: 50 * time.Millisecond, Replicas: map[string]int64{}},
	}
	if len(rep.Windows) != len(want) {
		t.Fatalf("%d windows, want %d", len(rep.Windows), len(want))
	}
	for i, w := range rep.Windows {
		g := w
		if g.Start != want[i].Start || g.Scheduled != want[i].Scheduled || g.Completed != want[i].Completed ||
			g.Errors != want[i].Errors || g.MaxLatency != want[i].MaxLatency || len(g.Replicas) != len(want[i].Replicas) {
			t.Errorf("window %d = %+v, want %+v", i, g, want[i])
		}
		for k, v := range want[i].Replicas {
			if g.Replicas[k] != v {
				t.Errorf("window %d replica %s = %d, want %d", i, k, g.Replicas[k], v)
			}
		}
	}
	// a:2 b:1 -> mean 1.5, sd 0.5, cv 1/3.
	if got := rep.Windows[0].CV(); math.Abs(got-1.0/3) > 1e-12 {
		t.Errorf("window 0 cv %v, want 1/3", got)
	}
}

func TestCV(t *testing.T) {
	tests := []struct {
		name   string
		counts map[string]int64
		want   float64
	}{
		{"none", map[string]int64{}, 0},
		{"one replica", map[string]int64{"a": 9}, 0},
		{"even", map[string]int64{"a": 5, "b": 5, "c": 5}, 0},
		{"1:2:3", map[string]int64{"a": 10, "b": 20, "c": 30}, math.Sqrt(200.0/3) / 20},
		{"all on one of two", map[string]int64{"a": 10, "b": 0}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cv(tc.counts); math.Abs(got-tc.want) > 1e-12 {
				t.Errorf("cv(%v) = %v, want %v", tc.counts, got, tc.want)
			}
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/xml"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// Shoal's gRPC balancer logs endpoint changes on the default logger,
	// between the benchmarks' result lines.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	goleak.VerifyTestMain(m)
}

func TestSpreadOf(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want spread
	}{
		{"empty", nil, spread{}},
		{"one", []float64{3}, spread{3, 3, 3}},
		{"odd", []float64{5, 1, 3}, spread{3, 1, 5}},
		{"even", []float64{4, 1, 2, 3}, spread{2.5, 1, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := spreadOf(tt.in); got != tt.want {
				t.Fatalf("spreadOf(%v) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestServiceConfig(t *testing.T) {
	tests := []struct {
		mode, want string
	}{
		{modeHealthy, `"round_robin"`},
		{modePeakEWMA, `"shoal_peak_ewma"`},
		{modeRoundRobin, `"round_robin"`},
		{modeLeastReq, `"least_request_experimental": {"choiceCount": 2}`},
		{modeWRR, `"weighted_round_robin": {"blackoutPeriod": "1s"`},
		{"random", ""},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			got, err := serviceConfig(tt.mode, "")
			if tt.want == "" {
				if err == nil {
					t.Fatalf("serviceConfig(%q) = %s, want an error", tt.mode, got)
				}
				return
			}
			if err != nil || !strings.Contains(got, tt.want) {
				t.Fatalf("serviceConfig(%q) = %s, %v; want it to contain %s", tt.mode, got, err, tt.want)
			}
		})
	}
}

// fakeOutcome is a measured period whose calls all took lat and were
// served by the named servers in turn.
func fakeOutcome(lat time.Duration, by ...string) *outcome {
	o := &outcome{errors: map[string]int{}, served: map[string]int{},
		hist: hdrhistogram.New(1, int64(time.Minute), 3), lag: hdrhistogram.New(1, int64(time.Minute), 3)}
	for i := range 100 {
		o.sent++
		_ = o.hist.RecordValue(int64(lat))
		_ = o.lag.RecordValue(1000)
		o.served[by[i%len(by)]]++
	}
	return o
}

func TestGoal(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name                          string
		healthy, ewma, rr             time.Duration
		wantLowest, wantWithin, round int
	}{
		{"met", 10 * ms, 11 * ms, 50 * ms, 1, 1, 1},
		{"lowest but too slow", 10 * ms, 13 * ms, 50 * ms, 1, 0, 1},
		{"beaten", 10 * ms, 11 * ms, 10 * ms, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &results{
				cfg:  config{modes: []string{modeHealthy, modePeakEWMA, modeRoundRobin}, rounds: 1},
				slow: "s4",
				cells: []cell{
					{1, modeHealthy, fakeOutcome(tt.healthy, "s1", "s2", "s3", "s4")},
					{1, modePeakEWMA, fakeOutcome(tt.ewma, "s1", "s2", "s3")},
					{1, modeRoundRobin, fakeOutcome(tt.rr, "s1", "s2", "s3", "s4")},
				},
			}
			lowest, within, rounds := newReport(res).goal()
			if lowest != tt.wantLowest || within != tt.wantWithin || rounds != tt.round {
				t.Fatalf("goal() = %d, %d, %d; want %d, %d, %d", lowest, within, rounds, tt.wantLowest, tt.wantWithin, tt.round)
			}
		})
	}
}

// TestRunSmoke runs every mode briefly against real servers and checks
// that the report, CSV and SVG come out whole and that the slow server
// is seen.
func TestRunSmoke(t *testing.T) {
	cfg := config{
		load:  load{rate: 200, warmup: 300 * time.Millisecond, duration: 500 * time.Millisecond, timeout: 2 * time.Second, maxOutstanding: 100},
		modes: allModes, rounds: 1, service: time.Millisecond, slowdown: 10, jitter: 0.2, workers: 4,
		budget: time.Minute,
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rep := newReport(res)
	for _, s := range rep.summaries {
		if s.failed > 0 {
			t.Errorf("%s: %d of %d calls failed: %v", s.mode, s.failed, s.sent, s.errors)
		}
		if s.sent != 100 {
			t.Errorf("%s: %d calls measured, want 100", s.mode, s.sent)
		}
	}
	if s, _ := rep.summary(modeRoundRobin); s.slowShare.med < 0.15 {
		t.Errorf("round_robin sent %.0f%% to the slow server, want about 25%%", 100*s.slowShare.med)
	}
	var md, csvOut, svg bytes.Buffer
	if err := rep.writeMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, m := range allModes {
		if !strings.Contains(md.String(), modeLabels[m]) {
			t.Errorf("report lacks %s:\n%s", m, md.String())
		}
	}
	if err := rep.writeCSV(&csvOut); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil || len(rows) != 1+len(allModes) {
		t.Fatalf("CSV: %d rows, %v; want %d", len(rows), err, 1+len(allModes))
	}
	if err := rep.writeSVG(&svg); err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg.Bytes(), new(struct{})); err != nil {
		t.Fatalf("SVG is not XML: %v", err)
	}
}

func TestValidate(t *testing.T) {
	ok := config{load: load{rate: 1000, warmup: 2 * time.Second, duration: 5 * time.Second, timeout: time.Second, maxOutstanding: 10},
		modes: allModes, rounds: 3, service: time.Millisecond, slowdown: 10, jitter: 0.2, workers: 4, budget: 2 * time.Minute}
	tests := []struct {
		name   string
		change func(*config)
		ok     bool
	}{
		{"defaults", func(*config) {}, true},
		{"over budget", func(c *config) { c.rounds = 4 }, false},
		{"no rate", func(c *config) { c.rate = 0 }, false},
		{"jitter 1", func(c *config) { c.jitter = 1 }, false},
		{"unknown mode", func(c *config) { c.modes = []string{"random"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.change(&c)
			if err := c.validate(); (err == nil) != tt.ok {
				t.Fatalf("validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

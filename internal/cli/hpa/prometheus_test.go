package hpa

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testkit/promtest"
	"go.uber.org/goleak"
)

// promtoolBin returns the promtool binary, or skips saying how to install
// it (scripts/deps.sh does, for CI).
func promtoolBin(t *testing.T) string {
	t.Helper()
	tool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("no prometheus/promtool: install them with scripts/deps.sh, or apt-get install -y prometheus")
	}
	return tool
}

// backfilledPrometheus writes the CSV curve as the gauge `demand` (and a
// copy labelled zone="b", so that a bare `demand` gives two series) into
// TSDB blocks with promtool, starts prometheus on a free loopback port
// over them, and returns its URL once it is ready.
func backfilledPrometheus(t *testing.T, csvPath string) string {
	t.Helper()
	promtest.Bin(t) // skips before promtool's work if prometheus is absent
	tool := promtoolBin(t)
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var om bytes.Buffer
	om.WriteString("# TYPE demand gauge\n")
	for _, zone := range []string{"a", "b"} {
		for _, r := range rows[1:] {
			ts, err := time.Parse(time.RFC3339, r[0])
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&om, "demand{zone=%q} %s %d\n", zone, r[1], ts.Unix())
		}
	}
	om.WriteString("# EOF\n")
	dir := t.TempDir()
	input, data := filepath.Join(dir, "demand.om"), filepath.Join(dir, "data")
	if err := os.WriteFile(input, om.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "tsdb", "create-blocks-from", "openmetrics", input, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	// Retention long enough that the backfilled blocks stay whatever the
	// date the test runs on.
	return promtest.Start(t, promtest.Options{
		Config:  "global: {scrape_interval: 1m}\n",
		DataDir: data,
		Args:    []string{"--storage.tsdb.retention.time=100y"},
	}).URL()
}

// TestReplayFromPrometheus feeds a real Prometheus the traffic curve and
// checks that `shoal hpa replay --prometheus` gives the same figures as
// the same curve from CSV, and that the query's failures are named.
func TestReplayFromPrometheus(t *testing.T) {
	// Registered first, so it runs after the cleanups that stop prometheus.
	t.Cleanup(func() { goleak.VerifyNone(t) })
	curve := filepath.Join("testdata", "replay-traffic.csv")
	base := backfilledPrometheus(t, curve)
	specs := []string{"-f", filepath.Join("testdata", "replay-hpa.yaml"), "-f", filepath.Join("testdata", "replay-keda.yaml")}
	model := []string{"--pod-capacity", "100", "--cpu-request", "500m", "--metric-delay", "30s", "-o", "json"}
	// The curve's first and last samples: 09:00:00 and 09:59:45.
	promArgs := func(base, query string) []string {
		return append(append(append([]string{"replay"}, specs...), model...),
			"--prometheus", base, "--query", query, "--start", "2026-11-30T09:00:00Z", "--end", "2026-11-30T09:59:45Z", "--step", "15s")
	}
	figures := func(out string) string {
		var v struct {
			Curve struct{ Points int }
			Specs json.RawMessage
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		return fmt.Sprintf("%d points %s", v.Curve.Points, v.Specs)
	}
	fromCSV, err := execute(t, append(append(append([]string{"replay"}, specs...), model...), "--csv", curve)...)
	if err != nil {
		t.Fatal(err)
	}
	fromProm, err := execute(t, promArgs(base, `sum(demand{zone="a"})`)...)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := figures(fromCSV), figures(fromProm); a != b {
		t.Errorf("figures differ:\nCSV:        %.300s\nPrometheus: %.300s", a, b)
	}
	if !strings.Contains(fromProm, `"points": 240`) || !strings.Contains(fromProm, `"podSeconds"`) {
		t.Errorf("output lacks the curve or figures:\n%.500s", fromProm)
	}

	// Behind a proxy that wants a bearer token: the token comes from the
	// file, never from the URL or a flag, and is not repeated in errors.
	const token = "s3cr3t-token"
	target, _ := url.Parse(base)
	forward := httputil.NewSingleHostReverseProxy(target)
	upstream := &http.Transport{}
	forward.Transport = upstream
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	defer upstream.CloseIdleConnections()
	defer proxy.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withToken, err := execute(t, append(promArgs(proxy.URL, `sum(demand{zone="a"})`), "--bearer-token-file", tokenFile)...)
	if err != nil {
		t.Fatal(err)
	}
	if figures(withToken) != figures(fromCSV) {
		t.Error("figures through the authenticating proxy differ from the CSV's")
	}
	wrong := filepath.Join(t.TempDir(), "wrong")
	if err := os.WriteFile(wrong, []byte("nope"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"two series", promArgs(base, "demand"), "the query gives 2 series; aggregate them"},
		{"bad PromQL", promArgs(base, "sum(demand"), "hpa: prometheus query"},
		{"empty range", append(promArgs(base, "sum(demand)")[:len(promArgs(base, ""))-6], "--start", "2020-01-01T00:00:00Z", "--end", "2020-01-01T01:00:00Z", "--step", "15s"), "no samples between --start and --end"},
		{"no token", promArgs(proxy.URL, "sum(demand)"), "401"},
		{"wrong token", append(promArgs(proxy.URL, "sum(demand)"), "--bearer-token-file", wrong), "401"},
		{"a string, not a range", promArgs(base, `"text"`), "hpa: prometheus query"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := execute(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error %v repeats the token", err)
			}
		})
	}
}

// TestPromCurveRefusesHugeAnswer points the range query at a hostile
// "Prometheus" on loopback that answers with series upon series, far past
// maxAnswerBytes: the query must fail with ErrQuery naming the limit
// instead of holding the answer whole.
func TestPromCurveRefusesHugeAnswer(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if _, err := fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[`); err != nil {
			return
		}
		series := []byte(`{"metric":{"pod":"p"},"values":[[1700000000,"1"],[1700000060,"2"]]},`)
		// Four times the limit at most, so the test ends even if the
		// client read on.
		for sent := 0; sent < 4*maxAnswerBytes && r.Context().Err() == nil; sent += len(series) {
			if _, err := w.Write(series); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	start := time.Unix(1700000000, 0).UTC()
	_, err := PromSource{URL: srv.URL, Query: "demand", Start: start, End: start.Add(time.Hour), Step: time.Minute}.Curve(t.Context())
	t.Log(err)
	if !errors.Is(err, ErrQuery) || !strings.Contains(err.Error(), "larger than 8 MiB") {
		t.Fatalf("error %v, want ErrQuery naming the 8 MiB limit", err)
	}
}

// TestPromCurveHostileAnswers points the range query at a "Prometheus" on
// loopback that answers what a broken or hostile server might: each must
// end in ErrQuery naming what was wrong, never a panic, a curve the
// replay later blames on the spec, or the bearer token sent elsewhere.
func TestPromCurveHostileAnswers(t *testing.T) {
	defer goleak.VerifyNone(t)
	const token = "hostile-test-token-3f9a"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	// elsewhere is another server (another port is another origin); it
	// records any Authorization header it is sent.
	leaked := make(chan string, 16)
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			leaked <- a
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000,"1"],[1700000060,"2"]]}]}}`)
	}))
	defer elsewhere.Close()
	matrix := func(values string) string {
		return `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[` + values + `]}]}}`
	}
	start := time.Unix(1700000000, 0).UTC()
	// stop ends the slow server's drip when the test is over.
	stop := make(chan struct{})
	defer close(stop)
	tests := []struct {
		name     string
		status   int
		body     string
		location string // a redirect's target, relative to the server if it starts with /
		want     string // "" when the query must succeed
	}{
		{name: "empty object", body: `{}`, want: "the answer holds no result"},
		{name: "success without data", body: `{"status":"success"}`, want: "the answer holds no result"},
		{name: "redirect to another server", status: http.StatusTemporaryRedirect, location: elsewhere.URL + "/api/v1/query_range", want: "redirected to http://" + strings.TrimPrefix(elsewhere.URL, "http://")},
		{name: "found, to another server", status: http.StatusFound, location: elsewhere.URL + "/api/v1/query_range", want: "redirected to"},
		{name: "redirect within the server", status: http.StatusTemporaryRedirect, location: "/ok/api/v1/query_range"},
		{name: "samples out of order", body: matrix(`[1700000060,"1"],[1700000000,"2"]`), want: "the sample at 2023-11-14T22:13:20Z is not after the one before it"},
		{name: "a repeated sample", body: matrix(`[1700000000,"1"],[1700000000,"2"]`), want: "is not after the one before it"},
		{name: "more samples than steps", body: matrix(strings.TrimSuffix(strings.Repeat(`[1700000000,"1"],`, 70), ",")), want: "the answer has 70 samples for a range of 61 steps"},
		{name: "a sample thirty years on", body: matrix(`[1700000000,"1"],[2646080000,"2"]`), want: "is outside --start to --end"},
		{name: "a sample before the start", body: matrix(`[1600000000,"1"],[1700000000,"2"]`), want: "is outside --start to --end"},
		{name: "an answer that drips", body: "drip", want: "no whole answer within 200ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, "/ok/") {
					if r.Header.Get("Authorization") != "Bearer "+token {
						http.Error(w, "no token", http.StatusUnauthorized)
						return
					}
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprint(w, matrix(`[1700000000,"1"],[1700000060,"2"]`))
					return
				}
				if tc.location != "" {
					http.Redirect(w, r, tc.location, tc.status)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				if tc.body == "drip" {
					w.WriteHeader(http.StatusOK)
					for _, b := range []byte(matrix(`[1700000000,"1"]`)) {
						if _, err := w.Write([]byte{b}); err != nil {
							return
						}
						w.(http.Flusher).Flush()
						select {
						case <-stop:
							return
						case <-r.Context().Done():
							return
						case <-time.After(50 * time.Millisecond):
						}
					}
					return
				}
				fmt.Fprint(w, tc.body)
			}))
			defer srv.Close()
			var timeout time.Duration // the default minute
			if tc.body == "drip" {
				timeout = 200 * time.Millisecond
			}
			c, err := PromSource{URL: srv.URL, Query: "demand", Start: start, End: start.Add(time.Hour), Step: time.Minute, BearerTokenFile: tokenFile, Timeout: timeout}.Curve(t.Context())
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("error %v, want a curve", err)
			case tc.want == "" && len(c) != 2:
				t.Fatalf("curve %v, want two points", c)
			case tc.want != "" && (!errors.Is(err, ErrQuery) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want ErrQuery containing %q", err, tc.want)
			case err != nil && strings.Contains(err.Error(), token):
				t.Errorf("error %v repeats the token", err)
			}
			select {
			case a := <-leaked:
				t.Errorf("the other server was sent %q", a)
			default:
			}
		})
	}
}

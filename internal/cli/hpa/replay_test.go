package hpa

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/autoscale"
	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

// trafficArgs replays testdata/replay-traffic.csv (an hour of requests
// per second: a ramp, a two-minute spike, a sawtooth) with 100 requests
// per second per pod and a 30s metric delay.
func trafficArgs(cmd string, specs ...string) []string {
	args := []string{cmd}
	for _, s := range specs {
		args = append(args, "-f", filepath.Join("testdata", s))
	}
	return append(args, "--csv", filepath.Join("testdata", "replay-traffic.csv"), "--pod-capacity", "100", "--cpu-request", "500m",
		"--metric-delay", "30s", "--metric-resolution", "15s")
}

func TestReplayGolden(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "replay.svg")
	out, err := execute(t, append(trafficArgs("replay", "replay-hpa.yaml", "replay-hpa-fast.yaml", "replay-keda.yaml"), "--chart", svg)...)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "replay-traffic.golden"), []byte(out), *update)
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "gallery: replicas", "gallery-fast: ready", "gallery-keda: replicas", "shaded: gallery short of demand", "</svg>"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

// TestReplayJSONGolden replays a minute-step CSV in Unix seconds through
// a simulate scenario file and checks the figures a script reads.
func TestReplayJSONGolden(t *testing.T) {
	out, err := execute(t, "replay", "-f", filepath.Join("..", "..", "..", "docs", "examples", "hpa-cpu-default.yaml"),
		"--csv", filepath.Join("testdata", "replay-step.csv"), "--pod-capacity", "100", "--cpu-request", "500m", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "replay-step-json.golden"), []byte(out), *update)
	var got struct {
		Specs []struct {
			Name   string
			Report struct {
				PodSeconds, UnderSeconds float64
				Series                   []autoscale.ReplayPoint
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Specs) != 1 || got.Specs[0].Name != "default behavior" || len(got.Specs[0].Report.Series) != 3 {
		t.Fatalf("json %+v", got)
	}
}

func TestTuneGolden(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "tune.svg")
	out, err := execute(t, append(trafficArgs("tune", "replay-hpa.yaml"), "--budget", "2m", "--targets", "0.5,0.7,0.9",
		"--scale-up-windows", "0s", "--scale-down-windows", "60s,300s", "--tolerances", "0.1/0.1", "--chart", svg)...)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "tune-traffic.golden"), []byte(out), *update)
	for _, want := range []string{"24 candidates replayed", "recommended: #", "apply under the HorizontalPodAutoscaler", "averageUtilization:", "stabilizationWindowSeconds:"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("gallery (as given): replicas")) || !bytes.Contains(b, []byte("recommended #")) {
		t.Error("chart lacks the spec as given and the recommended one")
	}
}

// TestTuneJSON checks that -o json carries the frontier and a spec that
// decodes as an HPA spec.
func TestTuneJSON(t *testing.T) {
	out, err := execute(t, append(trafficArgs("tune", "replay-hpa.yaml"), "--targets", "0.6,0.8", "--scale-up-windows", "0s",
		"--scale-down-windows", "300s", "--tolerances", "0.1/0.1", "-o", "json")...)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Tuning autoscale.Tuning
		Apply  string
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if got.Tuning.Tried != 8 || len(got.Tuning.Frontier) == 0 || !strings.Contains(got.Apply, "behavior:") {
		t.Errorf("tuning %+v, apply %q", got.Tuning, got.Apply)
	}
	if _, _, _, _, err := DecodeSpec([]byte("kind: HorizontalPodAutoscaler\n" + strings.Replace(got.Apply, "spec:", "spec:\n  maxReplicas: 20", 1))); err != nil {
		t.Errorf("the spec to apply does not decode: %v\n%s", err, got.Apply)
	}
}

func TestReplayErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	hpa := filepath.Join("testdata", "replay-hpa.yaml")
	csv := filepath.Join("testdata", "replay-step.csv")
	badCSV := write("bad.csv", "time,value\n0,1\n15,lots\n")
	onePoint := write("one.csv", "time,value\n0,1\n")
	deployment := write("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
	unknown := write("unknown.yaml", "kind: HorizontalPodAutoscaler\nspec: {maxReplicas: 2, minReplica: 1}\n")
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no spec", []string{"replay", "--csv", csv}, "-f SPEC is required"},
		{"no curve", []string{"replay", "-f", hpa}, "--csv FILE or --prometheus"},
		{"both curves", []string{"replay", "-f", hpa, "--csv", csv, "--prometheus", "http://127.0.0.1:1"}, "one of --csv and --prometheus"},
		{"bad output", []string{"replay", "-f", hpa, "--csv", csv, "-o", "yaml"}, `-o "yaml"`},
		{"zero capacity", []string{"replay", "-f", hpa, "--csv", csv, "--pod-capacity", "0"}, "--pod-capacity"},
		{"bad cpu request", []string{"replay", "-f", hpa, "--csv", csv, "--cpu-request", "lots"}, "--cpu-request"},
		{"short sync", []string{"replay", "-f", hpa, "--csv", csv, "--sync-period", "10ms"}, "--sync-period"},
		{"bad csv row", []string{"replay", "-f", hpa, "--csv", badCSV}, "bad.csv: hpa: bad input: csv: line 3: value"},
		{"one point", []string{"replay", "-f", hpa, "--csv", onePoint}, "one.csv has one point"},
		{"missing csv", []string{"replay", "-f", hpa, "--csv", filepath.Join(dir, "none.csv")}, "read curve"},
		{"not an autoscaler", []string{"replay", "-f", deployment, "--csv", csv}, `kind "Deployment"`},
		{"unknown field", []string{"replay", "-f", unknown, "--csv", csv}, `unknown field "minReplica"`},
		{"too fine a resolution", []string{"replay", "-f", hpa, "--csv", csv, "--metric-resolution", "1ns"}, "metricResolution"},
		{"credentials in the URL", []string{"replay", "-f", hpa, "--prometheus", "http://user:secret@127.0.0.1:1", "--query", "up", "--start", "0", "--end", "60"}, "must not carry credentials"},
		{"no query", []string{"replay", "-f", hpa, "--prometheus", "http://127.0.0.1:1", "--start", "0", "--end", "60"}, "--query is required"},
		{"end before start", []string{"replay", "-f", hpa, "--prometheus", "http://127.0.0.1:1", "--query", "up", "--start", "60", "--end", "0"}, "is not after --start"},
		{"bad start", []string{"replay", "-f", hpa, "--prometheus", "http://127.0.0.1:1", "--query", "up", "--start", "yesterday", "--end", "0"}, `--start "yesterday"`},
		{"absurd step", []string{"replay", "-f", hpa, "--prometheus", "http://127.0.0.1:1", "--query", "up", "--start", "0", "--end", "86400", "--step", "1s"}, "86401 points"},
		{"sub-second step", []string{"replay", "-f", hpa, "--prometheus", "http://127.0.0.1:1", "--query", "up", "--start", "0", "--end", "60", "--step", "1ms"}, "--step 1ms"},
		{"missing token file", []string{"replay", "-f", hpa, "--prometheus", "http://127.0.0.1:1", "--query", "up", "--start", "0", "--end", "60", "--bearer-token-file", filepath.Join(dir, "none")}, "--bearer-token-file"},
		{"tune two specs", []string{"tune", "-f", hpa, "-f", hpa, "--csv", csv}, "one -f spec"},
		{"tune bad target", []string{"tune", "-f", hpa, "--csv", csv, "--targets", "1.5"}, "targets[0] = 1.5"},
		{"tune bad tolerance", []string{"tune", "-f", hpa, "--csv", csv, "--tolerances", "0.1"}, "--tolerances[0]"},
		{"tune negative budget", []string{"tune", "-f", hpa, "--csv", csv, "--budget", "-1s"}, "--budget"},
		{"tune grid too big", []string{"tune", "-f", hpa, "--csv", csv, "--targets", "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9", "--scale-down-windows", "0s,1m,2m,3m,4m,5m,6m,7m,8m"}, "more than 512 candidates"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := execute(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %v repeats a credential", err)
			}
		})
	}
}

func TestParseCurve(t *testing.T) {
	tests := []struct {
		name, in string
		want     []autoscale.LoadPoint
		err      string
	}{
		{"rfc3339", "time,value\n2026-01-01T00:00:00Z,1\n2026-01-01T00:00:15Z,2.5\n", []autoscale.LoadPoint{{At: 0, Value: 1}, {At: 15 * time.Second, Value: 2.5}}, ""},
		{"unix seconds, spaces", "Time, Value\n1700000000, 3\n1700000060.5, 0\n", []autoscale.LoadPoint{{At: 0, Value: 3}, {At: 60500 * time.Millisecond, Value: 0}}, ""},
		{"offsets", "time,value\n0,1\n30,2\n", []autoscale.LoadPoint{{At: 0, Value: 1}, {At: 30 * time.Second, Value: 2}}, ""},
		{"byte order mark, CRLF", "\ufefftime,value\r\n0,1\r\n30,2\r\n", []autoscale.LoadPoint{{At: 0, Value: 1}, {At: 30 * time.Second, Value: 2}}, ""},
		{"byte order mark in a row", "time,value\n\ufeff0,1\n", nil, `line 2: time "\ufeff0"`},
		{"empty", "", nil, "csv: empty"},
		{"bad header", "t,v\n0,1\n", nil, `line 1: the header is "t","v"`},
		{"header only", "time,value\n", nil, "no rows"},
		{"three fields", "time,value\n0,1,2\n", nil, "wrong number of fields"},
		{"bad time", "time,value\nnoon,1\n", nil, `line 2: time "noon"`},
		{"mixed formats", "time,value\n0,1\n2026-01-01T00:00:00Z,2\n", nil, "line 3: time \"2026-01-01T00:00:00Z\" is not seconds"},
		{"not increasing", "time,value\n0,1\n0,2\n", nil, "line 3: time \"0\" is not after"},
		{"going back", "time,value\n60,1\n30,2\n", nil, "line 3"},
		{"negative", "time,value\n0,-1\n", nil, "line 2: value \"-1\""},
		{"NaN", "time,value\n0,NaN\n", nil, "line 2: value \"NaN\""},
		{"too long", "time,value\n0,1\n700000,1\n", nil, "more than 168h0m0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseCurve(strings.NewReader(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrInput) {
					t.Fatalf("error = %v, want ErrInput containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("point %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseCurveTooManyRows(t *testing.T) {
	var b strings.Builder
	b.WriteString("time,value\n")
	for i := range autoscale.MaxCurvePoints + 1 {
		b.WriteString(strconv.Itoa(i) + ",1\n")
	}
	_, err := ParseCurve(strings.NewReader(b.String()))
	if err == nil || !strings.Contains(err.Error(), "more than 100000 rows") {
		t.Fatalf("error = %v, want one about the row cap", err)
	}
}

// endless is a reader of one byte over and over, as /dev/zero is.
type endless byte

func (e endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(e)
	}
	return len(p), nil
}

// TestParseCurveEndlessInput feeds the CSV parser input that never ends:
// a header and then one row without a newline, and rows without end. It
// must stop at maxCurveBytes or the row cap with an error, not read on.
func TestParseCurveEndlessInput(t *testing.T) {
	for _, tt := range []struct {
		name string
		r    io.Reader
		want string
	}{
		{"one endless row", io.MultiReader(strings.NewReader("time,value\n0,"), endless('1')), "larger than 16 MiB"},
		{"one endless quoted field", io.MultiReader(strings.NewReader("time,value\n\""), endless('x')), "larger than 16 MiB"},
		{"rows without end", io.MultiReader(strings.NewReader("time,value\n"), endless('\n')), "larger than 16 MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseCurve(tt.r)
			if !errors.Is(err, ErrInput) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInput saying %q", err, tt.want)
			}
		})
	}
}

// TestBearerTokenFileBounded points --bearer-token-file at a file over
// the limit: the request fails naming it, without reading on.
func TestBearerTokenFileBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(big, bytes.Repeat([]byte("t"), maxTokenBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readToken(big); err == nil || !strings.Contains(err.Error(), "larger than 64 KiB") {
		t.Fatalf("error %v, want one naming the 64 KiB limit", err)
	}
	if tok, err := readToken("/dev/zero"); err == nil {
		t.Fatalf("read %d bytes of /dev/zero as a token", len(tok))
	}
}

// TestDocsReplayExample checks that docs/hpa.md shows what the replay
// example prints today.
func TestDocsReplayExample(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "hpa.md"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, trafficArgs("replay", "replay-hpa.yaml", "replay-hpa-fast.yaml")...)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !bytes.Contains(doc, []byte(line+"\n")) {
			t.Errorf("docs/hpa.md lacks the replay line %q", line)
		}
	}
}

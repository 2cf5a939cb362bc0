package loadgen

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSteps(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Step
		wantErr string
	}{
		{"three steps", "100:10s,400:20s,100:10s", []Step{{100, 10 * time.Second}, {400, 20 * time.Second}, {100, 10 * time.Second}}, ""},
		{"spaces and a pause", " 50 : 1m , 0:500ms", []Step{{50, time.Minute}, {0, 500 * time.Millisecond}}, ""},
		{"fractional rate", "0.5:4s", []Step{{0.5, 4 * time.Second}}, ""},
		{"empty", "", nil, "empty"},
		{"no colon", "100", nil, `step 1 "100": want RATE:DURATION`},
		{"bad rate", "100:1s,x:2s", nil, `step 2 "x:2s": rate "x"`},
		{"negative rate", "-1:1s", nil, "rate"},
		{"rate above the cap", "60000:1s", nil, "rate"},
		{"NaN rate", "NaN:1s", nil, "rate"},
		{"bad duration", "100:10", nil, `step 1 "100:10": duration`},
		{"zero duration", "100:0s", nil, "must be positive"},
		{"too long", "1:59m,1:2m", nil, "cap"},
		{"trailing comma", "1:1s,", nil, "step 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseSteps(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseSteps(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("step %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestParseHeader(t *testing.T) {
	tests := []struct {
		name, in, wantName, wantValue, wantErr string
	}{
		{"plain", "X-Balance-Key: abc", "X-Balance-Key", "abc", ""},
		{"canonicalised and trimmed", "content-type:application/json ", "Content-Type", "application/json", ""},
		{"value with colons", "Host: example.com:8080", "Host", "example.com:8080", ""},
		{"empty value", "X-Empty:", "X-Empty", "", ""},
		{"no colon", "X-Balance-Key abc", "", "", "want \"Name: value\""},
		{"empty name", ": v", "", "", "invalid name"},
		{"space in name", "X Key: v", "", "", "invalid name"},
		{"control in value", "X-Key: a\x00b", "", "", "its value holds a control character"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, v, err := ParseHeader(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseHeader(%q) error = %v, want %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || n != tc.wantName || v != tc.wantValue {
				t.Fatalf("ParseHeader(%q) = %q, %q, %v; want %q, %q", tc.in, n, v, err, tc.wantName, tc.wantValue)
			}
		})
	}
}

func TestValidateNamesTheField(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1/", Duration: time.Second}
	tests := []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"no URL", func(c *Config) { c.URL = "" }, "URL"},
		{"bad scheme", func(c *Config) { c.URL = "ftp://x/" }, "URL"},
		{"no host", func(c *Config) { c.URL = "http:///x" }, "URL"},
		{"unparsable URL", func(c *Config) { c.URL = "http://[::1" }, "URL"},
		{"unbounded", func(c *Config) { c.Duration = 0 }, "Duration"},
		{"too long", func(c *Config) { c.Duration = 2 * time.Hour }, "Duration"},
		{"too many", func(c *Config) { c.Count = MaxCount + 1 }, "Count"},
		{"rate above cap", func(c *Config) { c.Rate = MaxRate + 1 }, "Rate"},
		{"NaN rate", func(c *Config) { c.Rate = math.NaN() }, "Rate"},
		{"step without duration", func(c *Config) { c.Steps = []Step{{Rate: 1}} }, "Steps"},
		{"in flight above cap", func(c *Config) { c.MaxInFlight = MaxInFlightCap + 1 }, "MaxInFlight"},
		{"negative connections", func(c *Config) { c.Connections = -1 }, "Connections"},
		{"h2c over https", func(c *Config) { c.URL, c.H2C = "https://127.0.0.1/", true }, "H2C"},
		{"bad method", func(c *Config) { c.Method = "GE T" }, "Method"},
		{"bad header", func(c *Config) { c.Header = map[string][]string{"X Y": {"v"}} }, "Header"},
		{"keys without header", func(c *Config) { c.Keys = 3 }, "Keys"},
		{"tiny window", func(c *Config) { c.Window = time.Millisecond }, "Window"},
		{"too many windows", func(c *Config) { c.Duration, c.Window = time.Hour, 100*time.Millisecond }, "Window"},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, "Timeout"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("base config: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Field != tc.field || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want a ConfigError on %s", err, tc.field)
			}
		})
	}
}

func FuzzParseSteps(f *testing.F) {
	for _, s := range []string{"100:10s,400:20s,100:10s", "0:1s", "1e3:1m", " 5 : 2h ", "1:-1s", ",", "NaN:1s", "Inf:1s", "1:9223372036s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		steps, err := ParseSteps(s)
		if err != nil {
			return
		}
		var total time.Duration
		parts := make([]string, len(steps))
		for i, st := range steps {
			if math.IsNaN(st.Rate) || st.Rate < 0 || st.Rate > MaxRate || st.Duration <= 0 {
				t.Fatalf("ParseSteps(%q) accepted step %v", s, st)
			}
			total += st.Duration
			parts[i] = st.String()
		}
		if total > MaxDuration {
			t.Fatalf("ParseSteps(%q) accepted %v in total", s, total)
		}
		again, err := ParseSteps(strings.Join(parts, ","))
		if err != nil || len(again) != len(steps) {
			t.Fatalf("round trip of %q: %v, %v", s, again, err)
		}
		for i := range again {
			if again[i] != steps[i] {
				t.Fatalf("round trip of %q: step %d %v != %v", s, i, again[i], steps[i])
			}
		}
		c := Config{URL: "http://127.0.0.1/", Steps: steps}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseSteps(%q) gave steps Validate rejects: %v", s, err)
		}
	})
}

func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"X-Balance-Key: abc", "Host: a:1", "x:", ":", "a b: c", "K: \x7f", "K: \r\nInjected: 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, value, err := ParseHeader(s)
		if err != nil {
			return
		}
		c := Config{URL: "http://127.0.0.1/", Count: 1, Header: map[string][]string{name: {value}}}
		if err := c.Validate(); err != nil {
			t.Fatalf("ParseHeader(%q) = %q, %q, which Validate rejects: %v", s, name, value, err)
		}
		if strings.ContainsAny(name+value, "\r\n") {
			t.Fatalf("ParseHeader(%q) let a line break through", s)
		}
	})
}

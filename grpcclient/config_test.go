package grpcclient_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	gbalancer "google.golang.org/grpc/balancer"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/grpcclient"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  grpcclient.Config
		want string // substring of the error; "" for valid
	}{
		{name: "zero"},
		{name: "hash", cfg: grpcclient.Config{Policy: grpcclient.ConsistentHash}},
		{name: "unknown policy", cfg: grpcclient.Config{Policy: "round_robin"}, want: "Policy"},
		{name: "negative attempts", cfg: grpcclient.Config{MaxAttempts: -1}, want: "MaxAttempts"},
		{name: "negative backoff", cfg: grpcclient.Config{InitialBackoff: -time.Second}, want: "InitialBackoff"},
		{name: "too many tokens", cfg: grpcclient.Config{RetryMaxTokens: 1001}, want: "RetryMaxTokens"},
		{name: "negative per-try timeout", cfg: grpcclient.Config{PerTryTimeout: -1}, want: "PerTryTimeout"},
		{name: "negative keepalive", cfg: grpcclient.Config{KeepaliveTime: -1}, want: "KeepaliveTime"},
		{name: "negative dns interval", cfg: grpcclient.Config{DNSInterval: -1}, want: "DNSInterval"},
		{name: "negative ejection", cfg: grpcclient.Config{Ejection: balancer.Ejection{MaxPercent: -1}}, want: "MaxPercent"},
		{name: "negative slow start means none", cfg: grpcclient.Config{SlowStart: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestServiceConfig checks the service config's defaults, and that grpc's
// own parser and this package's policy parser accept it.
func TestServiceConfig(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    grpcclient.Config
		policy string
		check  func(t *testing.T, sc map[string]any)
	}{
		{name: "defaults", policy: grpcclient.PeakEWMA, check: func(t *testing.T, sc map[string]any) {
			rp := sc["methodConfig"].([]any)[0].(map[string]any)["retryPolicy"].(map[string]any)
			if rp["maxAttempts"] != 3.0 || rp["initialBackoff"] != "0.05s" || rp["maxBackoff"] != "1s" {
				t.Errorf("retry policy %v", rp)
			}
			if codes := rp["retryableStatusCodes"].([]any); len(codes) != 1 || codes[0] != "UNAVAILABLE" {
				t.Errorf("retryable codes %v, want UNAVAILABLE", codes)
			}
			th := sc["retryThrottling"].(map[string]any)
			if th["maxTokens"] != 100.0 || th["tokenRatio"] != 0.1 {
				t.Errorf("throttling %v", th)
			}
			if _, ok := sc["healthCheckConfig"]; !ok {
				t.Error("no healthCheckConfig")
			}
		}},
		{name: "hash without retries or health", policy: grpcclient.ConsistentHash,
			cfg: grpcclient.Config{Policy: grpcclient.ConsistentHash, MaxAttempts: 1, NoHealthCheck: true},
			check: func(t *testing.T, sc map[string]any) {
				for _, k := range []string{"methodConfig", "retryThrottling", "healthCheckConfig"} {
					if _, ok := sc[k]; ok {
						t.Errorf("%s present", k)
					}
				}
			}},
		{name: "settings", policy: grpcclient.PeakEWMA,
			cfg: grpcclient.Config{MaxAttempts: 5, InitialBackoff: 10 * time.Millisecond, MaxBackoff: time.Millisecond, SlowStart: time.Minute},
			check: func(t *testing.T, sc map[string]any) {
				rp := sc["methodConfig"].([]any)[0].(map[string]any)["retryPolicy"].(map[string]any)
				if rp["maxAttempts"] != 5.0 || rp["maxBackoff"] != "0.01s" {
					t.Errorf("retry policy %v (max backoff at least the initial)", rp)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, err := tc.cfg.ServiceConfig()
			if err != nil {
				t.Fatal(err)
			}
			var sc map[string]any
			if err := json.Unmarshal([]byte(js), &sc); err != nil {
				t.Fatal(err)
			}
			lb := sc["loadBalancingConfig"].([]any)[0].(map[string]any)
			raw, ok := lb[tc.policy]
			if !ok {
				t.Fatalf("loadBalancingConfig %v, want %s", lb, tc.policy)
			}
			b, _ := json.Marshal(raw)
			if _, err := gbalancer.Get(tc.policy).(gbalancer.ConfigParser).ParseConfig(b); err != nil {
				t.Errorf("policy config %s: %v", b, err)
			}
			tc.check(t, sc)
		})
	}
}

func TestParsePolicyConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		js   string
		ok   bool
	}{
		{name: "empty", js: `{}`, ok: true},
		{name: "all", js: `{"slowStart":"10s","decay":"5s","initialLatency":"2ms","loadFactor":1.5,"replicas":100,
			"ejection":{"consecutiveFailures":3,"timeouts":2,"baseTime":"1s","maxTime":"1m","maxPercent":30}}`, ok: true},
		{name: "unknown field", js: `{"slowStartMs":10}`},
		{name: "bad duration", js: `{"slowStart":"ten seconds"}`},
		{name: "negative", js: `{"slowStart":"-1s"}`},
		{name: "negative load factor", js: `{"loadFactor":-2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, name := range []string{grpcclient.PeakEWMA, grpcclient.ConsistentHash} {
				_, err := gbalancer.Get(name).(gbalancer.ConfigParser).ParseConfig([]byte(tc.js))
				if (err == nil) != tc.ok {
					t.Errorf("%s: ParseConfig(%s) = %v, want ok %v", name, tc.js, err, tc.ok)
				}
			}
		})
	}
}

func TestBalanceKeyIsTheHTTPHeader(t *testing.T) {
	if want := strings.ToLower(balancer.DefaultKeyHeader); grpcclient.BalanceKey != want {
		t.Errorf("BalanceKey %q, want %q", grpcclient.BalanceKey, want)
	}
}

// Package healthtest lets tests of a service assert on its health probes:
// fetch a probe's decoded report, or wait until a probe answers a given
// status.
package healthtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/health"
)

// T is the part of testing.TB the helpers use; *testing.T satisfies it.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// Timeout bounds Wait and each probe request.
const Timeout = 20 * time.Second

// Get probes url (for example "http://127.0.0.1:9090/readyz?verbose") on a
// fresh connection, as a kubelet does, and returns the status code and the
// decoded report. It fails the test if the probe cannot be reached or its
// body is not a health.Report.
func Get(t T, url string) (int, health.Report) {
	t.Helper()
	code, rep, err := get(url)
	if err != nil {
		t.Fatal(err)
	}
	return code, rep
}

// Wait polls url until it answers code, and returns that report. It fails
// the test after Timeout.
func Wait(t T, url string, code int) health.Report {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		got, rep, err := get(url)
		if err == nil && got == code {
			return rep
		}
		if time.Now().After(deadline) {
			t.Fatalf("healthtest: %s did not answer %d within %s (last: %d %+v, err %v)", url, code, Timeout, got, rep, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func get(url string) (int, health.Report, error) {
	var rep health.Report
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: Timeout}
	resp, err := c.Get(url)
	if err != nil {
		return 0, rep, fmt.Errorf("healthtest: probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, rep, fmt.Errorf("healthtest: probe %s: reading body: %w", url, err)
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return resp.StatusCode, rep, fmt.Errorf("healthtest: probe %s: body %q is not a health report: %w", url, body, err)
	}
	return resp.StatusCode, rep, nil
}

package podmetrics

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Target is one scrape target of a file_sd file: the pod's metrics
// address (host:port) and its labels (namespace, pod; __metrics_path__
// when not /metrics).
type Target struct {
	Address string
	Labels  map[string]string
}

type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels,omitempty"`
}

// WriteTargets writes targets as a Prometheus file_sd JSON file at path,
// through a temporary file renamed over it, so Prometheus, which watches
// the file, never reads half of it.
func WriteTargets(path string, targets []Target) error {
	groups := make([]targetGroup, 0, len(targets))
	for i, t := range targets {
		if t.Address == "" {
			return fmt.Errorf("podmetrics: file_sd target %d has no address", i)
		}
		groups = append(groups, targetGroup{Targets: []string{t.Address}, Labels: t.Labels})
	}
	data, err := json.MarshalIndent(groups, "", "  ")
	if err != nil {
		return fmt.Errorf("podmetrics: encode file_sd targets: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("podmetrics: write file_sd targets: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(append(data, '\n'))
	cerr := f.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		// Prometheus runs as another user under some set-ups.
		werr = os.Chmod(tmp, 0o644)
	}
	if werr == nil {
		werr = os.Rename(tmp, path)
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("podmetrics: write file_sd targets %s: %w", path, werr)
	}
	return nil
}

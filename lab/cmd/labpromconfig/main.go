// Command labpromconfig writes the lab's Prometheus configuration from the
// deploy kit's own (deploy/monitoring/prometheus.yml), so that the lab
// scrapes exactly what a cluster running the kit would. Prometheus runs on
// the lab's node as a host process, not in a pod, so its Kubernetes
// discovery cannot use in-cluster credentials: every kubernetes_sd_configs
// entry gets the lab's kubeconfig. The scrape and evaluation intervals are
// shortened so that the lab's autoscaling tests see load within seconds,
// and rule files are made absolute. Nothing else changes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

func main() {
	in := flag.String("in", "", "the deploy kit's prometheus.yml (required)")
	out := flag.String("o", "", "file to write (required)")
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig for Kubernetes discovery (required)")
	interval := flag.String("interval", "5s", "scrape and evaluation interval")
	flag.Parse()
	if *in == "" || *out == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "labpromconfig: -in, -o and -kubeconfig are required")
		os.Exit(2)
	}
	if err := run(*in, *out, *kubeconfig, *interval); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(in, out, kubeconfig, interval string) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return fmt.Errorf("labpromconfig: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("labpromconfig: %s: %w", in, err)
	}
	global, _ := cfg["global"].(map[string]any)
	if global == nil {
		global = map[string]any{}
		cfg["global"] = global
	}
	global["scrape_interval"] = interval
	global["evaluation_interval"] = interval
	// A scrape timeout above the interval is an error in Prometheus.
	global["scrape_timeout"] = interval

	if rules, ok := cfg["rule_files"].([]any); ok {
		for i, r := range rules {
			if s, ok := r.(string); ok && !filepath.IsAbs(s) {
				rules[i] = filepath.Join(filepath.Dir(in), s)
			}
		}
	}

	scrapes, _ := cfg["scrape_configs"].([]any)
	sds := 0
	for _, s := range scrapes {
		job, _ := s.(map[string]any)
		list, _ := job["kubernetes_sd_configs"].([]any)
		for _, sd := range list {
			if m, ok := sd.(map[string]any); ok {
				m["kubeconfig_file"] = kubeconfig
				sds++
			}
		}
		// Job-level intervals would override the lab's.
		delete(job, "scrape_interval")
		delete(job, "scrape_timeout")
	}
	if sds == 0 {
		return errors.New("labpromconfig: " + in + " has no kubernetes_sd_configs: the lab scrapes what Kubernetes discovery finds")
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("labpromconfig: %w", err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return fmt.Errorf("labpromconfig: %w", err)
	}
	return nil
}

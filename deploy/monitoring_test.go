package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/model/relabel"
	yamlv2 "go.yaml.in/yaml/v2"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/lint"
)

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found; run scripts/deps.sh (Debian package prometheus)")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestPromtoolRules(t *testing.T) {
	out := promtool(t, "check", "rules", filepath.Join("monitoring", "shoal-rules.yml"))
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules: %s", out)
	}
	// The unit tests prove the alerts fire on the series they are for.
	promtool(t, "test", "rules", filepath.Join("monitoring", "shoal-rules_test.yml"))
}

// TestPromtoolConfig checks the scrape configuration. Debian's promtool is
// built without Kubernetes discovery and cannot read kubernetes_sd_configs,
// so those blocks and every job's relabelling are decoded strictly with
// Prometheus' own types (the code of the Prometheus v3 the lab runs, which
// also sets their defaults and validates them); then they are replaced by a
// static target and promtool checks the rest.
func TestPromtoolConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("monitoring", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	scrapes, _ := cfg["scrape_configs"].([]any)
	if len(scrapes) == 0 {
		t.Fatal("no scrape_configs")
	}
	var sawAdmin bool
	for _, s := range scrapes {
		sc := s.(map[string]any)
		job := sc["job_name"]
		var relabels []*relabel.Config
		if err := strictPrometheusYAML(sc["relabel_configs"], &relabels); err != nil {
			t.Fatalf("job %v: relabel_configs: %v", job, err)
		}
		if _, ok := sc["kubernetes_sd_configs"]; !ok {
			continue
		}
		sds, err := kubernetesSDConfigs(sc["kubernetes_sd_configs"])
		if err != nil {
			t.Fatalf("job %v: %v", job, err)
		}
		delete(sc, "kubernetes_sd_configs")
		sc["static_configs"] = []any{map[string]any{"targets": []any{"127.0.0.1:9090"}}}
		if job == "shoal-admin" {
			sawAdmin = sds[0].Role == kubernetes.RolePod && keepsPortNamed(relabels, "admin")
		}
	}
	if !sawAdmin {
		t.Fatal("job shoal-admin should discover pods and keep the port named admin")
	}
	dir := t.TempDir()
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile(filepath.Join("monitoring", "shoal-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"prometheus.yml": out, "shoal-rules.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	promtool(t, "check", "config", filepath.Join(dir, "prometheus.yml"))
}

// strictPrometheusYAML decodes v, a block of the configuration, into out
// the way Prometheus reads its configuration: YAML, unknown fields refused,
// the types' own defaults and checks applied.
func strictPrometheusYAML(v, out any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return yamlv2.UnmarshalStrict(b, out)
}

// kubernetesSDConfigs decodes a kubernetes_sd_configs block with
// Prometheus' own type.
func kubernetesSDConfigs(v any) ([]*kubernetes.SDConfig, error) {
	var sds []*kubernetes.SDConfig
	if err := strictPrometheusYAML(v, &sds); err != nil {
		return nil, fmt.Errorf("kubernetes_sd_configs: %w", err)
	}
	if len(sds) == 0 {
		return nil, errors.New("kubernetes_sd_configs: empty")
	}
	return sds, nil
}

// keepsPortNamed reports whether the relabelling keeps only the container
// port with the given name.
func keepsPortNamed(rcs []*relabel.Config, name string) bool {
	for _, rc := range rcs {
		if rc.Action == relabel.Keep && slices.Contains(rc.SourceLabels, "__meta_kubernetes_pod_container_port_name") &&
			rc.Regex.MatchString(name) && !rc.Regex.MatchString(name+"x") {
			return true
		}
	}
	return false
}

// TestKubernetesSDConfigsIsStrict proves the check above catches a mistake
// in a discovery block: Prometheus' type refuses each of these.
func TestKubernetesSDConfigsIsStrict(t *testing.T) {
	tests := []struct {
		name string
		sd   any
		want string
	}{
		{"unknown field", []any{map[string]any{"role": "pod", "namespace": []any{"shoal"}}}, "field namespace not found"},
		{"unknown role", []any{map[string]any{"role": "pods"}}, "unknown Kubernetes SD role"},
		{"no role", []any{map[string]any{}}, "role missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kubernetesSDConfigs(tt.sd)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("kubernetesSDConfigs(%v) = %v, want an error containing %q", tt.sd, err, tt.want)
			}
		})
	}
}

type adapterConfig struct {
	Rules []adapterRule `json:"rules"`
}

type adapterRule struct {
	SeriesQuery string `json:"seriesQuery"`
	Resources   struct {
		Overrides map[string]struct {
			Resource string `json:"resource"`
		} `json:"overrides"`
	} `json:"resources"`
	Name struct {
		Matches string `json:"matches"`
		As      string `json:"as"`
	} `json:"name"`
	MetricsQuery string `json:"metricsQuery"`
}

// TestAdapterServesHPAMetric checks that the prometheus-adapter rules name
// the Pods metric the gallery HPA asks for and that their queries, filled
// in as the adapter fills them, are valid PromQL.
func TestAdapterServesHPAMetric(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("monitoring", "prometheus-adapter.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg adapterConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		t.Fatal(err)
	}
	seriesName := regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	var exprs []string
	var names []string
	for _, r := range cfg.Rules {
		series := seriesName.FindString(r.SeriesQuery)
		re := regexp.MustCompile(r.Name.Matches)
		names = append(names, re.ReplaceAllString(series, r.Name.As)) // the adapter expands with Go regexp too
		if r.Resources.Overrides["pod"].Resource != "pod" || r.Resources.Overrides["namespace"].Resource != "namespace" {
			t.Errorf("rule %s: pod and namespace labels must map to their resources", series)
		}
		q := strings.NewReplacer("<<.Series>>", series, "<<.LabelMatchers>>", `namespace="shoal",pod=~"gallery-.*"`,
			"<<.GroupBy>>", "pod").Replace(r.MetricsQuery)
		exprs = append(exprs, q)
	}
	if !slices.Contains(names, "http_requests_per_second") {
		t.Fatalf("adapter exposes %v, want http_requests_per_second for the gallery HPA", names)
	}
	checkPromQL(t, exprs)
}

// checkPromQL has promtool parse expressions by wrapping them as
// recording rules.
func checkPromQL(t *testing.T, exprs []string) {
	t.Helper()
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for i, e := range exprs {
		rules = append(rules, rule{Record: "check:expr" + string(rune('a'+i%26)), Expr: e})
	}
	out, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "check", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "exprs.yml")
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", file)
}

func TestGrafanaDashboard(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("monitoring", "grafana", "shoal.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Title  string `json:"title"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || len(dash.Panels) == 0 {
		t.Fatal("dashboard needs a uid, a title and panels")
	}
	vars := strings.NewReplacer("$__rate_interval", "1m", "$namespace", "shoal", "$app", "gallery")
	var exprs []string
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d repeated", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, vars.Replace(tg.Expr))
		}
	}
	checkPromQL(t, exprs)
}

func TestMonitoringKustomization(t *testing.T) {
	objs := objects(t, "monitoring")
	if len(objs) != 3 {
		t.Fatalf("monitoring builds %d objects, want 3 ConfigMaps", len(objs))
	}
	rep, err := (&lint.Linter{}).Lint("monitoring")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 0 {
		t.Fatalf("findings: %v", rep.Findings)
	}
	// The ServiceMonitor is a CRD kind: lint notes it and checks nothing.
	rep, err = (&lint.Linter{}).Lint(filepath.Join("monitoring", "servicemonitor.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Count(lint.Note) != 1 || len(rep.Findings) != 1 {
		t.Fatalf("servicemonitor: %v, want one note", rep.Findings)
	}
}

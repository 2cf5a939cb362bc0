//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestFieldsLintAgreesWithServerDryRun applies each manifest of
// lint/testdata/k8s137 (fields added in Kubernetes v1.35-v1.37, older
// gated ones, Gateway API kinds, and invalid variants) with a server-side
// dry run and wants `shoal lint` to agree on every file: the server
// refuses it exactly when lint reports a finding of a rule the server
// enforces, naming the same field; and of what it accepts, the server
// drops exactly the fields lint reports as needing a feature gate (SH035).
// The gates those findings name must be off on the server, as its
// kubernetes_feature_enabled metric says, at the stage lint names.
func TestFieldsLintAgreesWithServerDryRun(t *testing.T) {
	l := newLab(t)
	installGatewayAPI(t, l)
	shoal := buildShoal(t, l)
	ns := l.namespace(t, "fields")
	files, err := filepath.Glob(filepath.Join(l.repo, "lint", "testdata", "k8s137", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in lint/testdata/k8s137 (%v)", err)
	}
	gates := map[string]string{} // gate -> stage, from SH035 messages
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".yaml"), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			manifest, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out, serverErr := l.kubectl(ctx, manifest, "apply", "-n", ns, "--dry-run=server", "-o", "json", "-f", "-")
			all := lintFindings(ctx, t, shoal, f)
			lintErrs := serverFindings(all)
			t.Logf("server: %v; lint: %v", serverErr, all)
			if (serverErr == nil) != (len(lintErrs) == 0) {
				t.Fatalf("disagree: server err %v, shoal lint %v", serverErr, lintErrs)
			}
			if serverErr != nil {
				for _, fe := range lintErrs {
					if err := sameField(fe, serverErr.Error()); err != nil {
						t.Error(err)
					}
				}
				return
			}
			for _, fe := range all {
				if fe.Rule != "SH035" {
					continue
				}
				m := gateRE.FindStringSubmatch(fe.Message)
				if m == nil {
					t.Errorf("SH035 finding names no gate: %s", fe)
					continue
				}
				gates[m[1]] = strings.ToUpper(m[2])
			}
			checkDropped(t, l, manifest, out, all)
		})
	}
	t.Run("feature gates", func(t *testing.T) {
		if len(gates) == 0 {
			t.Fatal("no SH035 finding named a gate")
		}
		server := serverFeatureGates(t, l)
		for gate, stage := range gates {
			s, ok := server[gate]
			switch {
			case !ok:
				t.Errorf("the API server does not know feature gate %s", gate)
			case s.enabled || s.stage != stage:
				t.Errorf("feature gate %s: server stage %s enabled %v; lint says %s and off", gate, s.stage, s.enabled, stage)
			}
		}
	})
}

var gateRE = regexp.MustCompile(`needs feature gate (\w+) \((\w+), off by default`)

// fieldRE finds the field a lint error names: `unknown field "a.b[0].c"`
// or a message that starts with the field path.
var fieldRE = regexp.MustCompile(`^(?:unknown field "([^"]+)"|([a-zA-Z][\w.\[\]]*): )`)

// sameField checks that the server's error names the field (its last path
// element) that lint's finding names.
func sameField(f lintFinding, serverErr string) error {
	m := fieldRE.FindStringSubmatch(f.Message)
	if m == nil {
		return fmt.Errorf("lint's finding names no field: %s", f)
	}
	path := m[1] + m[2]
	leaf := path[strings.LastIndex(path, ".")+1:]
	if i := strings.IndexByte(leaf, '['); i >= 0 {
		leaf = leaf[:i]
	}
	if strings.Contains(serverErr, leaf) {
		return nil
	}
	// A value that decodes itself (a quantity) makes the server name only
	// the reason; lint adds the field to the same reason.
	if _, reason, ok := strings.Cut(f.Message, path+": "); ok && strings.Contains(serverErr, reason) {
		return nil
	}
	return fmt.Errorf("lint names field %s, the server's error does not: %s", path, serverErr)
}

// checkDropped compares the objects of manifest with the server's answer
// to applying them (out: one object or a List) and wants the fields the
// server dropped to be exactly those lint's SH035 findings name. A
// StatefulSet keeps its volumeClaimTemplates as written: the server drops
// a gated field of a claim when the controller creates the claim, so
// such a field counts as dropped when a dry run of the template as a
// PersistentVolumeClaim drops it.
func checkDropped(t *testing.T, l *lab, manifest []byte, out string, findings []lintFinding) {
	t.Helper()
	applied := map[string]any{} // Kind/name -> object as the server returned it
	var answer struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &answer); err != nil {
		t.Fatalf("server answer: %v\n%s", err, out)
	}
	items := answer.Items
	if answer.Kind != "List" {
		items = []json.RawMessage{json.RawMessage(out)}
	}
	for _, it := range items {
		var head object
		var obj any
		if err := json.Unmarshal(it, &head); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(it, &obj); err != nil {
			t.Fatal(err)
		}
		applied[head.Kind+"/"+head.Metadata.Name] = obj
	}
	var dropped, warned []string
	for _, doc := range splitYAML(manifest) {
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatal(err)
		}
		var head object
		var in any
		if err := json.Unmarshal(js, &head); err != nil || json.Unmarshal(js, &in) != nil || head.Kind == "" {
			continue
		}
		id := head.Kind + "/" + head.Metadata.Name
		got, ok := applied[id]
		if !ok {
			t.Errorf("the server's answer lacks %s", id)
			continue
		}
		var ds []string
		droppedFields(in, got, "", &ds)
		for _, d := range ds {
			dropped = append(dropped, id+" "+d)
		}
	}
	for _, f := range findings {
		if f.Rule != "SH035" {
			continue
		}
		id := objectName(f.Object)
		path, _, _ := strings.Cut(f.Message, " ")
		warned = append(warned, id+" "+path)
		if m := claimFieldRE.FindStringSubmatch(path); m != nil && applied[id] != nil {
			if claimDrops(t, l, applied[id], m[1], m[2]) {
				dropped = append(dropped, id+" "+path)
			}
		}
	}
	// The server may drop the object around a gated field (a claim's whole
	// dataSourceRef for its namespace): that counts for the field.
	for i, d := range dropped {
		if j := slices.IndexFunc(warned, func(w string) bool { return under(w, d) }); j >= 0 {
			dropped[i] = warned[j]
		}
	}
	dropped = slices.Compact(slices.Sorted(slices.Values(dropped)))
	sort.Strings(warned)
	if !slices.Equal(dropped, warned) {
		t.Errorf("the server dropped\n\t%s\nshoal lint reports SH035 for\n\t%s", strings.Join(dropped, "\n\t"), strings.Join(warned, "\n\t"))
	}
}

var claimFieldRE = regexp.MustCompile(`^spec\.volumeClaimTemplates\[(\d+)\]\.(.+)$`)

// claimDrops dry-runs the index'th volumeClaimTemplate of the StatefulSet
// sts (as the server returned it) as a PersistentVolumeClaim and reports
// whether the server drops the field at path of it.
func claimDrops(t *testing.T, l *lab, sts any, index, path string) bool {
	t.Helper()
	var s struct {
		Metadata struct {
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Spec struct {
			VolumeClaimTemplates []map[string]any `json:"volumeClaimTemplates"`
		} `json:"spec"`
	}
	js, _ := json.Marshal(sts)
	if err := json.Unmarshal(js, &s); err != nil {
		t.Fatal(err)
	}
	i, err := strconv.Atoi(index)
	if err != nil || i >= len(s.Spec.VolumeClaimTemplates) {
		t.Fatalf("the server's StatefulSet has no volumeClaimTemplates[%d]", i)
	}
	claim := s.Spec.VolumeClaimTemplates[i]
	claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
	delete(claim, "status")
	in, _ := json.Marshal(claim)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.kubectl(ctx, in, "apply", "-n", s.Metadata.Namespace, "--dry-run=server", "-o", "json", "-f", "-")
	if err != nil {
		t.Fatalf("dry run of volumeClaimTemplates[%d] as a claim: %v", i, err)
	}
	var got any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	var dropped []string
	droppedFields(claim, got, "", &dropped)
	return slices.ContainsFunc(dropped, func(d string) bool { return path == d || under(path, d) })
}

// under reports whether path lies below the field parent: "a.b.c" and
// "a.b[0]" lie below "a.b".
func under(path, parent string) bool {
	return strings.HasPrefix(path, parent+".") || strings.HasPrefix(path, parent+"[")
}

// objectName turns lint's Kind/namespace/name into Kind/name.
func objectName(id string) string {
	parts := strings.Split(id, "/")
	return parts[0] + "/" + parts[len(parts)-1]
}

// splitYAML cuts a YAML stream at its "---" lines.
func splitYAML(data []byte) [][]byte {
	var docs [][]byte
	var cur []string
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "---" {
			docs = append(docs, []byte(strings.Join(cur, "\n")))
			cur = nil
			continue
		}
		cur = append(cur, sc.Text())
	}
	return append(docs, []byte(strings.Join(cur, "\n")))
}

// droppedFields appends the path of every field of in that out lacks.
// Empty values are skipped (the server omits them), and so is status,
// which create ignores.
func droppedFields(in, out any, path string, dst *[]string) {
	switch in := in.(type) {
	case map[string]any:
		o, _ := out.(map[string]any)
		keys := make([]string, 0, len(in))
		for k := range in {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := in[k]
			if empty(v) || (path == "" && k == "status") {
				continue
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			ov, ok := o[k]
			if !ok {
				*dst = append(*dst, p)
				continue
			}
			droppedFields(v, ov, p, dst)
		}
	case []any:
		o, _ := out.([]any)
		for i, v := range in {
			p := fmt.Sprintf("%s[%d]", path, i)
			if i >= len(o) {
				*dst = append(*dst, p)
				continue
			}
			droppedFields(v, o[i], p, dst)
		}
	}
}

// empty reports whether v may be missing from the server's answer without
// having been dropped: null, {}, [] and the zero values omitempty leaves
// out (false, 0, "").
func empty(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return !v
	case float64:
		return v == 0
	case string:
		return v == ""
	case map[string]any:
		return len(v) == 0
	case []any:
		return len(v) == 0
	}
	return false
}

type featureState struct {
	stage   string
	enabled bool
}

// featureLineRE matches kubernetes_feature_enabled{name="X",stage="ALPHA"} 0.
var featureLineRE = regexp.MustCompile(`^kubernetes_feature_enabled\{([^}]*)\} (\d)`)
var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// serverFeatureGates reads the API server's feature gates from its
// kubernetes_feature_enabled metric; GA gates have an empty stage there.
func serverFeatureGates(t *testing.T, l *lab) map[string]featureState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := l.kubectl(ctx, nil, "get", "--raw", "/metrics")
	if err != nil {
		t.Fatalf("API server metrics: %v", err)
	}
	gates := map[string]featureState{}
	for _, line := range strings.Split(out, "\n") {
		m := featureLineRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := map[string]string{}
		for _, lm := range labelRE.FindAllStringSubmatch(m[1], -1) {
			labels[lm[1]] = lm[2]
		}
		stage := labels["stage"]
		if stage == "" {
			stage = "GA"
		}
		gates[labels["name"]] = featureState{stage: stage, enabled: m[2] == "1"}
	}
	if len(gates) == 0 {
		t.Fatal("the API server's metrics have no kubernetes_feature_enabled")
	}
	return gates
}

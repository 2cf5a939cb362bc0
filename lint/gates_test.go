package lint

import (
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

// lintedKinds are the kinds whose spec the gated-field table must cover.
var lintedKinds = []any{
	corev1.Pod{}, corev1.PodTemplate{}, corev1.ReplicationController{}, corev1.Service{},
	appsv1.Deployment{}, appsv1.StatefulSet{}, appsv1.DaemonSet{}, appsv1.ReplicaSet{},
	batchv1.Job{}, batchv1.CronJob{},
	autoscalingv2.HorizontalPodAutoscaler{}, policyv1.PodDisruptionBudget{},
	networkingv1.NetworkPolicy{}, networkingv1.Ingress{}, discoveryv1.EndpointSlice{},
}

var featureGateTagRE = regexp.MustCompile(`^//\s*\+featureGate=(\w+)`)

// TestGatedFieldsMatchAPI reads the k8s.io/api module go.mod requires and
// wants gatedFields to hold exactly the fields marked +featureGate in the
// types the linted kinds reach outside their status (and the status of
// the objects they embed, as a StatefulSet's volumeClaimTemplates), each with a
// gate featureGates knows: a new k8s.io/api brings its new gates here.
func TestGatedFieldsMatchAPI(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "k8s.io/api").Output()
	if err != nil {
		t.Fatalf("go list -m k8s.io/api: %v", err)
	}
	modDir := strings.TrimSpace(string(out))
	if !strings.HasSuffix(modDir, "@v0"+strings.TrimPrefix(KubernetesVersion, "v1")) {
		t.Fatalf("k8s.io/api in %s is not the module of Kubernetes %s", modDir, KubernetesVersion)
	}
	types := map[reflect.Type]bool{}
	var reach func(t reflect.Type)
	reach = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || !strings.HasPrefix(t.PkgPath(), "k8s.io/api/") || types[t] {
			return
		}
		types[t] = true
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Name == "Status" && strings.HasSuffix(f.Type.Name(), "Status") {
				continue
			}
			reach(f.Type)
		}
	}
	for _, k := range lintedKinds {
		reach(reflect.TypeOf(k))
	}
	parsed := map[string]map[string]*ast.StructType{} // package dir -> type name -> struct
	structOf := func(typ reflect.Type) *ast.StructType {
		dir := filepath.Join(modDir, strings.TrimPrefix(typ.PkgPath(), "k8s.io/api/"))
		if parsed[dir] == nil {
			parsed[dir] = map[string]*ast.StructType{}
			files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
			for _, name := range files {
				if strings.HasSuffix(name, "_test.go") || strings.Contains(filepath.Base(name), "generated") {
					continue
				}
				f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ParseComments)
				if err != nil {
					t.Fatal(err)
				}
				ast.Inspect(f, func(n ast.Node) bool {
					if ts, ok := n.(*ast.TypeSpec); ok {
						if st, ok := ts.Type.(*ast.StructType); ok {
							parsed[dir][ts.Name.Name] = st
						}
					}
					return true
				})
			}
		}
		return parsed[dir][typ.Name()]
	}
	var want []string
	for typ := range types {
		st := structOf(typ)
		if st == nil {
			t.Fatalf("no source for %s", apiTypeName(typ))
		}
		for _, f := range st.Fields.List {
			if f.Tag == nil || f.Doc == nil {
				continue
			}
			name, _, _ := strings.Cut(reflect.StructTag(strings.Trim(f.Tag.Value, "`")).Get("json"), ",")
			for _, c := range f.Doc.List {
				if m := featureGateTagRE.FindStringSubmatch(c.Text); m != nil {
					want = append(want, apiTypeName(typ)+"."+name+" "+m[1])
				}
			}
		}
	}
	var got []string
	for _, f := range gatedFields {
		got = append(got, f.Type+"."+f.Field+" "+f.Gate)
		if _, ok := featureGate(f.Gate); !ok {
			t.Errorf("%s.%s: gate %s is not in featureGates", f.Type, f.Field, f.Gate)
		}
		if f.typ.Kind() != reflect.Struct {
			t.Errorf("%s is not a struct", f.Type)
		} else if _, ok := f.typ.FieldByNameFunc(func(n string) bool {
			sf, _ := f.typ.FieldByName(n)
			name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
			return name == f.Field
		}); !ok {
			t.Errorf("%s has no field %q", f.Type, f.Field)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("gatedFields:\n%s\nk8s.io/api:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, g := range featureGates {
		if !slices.ContainsFunc(gatedFields, func(f GatedField) bool { return f.Gate == g.Name }) {
			t.Errorf("feature gate %s guards no field in gatedFields", g.Name)
		}
		if !slices.Contains([]string{"ALPHA", "BETA", "GA"}, g.Stage) || (g.Stage == "ALPHA" && g.Default) {
			t.Errorf("feature gate %s: stage %q default %v", g.Name, g.Stage, g.Default)
		}
	}
}

func TestFeatureGateFindings(t *testing.T) {
	const pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nSPEC\n"
	tests := []struct {
		name   string
		spec   string
		ignore bool     // annotate the Pod with lint-ignore SH035
		want   []string // "line path gate"
	}{
		{name: "alpha field on a container probe", spec: `spec:
  containers:
    - name: web
      image: web
      readinessProbe:
        httpGet: {port: 8080, protocol: HTTP2}`,
			want: []string{"10 spec.containers[0].readinessProbe.httpGet.protocol H2CContainerProbe"}},
		{name: "alpha fields of an ephemeral container, inline", spec: `spec:
  containers: [{name: web, image: web}]
  ephemeralContainers:
    - name: debug
      image: busybox
      volumeMounts: [{name: v, mountPath: /v, bindMountOptions: [noexec]}]`,
			want: []string{"10 spec.ephemeralContainers[0].volumeMounts[0].bindMountOptions VolumeBindMountOptions"}},
		{name: "two in one list", spec: `spec:
  containers: [{name: web, image: web}]
  volumes:
    - name: a
      emptyDir: {mode: 448}
    - name: b
      secret: {secretName: b, defaultUser: 1000, items: [{key: k, path: k, user: 1000}]}`,
			want: []string{
				"9 spec.volumes[0].emptyDir.mode EmptyDirVolumeMode",
				"11 spec.volumes[1].secret.defaultUser AtomicWriteVolumeUserFields",
				"11 spec.volumes[1].secret.items[0].user AtomicWriteVolumeUserFields",
			}},
		{name: "zero is set", spec: `spec:
  containers: [{name: web, image: web}]
  volumes: [{name: a, emptyDir: {mode: 0}}]`,
			want: []string{"7 spec.volumes[0].emptyDir.mode EmptyDirVolumeMode"}},
		{name: "empty list is not", spec: `spec:
  containers: [{name: web, image: web}]
  evictionResponders: []`},
		{name: "default-on gates are served", spec: `spec:
  hostnameOverride: web
  resources: {requests: {cpu: 100m}}
  containers:
    - name: web
      image: web
      resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]`},
		{name: "status is not applied", spec: `spec:
  containers: [{name: web, image: web}]
status:
  resources: {requests: {cpu: 100m}}`},
		{name: "ignored", ignore: true, spec: `spec:
  schedulingGroup: {podGroupName: g}
  containers: [{name: web, image: web}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := strings.Replace(pod, "SPEC", tt.spec, 1)
			if tt.ignore {
				in = strings.Replace(in, "  name: web\n", "  name: web\n  annotations: {shoal.dev/lint-ignore: SH035}\n", 1)
			}
			rep := (&Linter{Only: []string{IDInvalidDocument, IDFieldNeedsFeatureGate}}).LintBytes("in.yaml", []byte(in))
			var got []string
			for _, f := range rep.Findings {
				if f.Rule == IDInvalidDocument {
					t.Fatalf("input does not decode: %s", f)
				}
				path, rest, _ := strings.Cut(f.Message, " needs feature gate ")
				gate, _, _ := strings.Cut(rest, " ")
				got = append(got, strings.Join([]string{itoa(f.Line), path, gate}, " "))
				if f.Severity != Warning || !strings.Contains(f.Message, KubernetesVersion) {
					t.Errorf("finding %s: want a warning naming %s", f, KubernetesVersion)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestK8s137Golden lints the manifests of fields added in Kubernetes
// v1.35-v1.37 and the Gateway API kinds, each file on its own as the lab's
// TestFieldsLintAgreesWithServerDryRun applies them, and compares the
// verdicts of the rules the API server has a say in with the golden files
// (-update rewrites them).
func TestK8s137Golden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "k8s137", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures (%v)", err)
	}
	l := &Linter{Only: []string{IDInvalidDocument, IDUnknownKind, IDInvalidSpec, IDFieldNeedsFeatureGate}}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rep, err := l.Lint(f)
			if err != nil {
				t.Fatal(err)
			}
			invalid := strings.Contains(filepath.Base(f), "invalid")
			if errs := rep.Count(Error); (errs > 0) != invalid {
				t.Errorf("%d errors; the file is meant to be %s", errs, map[bool]string{true: "invalid", false: "valid"}[invalid])
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")+".golden", buf.Bytes(), *update)
		})
	}
}

func TestGatedFieldsExported(t *testing.T) {
	fs := GatedFields()
	if len(fs) != len(gatedFields) || fs[0].typ != nil {
		t.Fatalf("GatedFields() = %d fields, want %d without reflect types", len(fs), len(gatedFields))
	}
	fs[0].Gate = "changed"
	gs := FeatureGates()
	gs[0].Name = "changed"
	if gatedFields[0].Gate == "changed" || featureGates[0].Name == "changed" {
		t.Fatal("callers can change the linter's tables")
	}
}

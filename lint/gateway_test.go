package lint

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

var update = flag.Bool("update", false, "rewrite gatewayapi_fields.json from the Gateway API CRDs in the module cache")

// TestGatewayFieldsMatchCRDs checks that the embedded field trees are those
// of the standard-channel CRDs of the module go.mod requires.
func TestGatewayFieldsMatchCRDs(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/gateway-api: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	files, err := filepath.Glob(filepath.Join(dir, "gateway.networking.k8s.io_*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s (%v)", dir, err)
	}
	var crds [][]byte
	for _, f := range files {
		y, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		crds = append(crds, js)
	}
	trees, err := crdFieldTrees(crds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(trees, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile("gatewayapi_fields.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(got, gatewayFieldsJSON) {
		t.Fatalf("gatewayapi_fields.json is not the field tree of %s; run go test ./lint -run TestGatewayFieldsMatchCRDs -update", dir)
	}
	if !strings.Contains(dir, GatewayAPIVersion) {
		t.Fatalf("GatewayAPIVersion %s is not the version in %s", GatewayAPIVersion, dir)
	}
}

// TestGatewayGolden lints the Gateway API fixtures and compares the text
// report with its golden file (-update rewrites it).
func TestGatewayGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "gateway", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rep, err := (&Linter{}).Lint(f)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := rep.WriteText(&buf); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, strings.TrimSuffix(f, ".yaml")+".golden", buf.Bytes(), *update)
		})
	}
}

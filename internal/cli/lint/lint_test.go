package lint

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/internal/testkit/golden"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// TestGoldenReports checks each input's report in each format: app.yaml
// holds mistakes of every kind, grpc.yaml the gRPC ones (SH022-SH024).
func TestGoldenReports(t *testing.T) {
	for _, input := range []string{"app", "grpc"} {
		for _, format := range []string{"text", "json", "sarif"} {
			t.Run(input+"/"+format, func(t *testing.T) {
				got, err := run(t, "-o", format, "testdata/"+input+".yaml")
				var fe *FindingsError
				if !errors.As(err, &fe) || fe.ExitCode() != 1 {
					t.Fatalf("err = %v, want findings with exit code 1", err)
				}
				golden.Check(t, filepath.Join("testdata", "golden", input+"."+format), []byte(got), *update)
				if format != "text" && !json.Valid([]byte(got)) {
					t.Fatal("output is not valid JSON")
				}
			})
		}
	}
}

func TestSARIFShape(t *testing.T) {
	got, _ := run(t, "-o", "sarif", "testdata/app.yaml")
	var log struct {
		Version string `json:"version"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Rules []struct{ ID string } `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID    string `json:"ruleId"`
				RuleIndex int    `json:"ruleIndex"`
				Level     string `json:"level"`
				Locations []struct {
					Physical struct {
						Artifact struct{ URI string } `json:"artifactLocation"`
						Region   *struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(got), &log); err != nil {
		t.Fatal(err)
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) == 0 {
		t.Fatalf("unexpected SARIF: %s", got)
	}
	rules := log.Runs[0].Tool.Driver.Rules
	for _, r := range log.Runs[0].Results {
		if rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %s points at rule %s", r.RuleID, rules[r.RuleIndex].ID)
		}
		loc := r.Locations[0].Physical
		if loc.Artifact.URI != "testdata/app.yaml" || loc.Region == nil || loc.Region.StartLine == 0 {
			t.Errorf("result %s has no file and line: %+v", r.RuleID, loc)
		}
		if r.Level != "error" && r.Level != "warning" && r.Level != "note" {
			t.Errorf("level %q", r.Level)
		}
	}
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantCode  int // 0 none, 1 findings, 2 usage or input
		wantInOut string
	}{
		{"clean", []string{"../../../lint/testdata/rules/SH001-good.yaml"}, 0, "0 error(s)"},
		{"errors", []string{"testdata/app.yaml"}, 1, "SH001"},
		{"warnings pass by default", []string{"../../../lint/testdata/rules/SH004-bad.yaml"}, 0, "SH004"},
		{"fail on warning", []string{"--fail-on", "warning", "../../../lint/testdata/rules/SH004-bad.yaml"}, 1, "SH004"},
		{"disable", []string{"--disable", "SH001,SH002,SH005,SH011,SH013", "testdata/app.yaml"}, 0, ""},
		{"missing file", []string{"testdata/missing.yaml"}, 2, ""},
		{"no paths", nil, 2, ""},
		{"bad format", []string{"-o", "xml", "testdata/app.yaml"}, 2, ""},
		{"bad severity", []string{"--fail-on", "fatal", "testdata/app.yaml"}, 2, ""},
		{"rules", []string{"--rules"}, 0, "SH014"},
		{"gated field warns", []string{"../../../lint/testdata/k8s137/probes.yaml"}, 0, "needs feature gate H2CContainerProbe"},
		{"gated field fails on warning", []string{"--fail-on", "warning", "../../../lint/testdata/rules/SH035-bad.yaml"}, 1, "SH035"},
		{"gated field disabled", []string{"--fail-on", "warning", "--disable", "SH035", "../../../lint/testdata/rules/SH035-bad.yaml"}, 0, "0 warning(s)"},
		{"server refuses, so does lint", []string{"../../../lint/testdata/k8s137/invalid-quantity.yaml"}, 1, "spec.behavior.scaleUp.tolerance: quantities must match"},
		{"rules list SH035", []string{"--rules"}, 0, "field-needs-feature-gate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			code := 0
			if err != nil {
				code = 2
				var ec interface{ ExitCode() int }
				if errors.As(err, &ec) {
					code = ec.ExitCode()
				}
			}
			if code != tt.wantCode {
				t.Fatalf("exit %d (%v), want %d; output:\n%s", code, err, tt.wantCode, out)
			}
			if !strings.Contains(out, tt.wantInOut) {
				t.Fatalf("output lacks %q:\n%s", tt.wantInOut, out)
			}
		})
	}
}

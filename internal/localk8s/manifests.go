package localk8s

import (
	"errors"
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
	"github.com/shoal-dev/shoal/lint"
)

// ErrManifests reports manifests that cannot be run: unreadable files,
// YAML that does not decode into its Kubernetes type, a failed kustomize
// build, or objects that make no sense together.
var ErrManifests = errors.New("bad manifests")

// invalidDocument is the lint rule for documents that do not decode.
const invalidDocument = "invalid-document"

// load reads paths (files, folders, kustomizations) through the linter,
// refuses documents that do not decode and returns the objects together
// with the lint report's other findings, which are only warnings here.
func load(paths []string) (*cluster.Objects, []lint.Finding, error) {
	rep, err := (&lint.Linter{}).Lint(paths...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrManifests, err)
	}
	var decodeRule string
	for _, r := range lint.Rules() {
		if r.Name == invalidDocument {
			decodeRule = r.ID
		}
	}
	var bad []string
	var warnings []lint.Finding
	for _, f := range rep.Findings {
		if f.Rule == decodeRule {
			bad = append(bad, f.String())
			continue
		}
		if f.Severity >= lint.Warning {
			warnings = append(warnings, f)
		}
	}
	if len(bad) > 0 {
		return nil, nil, fmt.Errorf("%w:\n  %s", ErrManifests, strings.Join(bad, "\n  "))
	}
	objs := &cluster.Objects{}
	for _, d := range rep.Documents {
		if d.Object == nil {
			objs.Ignored = append(objs.Ignored, d.ID())
			continue
		}
		if err := objs.Add(d.Object); err != nil {
			return nil, nil, fmt.Errorf("%w: %s: %w", ErrManifests, d.ID(), err)
		}
	}
	if len(objs.Deployments) == 0 {
		return nil, nil, fmt.Errorf("%w: no Deployment in %s", ErrManifests, strings.Join(paths, ", "))
	}
	if err := objs.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrManifests, err)
	}
	return objs, warnings, nil
}

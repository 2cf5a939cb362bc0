package lint

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
)

// WriteText writes one line per finding, each followed by its fix, then a
// summary line.
func (r *Report) WriteText(w io.Writer) error {
	ew := &errWriter{w: w}
	for _, f := range r.Findings {
		ew.printf("%s\n    fix: %s\n", f, f.Fix)
	}
	ew.printf("%d error(s), %d warning(s), %d note(s) in %d object(s) from %d input(s)\n",
		r.Count(Error), r.Count(Warning), r.Count(Note), r.Objects, r.Inputs)
	return ew.err
}

// WriteJSON writes the report as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	out := struct {
		*Report
		Errors   int `json:"errors"`
		Warnings int `json:"warnings"`
		Notes    int `json:"notes"`
	}{r, r.Count(Error), r.Count(Warning), r.Count(Note)}
	if out.Findings == nil {
		out.Report = &Report{Findings: []Finding{}, Inputs: r.Inputs, Objects: r.Objects}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("lint: write json: %w", err)
	}
	return nil
}

// SARIF 2.1.0, the subset code scanning services read.
type (
	sarifLog struct {
		Version string     `json:"version"`
		Schema  string     `json:"$schema"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool    sarifTool     `json:"tool"`
		Results []sarifResult `json:"results"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifRule struct {
		ID               string        `json:"id"`
		Name             string        `json:"name"`
		ShortDescription sarifText     `json:"shortDescription"`
		FullDescription  sarifText     `json:"fullDescription"`
		Help             sarifText     `json:"help"`
		DefaultConfig    sarifRuleConf `json:"defaultConfiguration"`
	}
	sarifRuleConf struct {
		Level string `json:"level"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifResult struct {
		RuleID    string          `json:"ruleId"`
		RuleIndex int             `json:"ruleIndex"`
		Level     string          `json:"level"`
		Message   sarifText       `json:"message"`
		Locations []sarifLocation `json:"locations"`
	}
	sarifLocation struct {
		Physical sarifPhysical  `json:"physicalLocation"`
		Logical  []sarifLogical `json:"logicalLocations,omitempty"`
	}
	sarifPhysical struct {
		Artifact sarifArtifact `json:"artifactLocation"`
		Region   *sarifRegion  `json:"region,omitempty"`
	}
	sarifArtifact struct {
		URI string `json:"uri"`
	}
	sarifRegion struct {
		StartLine int `json:"startLine"`
	}
	sarifLogical struct {
		FullyQualifiedName string `json:"fullyQualifiedName"`
		Kind               string `json:"kind"`
	}
)

// WriteSARIF writes the report as a SARIF 2.1.0 log for code scanning.
func (r *Report) WriteSARIF(w io.Writer) error {
	rules := Rules()
	index := map[string]int{}
	driver := sarifDriver{Name: "shoal lint", InformationURI: "https://github.com/shoal-dev/shoal/blob/main/docs/lint.md"}
	for i, rule := range rules {
		index[rule.ID] = i
		driver.Rules = append(driver.Rules, sarifRule{
			ID: rule.ID, Name: rule.Name,
			ShortDescription: sarifText{rule.Why},
			FullDescription:  sarifText{rule.Why},
			Help:             sarifText{rule.Fix},
			DefaultConfig:    sarifRuleConf{sarifLevel(rule.Severity)},
		})
	}
	results := []sarifResult{}
	for _, f := range r.Findings {
		loc := sarifLocation{Physical: sarifPhysical{Artifact: sarifArtifact{URI: filepath.ToSlash(f.Path)}}}
		if f.Line > 0 {
			loc.Physical.Region = &sarifRegion{StartLine: f.Line}
		}
		if f.Object != "" {
			loc.Logical = []sarifLogical{{FullyQualifiedName: f.Object, Kind: "resource"}}
		}
		results = append(results, sarifResult{
			RuleID: f.Rule, RuleIndex: index[f.Rule], Level: sarifLevel(f.Severity),
			Message: sarifText{f.Message + ". Fix: " + f.Fix}, Locations: []sarifLocation{loc},
		})
	}
	log := sarifLog{
		Version: "2.1.0",
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Runs:    []sarifRun{{Tool: sarifTool{Driver: driver}, Results: results}},
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(log); err != nil {
		return fmt.Errorf("lint: write sarif: %w", err)
	}
	return nil
}

func sarifLevel(s Severity) string {
	return s.String() // SARIF's levels are named as ours are
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
		if e.err != nil {
			e.err = fmt.Errorf("lint: write text: %w", e.err)
		}
	}
}

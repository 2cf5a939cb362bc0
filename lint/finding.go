package lint

import (
	"fmt"
	"slices"
	"strings"
)

// Severity ranks a finding. Only errors make `shoal lint` fail by default.
type Severity int

// The severities, lowest first.
const (
	Note Severity = iota
	Warning
	Error
)

func (s Severity) String() string {
	switch s {
	case Note:
		return "note"
	case Warning:
		return "warning"
	case Error:
		return "error"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the severity as its name.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// ParseSeverity reads a severity name: "note", "warning" or "error".
func ParseSeverity(name string) (Severity, error) {
	for _, s := range []Severity{Note, Warning, Error} {
		if strings.EqualFold(name, s.String()) {
			return s, nil
		}
	}
	return 0, fmt.Errorf("lint: unknown severity %q (want note, warning or error)", name)
}

// Finding is one problem found in one object.
type Finding struct {
	Rule     string   `json:"rule"`
	Name     string   `json:"name"`
	Severity Severity `json:"severity"`
	// Path is the file, or the kustomization directory for built objects.
	Path string `json:"path"`
	// Line is 1-based; 0 when unknown, as for kustomize output.
	Line int `json:"line,omitempty"`
	// Object is Kind/name or Kind/namespace/name; empty when the document
	// could not be read far enough to know it.
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
	Why     string `json:"why"`
	Fix     string `json:"fix"`
}

func (f Finding) String() string {
	loc := f.Path
	if f.Line > 0 {
		loc = fmt.Sprintf("%s:%d", f.Path, f.Line)
	}
	obj := ""
	if f.Object != "" {
		obj = " " + f.Object + ":"
	}
	return fmt.Sprintf("%s: %s %s%s %s", loc, f.Severity, f.Rule, obj, f.Message)
}

func newFinding(r Rule, path string, line int, object, msg string) Finding {
	return Finding{
		Rule: r.ID, Name: r.Name, Severity: r.Severity,
		Path: path, Line: line, Object: object, Message: msg,
		Why: r.Why, Fix: r.Fix,
	}
}

// finding reports r against d, located at the field path when the
// document has lines.
func (d *Document) finding(r Rule, field string, format string, args ...any) Finding {
	line := d.Line
	if field != "" {
		line = d.lineOf(field)
	}
	obj := ""
	if d.Kind != "" {
		obj = d.ID()
	}
	return newFinding(r, d.Path, line, obj, fmt.Sprintf(format, args...))
}

// ignores reports whether d opts out of rule id with the
// shoal.dev/lint-ignore annotation.
func (d *Document) ignores(id string) bool {
	v, ok := d.annotations[AnnotationIgnore]
	if !ok {
		return false
	}
	return slices.ContainsFunc(strings.Split(v, ","), func(s string) bool {
		return strings.TrimSpace(s) == id
	})
}

// Annotations read by the rules.
const (
	// AnnotationIgnore lists rule IDs, comma-separated, not to report for
	// the annotated object.
	AnnotationIgnore = "shoal.dev/lint-ignore"
	// AnnotationProbeBudget is the longest the health handlers may take to
	// answer: a duration for every probe, or path=duration pairs.
	AnnotationProbeBudget = "shoal.dev/probe-budget"
	// AnnotationMaxConnAge declares, on a workload or its pod template, the
	// age at which the pods' servers close client connections, for servers
	// that set it without the kit's MAX_CONN_AGE (e.g. grpc-go's
	// keepalive.ServerParameters.MaxConnectionAge): a positive duration.
	AnnotationMaxConnAge = "shoal.dev/max-conn-age"
)

// Report is the outcome of linting.
type Report struct {
	// Findings are sorted by path, line, object and rule.
	Findings []Finding `json:"findings"`
	// Inputs counts the sets of objects checked: files, folders and builds.
	Inputs int `json:"inputs"`
	// Objects counts the documents decoded.
	Objects int `json:"objects"`
	// Documents are the documents read, in input order, for callers that
	// go on to use the objects (as `shoal up` does after linting).
	Documents []*Document `json:"-"`
}

// Count returns how many findings have severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Worst returns the highest severity found, and false when there are no
// findings.
func (r *Report) Worst() (Severity, bool) {
	if len(r.Findings) == 0 {
		return 0, false
	}
	w := Note
	for _, f := range r.Findings {
		w = max(w, f.Severity)
	}
	return w, true
}

func (r *Report) sort() {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		if c := strings.Compare(a.Path, b.Path); c != 0 {
			return c
		}
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		if c := strings.Compare(a.Object, b.Object); c != 0 {
			return c
		}
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
}

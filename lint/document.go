package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	sigsjson "sigs.k8s.io/json"
	kyaml "sigs.k8s.io/kustomize/kyaml/yaml"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/keda"
)

// Document is one Kubernetes object read from a file or built from a
// kustomization.
type Document struct {
	// Path is the file the document came from, or the kustomization
	// directory it was built from.
	Path string
	// Line is the 1-based line where the document starts in Path; 0 when
	// the document is kustomize output and has no line of its own.
	Line int

	APIVersion string
	Kind       string
	Name       string
	Namespace  string

	// Object is the strictly decoded object: a pointer to a k8s.io/api type,
	// a *keda.ScaledObject, or a pointer to a sigs.k8s.io/gateway-api type
	// (apis/v1 or apis/v1beta1) of a kind and version the Gateway API's
	// standard-channel CRDs serve. It is nil when the kind is unknown or the
	// document failed to decode.
	Object any

	annotations map[string]string
	root        *kyaml.Node // mapping node of the document; nil for built output
	lineBase    int         // file line of the chunk's first line, minus one
}

// ID names the document's object as Kind/name, or Kind/namespace/name when
// it has a namespace.
func (d *Document) ID() string {
	if d.Namespace != "" {
		return d.Kind + "/" + d.Namespace + "/" + d.Name
	}
	return d.Kind + "/" + d.Name
}

var scaledObjectGVK = schema.GroupVersionKind{Group: "keda.sh", Version: "v1alpha1", Kind: "ScaledObject"}

// newObject returns an empty typed object for gvk, or nil when the kind is
// neither built into Kubernetes nor known to this package.
func newObject(gvk schema.GroupVersionKind) any {
	if gvk == scaledObjectGVK {
		return new(keda.ScaledObject)
	}
	if gvk.Group == gatewayGroup {
		return gatewayAPI.newObject(gvk)
	}
	obj, err := scheme.Scheme.New(gvk)
	if err != nil {
		return nil
	}
	return obj
}

// chunk is the text of one YAML document and the file line it starts on.
type chunk struct {
	text  []byte
	start int // 1-based file line of text's first line
}

// splitDocuments cuts a YAML stream at "---" separator lines, as kubectl
// does, keeping each piece's starting line so errors can name file lines.
// It cuts at most limit pieces; rest is the line where the next would
// start, or 0 when the stream ends within them.
func splitDocuments(data []byte, limit int) (chunks []chunk, rest int) {
	start, line := 1, 0
	var cur bytes.Buffer
	for len(data) > 0 {
		if len(chunks) == limit {
			return chunks, start
		}
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i+1], data[i+1:]
		} else {
			l, data = data, nil
		}
		if isSeparator(l) {
			chunks = append(chunks, chunk{text: bytes.Clone(cur.Bytes()), start: start})
			cur.Reset()
			start = line + 1
			continue
		}
		cur.Write(l)
	}
	if len(chunks) == limit {
		if cur.Len() == 0 {
			return chunks, 0
		}
		return chunks, start
	}
	return append(chunks, chunk{text: cur.Bytes(), start: start}), 0
}

func isSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// parseStream decodes every document of a YAML stream. Problems with the
// input become findings; it never returns an error because nothing in data
// can stop the other documents from being checked. When built is true the
// documents are kustomize output and carry no line numbers. Documents
// count against r's limit; past it, the rest of the stream is one
// finding, the first time, and is not read.
func parseStream(path string, data []byte, built bool, r *reading) ([]*Document, []Finding) {
	var docs []*Document
	var findings []Finding
	chunks, rest := splitDocuments(data, r.docs)
	r.docs -= len(chunks)
	if rest > 0 && !r.full {
		r.full = true
		if built {
			rest = 0
		}
		findings = append(findings, newFinding(ruleDecode, path, rest, "",
			fmt.Sprintf("more than %d documents in all: this one and the rest are not checked; lint fewer files at a time", maxDocuments)))
	}
	for _, c := range chunks {
		if len(c.text) > maxDocumentBytes {
			line := c.start
			if built {
				line = 0
			}
			findings = append(findings, newFinding(ruleDecode, path, line, "",
				fmt.Sprintf("the document holds %.1f MiB; the API server takes at most %d MiB in one request", float64(len(c.text))/(1<<20), maxDocumentBytes>>20)))
			continue
		}
		if r.nodes < 0 {
			continue // past the limit below, said once
		}
		d, f := parseDocument(path, c, built)
		if d != nil && d.root != nil {
			if r.nodes -= countNodes(d.root); r.nodes < 0 {
				findings = append(findings, newFinding(ruleDecode, path, c.start, "",
					fmt.Sprintf("the files hold more than %d YAML nodes in all: this document and the rest are not checked; lint fewer files at a time", maxNodes)))
				continue
			}
		}
		if d != nil {
			docs = append(docs, d)
		}
		findings = append(findings, f...)
	}
	return docs, findings
}

func parseDocument(path string, c chunk, built bool) (*Document, []Finding) {
	at := func(line int, format string, args ...any) []Finding {
		if built {
			line = 0
		}
		return []Finding{newFinding(ruleDecode, path, line, "", fmt.Sprintf(format, args...))}
	}
	js, err := yaml.YAMLToJSONStrict(c.text)
	if err != nil {
		line := c.start
		msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
		if m := yamlLineRE.FindStringSubmatchIndex(msg); m != nil {
			n, _ := strconv.Atoi(msg[m[2]:m[3]])
			line = c.start + n - 1
			msg = msg[:m[0]] + "line " + strconv.Itoa(line) + msg[m[1]:]
		}
		return nil, at(line, "invalid YAML: %s", msg)
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
		return nil, nil // empty document: comments or a trailing separator
	}
	d := &Document{Path: path, Line: c.start, lineBase: c.start - 1}
	if built {
		d.Line = 0
	} else {
		d.root = parseNode(c.text)
		if d.root != nil {
			d.Line = d.lineBase + d.root.Line
		}
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name        string            `json:"name"`
			Namespace   string            `json:"namespace"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, at(d.lineOf(te.Field), "%s: expected %s, found %s", te.Field, te.Type, te.Value)
		}
		return nil, at(d.Line, "not a Kubernetes object: expected a mapping with apiVersion and kind")
	}
	d.APIVersion, d.Kind = head.APIVersion, head.Kind
	d.Name, d.Namespace = head.Metadata.Name, head.Metadata.Namespace
	d.annotations = head.Metadata.Annotations
	if d.APIVersion == "" || d.Kind == "" {
		return nil, at(d.Line, "not a Kubernetes object: apiVersion and kind are required")
	}
	gv, err := schema.ParseGroupVersion(d.APIVersion)
	if err != nil {
		return nil, at(d.lineOf("apiVersion"), "apiVersion %q: %v", d.APIVersion, err)
	}
	gvk := gv.WithKind(d.Kind)
	if gvk.Group == gatewayGroup && !gatewayAPI.served(gvk) {
		return nil, []Finding{d.finding(ruleDecode, "apiVersion",
			"%s %s is not served by the Gateway API %s standard-channel CRDs (served: %s)", d.APIVersion, d.Kind, GatewayAPIVersion, gatewayAPI.servedKinds())}
	}
	obj := newObject(gvk)
	if obj == nil {
		return d, []Finding{d.finding(ruleUnknownKind, "kind",
			"%s %s is not a kind this linter knows; its fields and rules are not checked", d.APIVersion, d.Kind)}
	}
	strict, err := sigsjson.UnmarshalStrict(js, obj)
	if err != nil {
		field, msg := describeTypeError(err)
		if p := indexedPath(js, field); p != field {
			// JSON type errors name list fields without their index.
			msg = p + strings.TrimPrefix(msg, field)
			field = p
		}
		if field == "" {
			// A type that decodes itself (a quantity, a time) names no
			// field in its error: find the value that fails.
			if p := valueErrorPath(js, reflect.TypeOf(obj), ""); p != "" {
				field, msg = p, p+": "+msg
			}
		}
		return nil, []Finding{d.finding(ruleDecode, field, "%s", msg)}
	}
	if gvk.Group == gatewayGroup {
		strict = append(strict, gatewaySchemaErrors(gvk, js, strict)...)
	}
	if len(strict) > 0 {
		var fs []Finding
		for _, e := range strict {
			field := ""
			var fe sigsjson.FieldError
			if errors.As(e, &fe) {
				field = fe.FieldPath()
			}
			fs = append(fs, d.finding(ruleDecode, field, "%s", strings.TrimPrefix(e.Error(), "json: ")))
		}
		return nil, fs
	}
	d.Object = obj
	return d, nil
}

var typeErrRE = regexp.MustCompile(`cannot unmarshal (.+) into Go struct field [^.\s]+\.(\S+) of type (\S+)`)

// describeTypeError turns a JSON type error into the field it concerns and
// a message in the manifest's terms rather than Go's.
func describeTypeError(err error) (field, msg string) {
	s := strings.TrimPrefix(err.Error(), "json: ")
	if m := typeErrRE.FindStringSubmatch(s); m != nil {
		// Go names embedded structs in the path (Gateway API's
		// "backendRefs.BackendRef.BackendObjectReference.port"); JSON
		// field names start lower-case.
		var segs []string
		for _, seg := range strings.Split(m[2], ".") {
			if seg != "" && (seg[0] < 'A' || seg[0] > 'Z') {
				segs = append(segs, seg)
			}
		}
		field = strings.Join(segs, ".")
		return field, fmt.Sprintf("%s: cannot use %s as %s", field, m[1], m[3])
	}
	return "", s
}

// indexedPath finds the first field of the document js along path
// ("spec.rules.timeouts.request", lists unindexed) and returns its path
// with the indexes ("spec.rules[0].timeouts.request"); path itself when
// there is no such field.
func indexedPath(js []byte, path string) string {
	if path == "" {
		return path
	}
	var doc any
	if json.Unmarshal(js, &doc) != nil {
		return path
	}
	var find func(v any, segs []string, at string) (string, bool)
	find = func(v any, segs []string, at string) (string, bool) {
		if len(segs) == 0 {
			return at, true
		}
		switch v := v.(type) {
		case map[string]any:
			next, ok := v[segs[0]]
			if !ok {
				return "", false
			}
			if at != "" {
				at += "."
			}
			return find(next, segs[1:], at+segs[0])
		case []any:
			for i, el := range v {
				if p, ok := find(el, segs, at+"["+strconv.Itoa(i)+"]"); ok {
					return p, true
				}
			}
		}
		return "", false
	}
	if p, ok := find(doc, strings.Split(path, "."), ""); ok {
		return p
	}
	return path
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// valueErrorPath walks raw along the Go type t and returns the path of the
// first value, in key order, that a type with its own UnmarshalJSON
// refuses, as "spec.behavior.scaleUp.tolerance"; "" when there is none.
func valueErrorPath(raw json.RawMessage, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		if json.Unmarshal(raw, reflect.New(t).Interface()) != nil {
			return path
		}
		return ""
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return ""
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if ft, ok := fields[k]; ok {
				if p := valueErrorPath(m[k], ft, join(k)); p != "" {
					return p
				}
			}
		}
	case reflect.Slice, reflect.Array:
		var l []json.RawMessage
		if t.Elem().Kind() == reflect.Uint8 || json.Unmarshal(raw, &l) != nil {
			return ""
		}
		for i, el := range l {
			if p := valueErrorPath(el, t.Elem(), path+"["+strconv.Itoa(i)+"]"); p != "" {
				return p
			}
		}
	case reflect.Map:
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return ""
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p := valueErrorPath(m[k], t.Elem(), join(k)); p != "" {
				return p
			}
		}
	}
	return ""
}

// jsonFields maps the JSON names of t's fields to their types, with the
// fields of inline embedded structs as their own.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	fs := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case name == "-":
		case name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct:
			for k, v := range jsonFields(f.Type) {
				fs[k] = v
			}
		case name == "":
			fs[f.Name] = f.Type
		default:
			fs[name] = f.Type
		}
	}
	return fs
}

// parseNode parses text into a yaml.v3 tree for line lookups. It returns
// the document's top mapping, or nil when text is not one.
func parseNode(text []byte) *kyaml.Node {
	var n kyaml.Node
	if err := kyaml.Unmarshal(text, &n); err != nil {
		return nil
	}
	if n.Kind == kyaml.DocumentNode && len(n.Content) == 1 {
		return n.Content[0]
	}
	return nil
}

// lineOf returns the file line of a field path such as
// "spec.template.spec.containers[0].image", falling back to the deepest
// ancestor present, then to the document's first line. Path segments
// without an index match any element of a sequence, as JSON type errors
// name fields that way.
func (d *Document) lineOf(path string) int {
	if d.root == nil {
		return d.Line
	}
	if n := lookup(d.root, fieldSegments(path)); n > 0 {
		return d.lineBase + n
	}
	return d.Line
}

// fieldSegments splits "a.b[2].c" into "a", "b", "[2]", "c".
func fieldSegments(path string) []string {
	var segs []string
	for _, part := range strings.Split(path, ".") {
		for part != "" {
			i := strings.IndexByte(part, '[')
			switch {
			case i < 0:
				segs, part = append(segs, part), ""
			case i > 0:
				segs, part = append(segs, part[:i]), part[i:]
			default:
				j := strings.IndexByte(part, ']')
				if j < 0 {
					segs, part = append(segs, part), ""
					continue
				}
				segs, part = append(segs, part[:j+1]), part[j+1:]
			}
		}
	}
	return segs
}

// lookup walks n along segs and returns the line of the deepest node it
// reaches, or 0 when even the first segment is absent.
func lookup(n *kyaml.Node, segs []string) int {
	if len(segs) == 0 {
		return n.Line
	}
	seg := segs[0]
	switch n.Kind {
	case kyaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == seg {
				if l := lookup(n.Content[i+1], segs[1:]); l > 0 && len(segs) > 1 {
					return l
				}
				return n.Content[i].Line
			}
		}
	case kyaml.SequenceNode:
		if strings.HasPrefix(seg, "[") {
			i, err := strconv.Atoi(strings.Trim(seg, "[]"))
			if err == nil && i >= 0 && i < len(n.Content) {
				if l := lookup(n.Content[i], segs[1:]); l > 0 {
					return l
				}
				return n.Content[i].Line
			}
			return 0
		}
		for _, el := range n.Content {
			if l := lookup(el, segs); l > 0 {
				return l
			}
		}
	}
	return 0
}

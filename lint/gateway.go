package lint

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	sigsjson "sigs.k8s.io/json"
)

// GatewayAPIVersion is the Gateway API release whose standard-channel CRDs
// the linter checks Gateway API objects against.
const GatewayAPIVersion = "v1.6.3"

// gatewayGroup is the API group of the Gateway API kinds.
const gatewayGroup = "gateway.networking.k8s.io"

// gatewayFieldsJSON holds, for each kind and version the standard-channel
// CRDs serve ("v1/HTTPRoute"), the tree of field names their OpenAPI
// schemas allow; TestGatewayFieldsMatchCRDs regenerates it from the CRDs
// in the module cache with -update. The Go types of sigs.k8s.io/gateway-api
// also carry the experimental channel's fields (HTTPRoute retries, session
// persistence, ...), which an API server with the standard CRDs rejects,
// so strict decoding alone would let them through.
//
//go:embed gatewayapi_fields.json
var gatewayFieldsJSON []byte

// fieldTree is the field names an object's schema allows below one field:
// nil allows anything (a scalar, or an object without a schema), and the
// key "*" stands for any name (a map).
type fieldTree map[string]fieldTree

// gatewayAPI is what the linter knows of the Gateway API, built once from
// immutable inputs.
var gatewayAPI = newGatewayKinds()

type gatewayKinds struct {
	scheme *runtime.Scheme
	fields map[string]fieldTree // by "version/Kind"
}

func newGatewayKinds() *gatewayKinds {
	g := &gatewayKinds{scheme: runtime.NewScheme()}
	for _, install := range []func(*runtime.Scheme) error{gatewayv1.Install, gatewayv1beta1.Install} {
		if err := install(g.scheme); err != nil {
			panic(fmt.Sprintf("lint: register Gateway API types: %v", err))
		}
	}
	if err := json.Unmarshal(gatewayFieldsJSON, &g.fields); err != nil {
		panic(fmt.Sprintf("lint: gatewayapi_fields.json: %v", err))
	}
	return g
}

// served reports whether the standard-channel CRDs serve gvk.
func (g *gatewayKinds) served(gvk schema.GroupVersionKind) bool {
	_, ok := g.fields[gvk.Version+"/"+gvk.Kind]
	return ok && gvk.Group == gatewayGroup
}

// newObject returns an empty typed object for a served gvk.
func (g *gatewayKinds) newObject(gvk schema.GroupVersionKind) any {
	if !g.served(gvk) {
		return nil
	}
	obj, err := g.scheme.New(gvk)
	if err != nil {
		return nil
	}
	return obj
}

// servedKinds lists the served kinds, for messages.
func (g *gatewayKinds) servedKinds() string {
	ks := make([]string, 0, len(g.fields))
	for k := range g.fields {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// unknownFields walks a decoded JSON document along gvk's field tree and
// returns the path of every field the standard-channel schema lacks, as
// "spec.rules[0].retry".
func (g *gatewayKinds) unknownFields(gvk schema.GroupVersionKind, doc any) []string {
	var out []string
	walkFields(g.fields[gvk.Version+"/"+gvk.Kind], doc, "", &out)
	return out
}

func walkFields(t fieldTree, v any, path string, out *[]string) {
	if t == nil {
		return
	}
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			sub, ok := t[k]
			if !ok {
				sub, ok = t["*"]
			}
			if !ok {
				*out = append(*out, p)
				continue
			}
			walkFields(sub, v[k], p, out)
		}
	case []any:
		for i, el := range v {
			walkFields(t, el, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

// crdFieldTrees turns the CRD documents of the Gateway API's standard
// channel into field trees by "version/Kind", for each served version.
func crdFieldTrees(crds [][]byte) (map[string]fieldTree, error) {
	out := map[string]fieldTree{}
	for _, data := range crds {
		var crd struct {
			Kind string `json:"kind"`
			Spec struct {
				Group string `json:"group"`
				Names struct {
					Kind string `json:"kind"`
				} `json:"names"`
				Versions []struct {
					Name   string `json:"name"`
					Served bool   `json:"served"`
					Schema struct {
						OpenAPIV3Schema *jsonSchema `json:"openAPIV3Schema"`
					} `json:"schema"`
				} `json:"versions"`
			} `json:"spec"`
		}
		if err := json.Unmarshal(data, &crd); err != nil {
			return nil, err
		}
		if crd.Kind != "CustomResourceDefinition" || crd.Spec.Group != gatewayGroup {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if !v.Served || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			t := v.Schema.OpenAPIV3Schema.tree()
			// metadata is checked as ObjectMeta by strict decoding.
			t["metadata"] = nil
			out[v.Name+"/"+crd.Spec.Names.Kind] = t
		}
	}
	return out, nil
}

// jsonSchema is the part of an OpenAPI v3 schema that names fields.
type jsonSchema struct {
	Type                 string                 `json:"type"`
	Properties           map[string]*jsonSchema `json:"properties"`
	Items                *jsonSchema            `json:"items"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	PreserveUnknown      bool                   `json:"x-kubernetes-preserve-unknown-fields"`
}

func (s *jsonSchema) tree() fieldTree {
	if s == nil || s.PreserveUnknown {
		return nil
	}
	if s.Type == "array" {
		return s.Items.tree()
	}
	if s.Type != "object" {
		return nil
	}
	if len(s.Properties) == 0 {
		var sub jsonSchema
		if len(s.AdditionalProperties) > 0 && json.Unmarshal(s.AdditionalProperties, &sub) == nil {
			return fieldTree{"*": sub.tree()}
		}
		return nil
	}
	t := fieldTree{}
	for name, p := range s.Properties {
		t[name] = p.tree()
	}
	return t
}

// schemaFieldError is a field the Go types know but the standard-channel
// schema does not.
type schemaFieldError struct{ path, kind string }

func (e *schemaFieldError) Error() string {
	return fmt.Sprintf("unknown field %q: not in the Gateway API %s standard-channel schema of %s (an experimental-channel field?)", e.path, GatewayAPIVersion, e.kind)
}

func (e *schemaFieldError) FieldPath() string { return e.path }

func (e *schemaFieldError) SetFieldPath(path string) { e.path = path }

// gatewaySchemaErrors returns the fields of js that gvk's standard-channel
// schema lacks, leaving out those strict decoding already reported.
func gatewaySchemaErrors(gvk schema.GroupVersionKind, js []byte, reported []error) []error {
	var doc any
	if err := json.Unmarshal(js, &doc); err != nil {
		return nil
	}
	seen := map[string]bool{}
	for _, e := range reported {
		var fe sigsjson.FieldError
		if errors.As(e, &fe) {
			seen[fe.FieldPath()] = true
		}
	}
	var errs []error
	for _, p := range gatewayAPI.unknownFields(gvk, doc) {
		if !seen[p] {
			errs = append(errs, &schemaFieldError{path: p, kind: gvk.Kind})
		}
	}
	return errs
}

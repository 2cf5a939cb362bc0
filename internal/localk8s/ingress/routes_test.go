package ingress

import (
	"errors"
	pathpkg "path"
	"strings"
	"testing"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fixture covers every kind of host and path.
func fixture() []*networkingv1.Ingress {
	return []*networkingv1.Ingress{
		ingress("site", rule("foo.example.com",
			path("/", prefix, "root"),
			path("/api", prefix, "api"),
			path("/api", exact, "api-exact"),
			path("/api/v2/", prefix, "v2"),
			path("/static", implsp, "static"),
			path("/exact/", exact, "exact-slash"),
		)),
		ingress("wild", rule("*.example.com", path("/", prefix, "wild"))),
		withDefault(ingress("nohost", rule("", path("/any", prefix, "any"))), "default"),
		ingress("bar", rule("bar.example.com", path("/only", exact, "bar-only"))),
	}
}

func TestMatch(t *testing.T) {
	h := New(Config{})
	if err := h.Update(fixture()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, host, path, want string
	}{
		{name: "root prefix", host: "foo.example.com", path: "/", want: "root"},
		{name: "port ignored, exact beats prefix of same length", host: "foo.example.com:8080", path: "/api", want: "api-exact"},
		{name: "host case ignored, trailing slash is not exact", host: "FOO.Example.com", path: "/api/", want: "api"},
		{name: "prefix by element", host: "foo.example.com", path: "/api/users", want: "api"},
		{name: "prefix is not a string prefix", host: "foo.example.com", path: "/apix", want: "root"},
		{name: "rule trailing slash ignored", host: "foo.example.com", path: "/api/v2", want: "v2"},
		{name: "longest prefix wins", host: "foo.example.com", path: "/api/v2/items", want: "v2"},
		{name: "implementation specific as prefix", host: "foo.example.com", path: "/static/css/a.css", want: "static"},
		{name: "implementation specific by element", host: "foo.example.com", path: "/statics", want: "root"},
		{name: "exact with trailing slash", host: "foo.example.com", path: "/exact/", want: "exact-slash"},
		{name: "exact without its trailing slash", host: "foo.example.com", path: "/exact", want: "root"},
		{name: "slashes merged", host: "foo.example.com", path: "//api//users", want: "api"},
		{name: "dot elements resolved", host: "foo.example.com", path: "/static/../api", want: "api-exact"},
		{name: "dot-dot above root", host: "foo.example.com", path: "/../../api/v2/", want: "v2"},
		{name: "trailing dot in host", host: "foo.example.com.", path: "/", want: "root"},
		{name: "wildcard one label", host: "a.example.com", path: "/anything", want: "wild"},
		{name: "wildcard not two labels", host: "a.b.example.com", path: "/", want: "default"},
		{name: "wildcard not the bare domain", host: "example.com", path: "/any/x", want: "any"},
		{name: "empty first label", host: ".example.com", path: "/any", want: "any"},
		{name: "no host rule", host: "other.org", path: "/any", want: "any"},
		{name: "no host, no match, default backend", host: "other.org", path: "/nothing", want: "default"},
		{name: "empty host", host: "", path: "/any", want: "any"},
		{name: "ip host", host: "127.0.0.1:8080", path: "/any/thing", want: "any"},
		{name: "ipv6 host", host: "[::1]:8080", path: "/any", want: "any"},
		{name: "host exact path", host: "bar.example.com", path: "/only", want: "bar-only"},
		{name: "host no match falls to default, not to host-less rules", host: "bar.example.com", path: "/any", want: "default"},
		{name: "case-sensitive path", host: "foo.example.com", path: "/API", want: "root"},
		{name: "not absolute", host: "other.org", path: "*", want: "default"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := h.table.Load().match(tt.host, tt.path)
			got := "404"
			if r != nil {
				got = r.Backend.Service
			}
			if got != tt.want {
				t.Errorf("match(%q, %q) = %s, want %s", tt.host, tt.path, got, tt.want)
			}
		})
	}
}

func TestMatchWithoutDefaultBackend(t *testing.T) {
	h := New(Config{})
	if err := h.Update([]*networkingv1.Ingress{
		ingress("a", rule("a.example.com", path("/x", prefix, "x"))),
		ingress("b", rule("", path("/y", exact, "y"))),
	}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ host, path string }{
		{"a.example.com", "/y"}, {"a.example.com", "/"}, {"other", "/y/z"}, {"other", "/x"},
	} {
		if r := h.table.Load().match(tt.host, tt.path); r != nil {
			t.Errorf("match(%q, %q) = %s, want 404", tt.host, tt.path, r.Backend)
		}
	}
}

func TestPerHostDefaultBackend(t *testing.T) {
	h := New(Config{})
	if err := h.Update([]*networkingv1.Ingress{
		withDefault(ingress("a", rule("a.example.com", path("/x", prefix, "x"))), "a-default"),
		withDefault(ingress("b", rule("b.example.com", path("/x", prefix, "x"))), "b-default"),
		ingress("c", rule("c.example.com", path("/x", prefix, "x"))),
	}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ host, want string }{
		{"a.example.com", "a-default"}, {"b.example.com", "b-default"},
		{"c.example.com", "a-default"}, {"unknown.org", "a-default"},
	} {
		r := h.table.Load().match(tt.host, "/nope")
		if r == nil || r.Backend.Service != tt.want {
			t.Errorf("host %s: got %v, want %s", tt.host, r, tt.want)
		}
	}
}

func TestOldestIngressWinsConflicts(t *testing.T) {
	older := ingress("zz-older", rule("x.example.com", path("/p", prefix, "older")))
	older.CreationTimestamp = metav1.NewTime(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC))
	newer := ingress("aa-newer", rule("x.example.com", path("/p", prefix, "newer"), path("/q", prefix, "q")))
	newer.CreationTimestamp = metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	h := New(Config{})
	if err := h.Update([]*networkingv1.Ingress{newer, older}); err != nil {
		t.Fatal(err)
	}
	if r := h.table.Load().match("x.example.com", "/p/1"); r == nil || r.Backend.Service != "older" {
		t.Errorf("conflicting path went to %v, want the older Ingress's backend", r)
	}
	if r := h.table.Load().match("x.example.com", "/q"); r == nil || r.Backend.Service != "q" {
		t.Errorf("the newer Ingress's other path went to %v", r)
	}
	if n := len(h.Routes()); n != 2 {
		t.Errorf("Routes() has %d entries, want 2 (the losing declaration dropped): %+v", n, h.Routes())
	}
}

func TestRoutes(t *testing.T) {
	h := New(Config{})
	if err := h.Update(fixture()); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range h.Routes() {
		got = append(got, r.Namespace+"/"+r.Ingress+" "+r.Host+" "+r.Path+" "+string(r.PathType)+" -> "+r.Backend.String())
	}
	want := []string{
		"default/nohost    -> default/default:80",
		"default/nohost  /any Prefix -> default/any:80",
		"default/wild *.example.com / Prefix -> default/wild:80",
		"default/bar bar.example.com /only Exact -> default/bar-only:80",
		"default/site foo.example.com / Prefix -> default/root:80",
		"default/site foo.example.com /api Exact -> default/api-exact:80",
		"default/site foo.example.com /api Prefix -> default/api:80",
		"default/site foo.example.com /api/v2/ Prefix -> default/v2:80",
		"default/site foo.example.com /exact/ Exact -> default/exact-slash:80",
		"default/site foo.example.com /static ImplementationSpecific -> default/static:80",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Routes():\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUpdateRejectsBadInput(t *testing.T) {
	noType := path("/x", prefix, "svc")
	noType.PathType = nil
	noService := path("/x", prefix, "svc")
	noService.Backend.Service = nil
	resource := path("/x", prefix, "svc")
	resource.Backend.Service = nil
	resource.Backend.Resource = &corev1TypedLocalObjectReference
	bothPorts := path("/x", prefix, "svc")
	bothPorts.Backend.Service.Port.Name = "http"
	noPort := path("/x", prefix, "svc")
	noPort.Backend.Service.Port.Number = 0
	badPort := path("/x", prefix, "svc")
	badPort.Backend.Service.Port.Number = 70000

	tests := []struct {
		name      string
		ing       *networkingv1.Ingress
		field     string
		mentioned string
	}{
		{"missing path type", ingress("t", rule("", noType)), "spec.rules[0].http.paths[0].pathType", "required"},
		{"unknown path type", ingress("t", rule("", path("/x", "Regex", "svc"))), "spec.rules[0].http.paths[0].pathType", `"Regex"`},
		{"regex in prefix path", ingress("t", rule("", path("/api/(.*)", prefix, "svc"))), "spec.rules[0].http.paths[0].path", "regular expressions"},
		{"regex in implementation specific path", ingress("t", rule("", path("/", prefix, "svc"), path("/foo.*", implsp, "svc"))), "spec.rules[0].http.paths[1].path", "regular expression"},
		{"relative path", ingress("t", rule("", path("api", exact, "svc"))), "spec.rules[0].http.paths[0].path", "absolute"},
		{"double slash", ingress("t", rule("", path("/a//b", prefix, "svc"))), "spec.rules[0].http.paths[0].path", `"//"`},
		{"dot element", ingress("t", rule("", path("/a/..", prefix, "svc"))), "spec.rules[0].http.paths[0].path", "dot"},
		{"unclean implementation specific", ingress("t", rule("", path("/a/./b", implsp, "svc"))), "spec.rules[0].http.paths[0].path", "clean"},
		{"missing backend", ingress("t", rule("", noService)), "spec.rules[0].http.paths[0].backend.service", "required"},
		{"resource backend", ingress("t", rule("", resource)), "spec.rules[0].http.paths[0].backend.resource", "not supported"},
		{"two ports", ingress("t", rule("", bothPorts)), "spec.rules[0].http.paths[0].backend.service.port", "both"},
		{"no port", ingress("t", rule("", noPort)), "spec.rules[0].http.paths[0].backend.service.port", "required"},
		{"port out of range", ingress("t", rule("", badPort)), "spec.rules[0].http.paths[0].backend.service.port.number", "70000"},
		{"bad service name", ingress("t", rule("", path("/", prefix, "Bad_Name"))), "spec.rules[0].http.paths[0].backend.service.name", "Bad_Name"},
		{"bad host", ingress("t", rule("foo_bar.com", path("/", prefix, "svc"))), "spec.rules[0].host", "foo_bar.com"},
		{"nested wildcard", ingress("t", rule("*.*.example.com", path("/", prefix, "svc"))), "spec.rules[0].host", "*.*.example.com"},
		{"ip host", ingress("t", rule("", path("/", prefix, "svc")), rule("Foo.com", path("/", prefix, "svc"))), "spec.rules[1].host", "Foo.com"},
		{"nothing to route", ingress("t"), "spec", "defaultBackend"},
		{"bad body size", withAnnotations(ingress("t", rule("", path("/", prefix, "svc"))), AnnotationProxyBodySize, "16mb"), "metadata.annotations[" + AnnotationProxyBodySize + "]", `"16mb"`},
		{"bad next upstream", withAnnotations(ingress("t", rule("", path("/", prefix, "svc"))), AnnotationProxyNextUpstream, "error bogus"), "metadata.annotations[" + AnnotationProxyNextUpstream + "]", `"bogus"`},
		{"off with others", withAnnotations(ingress("t", rule("", path("/", prefix, "svc"))), AnnotationProxyNextUpstream, "off error"), "metadata.annotations[" + AnnotationProxyNextUpstream + "]", "off"},
		{"bad tries", withAnnotations(ingress("t", rule("", path("/", prefix, "svc"))), AnnotationProxyNextUpstreamTries, "-1"), "metadata.annotations[" + AnnotationProxyNextUpstreamTries + "]", `"-1"`},
		{"use-regex", withAnnotations(ingress("t", rule("", path("/", prefix, "svc"))), annotationUseRegex, "true"), "metadata.annotations[" + annotationUseRegex + "]", "not supported"},
		{"rewrite-target", withAnnotations(ingress("t", rule("", path("/", prefix, "svc"))), annotationRewriteTarget, "/$1"), "metadata.annotations[" + annotationRewriteTarget + "]", "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New(Config{})
			if err := h.Update(fixture()); err != nil {
				t.Fatal(err)
			}
			before := h.Routes()
			err := h.Update(append(fixture(), tt.ing))
			if err == nil {
				t.Fatal("Update accepted bad input")
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *FieldError", err)
			}
			if fe.Name != "t" || fe.Namespace != "default" || fe.Field != tt.field {
				t.Errorf("error names %s/%s field %q, want default/t field %q (%v)", fe.Namespace, fe.Name, fe.Field, tt.field, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ingress: Ingress default/t: "+tt.field+": ") || !strings.Contains(msg, tt.mentioned) {
				t.Errorf("error %q does not name the field %s and mention %q", msg, tt.field, tt.mentioned)
			}
			if after := h.Routes(); len(after) != len(before) {
				t.Errorf("a rejected Update changed the table: %d routes, had %d", len(after), len(before))
			}
		})
	}
}

func TestUpdateReportsEveryProblem(t *testing.T) {
	h := New(Config{})
	err := h.Update([]*networkingv1.Ingress{
		ingress("one", rule("", path("/(x)", prefix, "svc"))),
		ingress("two", rule("", path("/", "Nope", "svc"))),
	})
	var n int
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		if _, ok := e.(*FieldError); ok {
			n++
		}
	}
	if n != 2 || !strings.Contains(err.Error(), "default/one") || !strings.Contains(err.Error(), "default/two") {
		t.Errorf("got %d field errors: %v", n, err)
	}
	if err := h.Update([]*networkingv1.Ingress{nil}); err == nil {
		t.Error("Update accepted a nil Ingress")
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"1024", 1024, true}, {"8k", 8 << 10, true}, {"16m", 16 << 20, true},
		{"16M", 16 << 20, true}, {"1g", 1 << 30, true}, {" 2m ", 2 << 20, true},
		{"", 0, false}, {"m", 0, false}, {"16mb", 0, false}, {"-1", 0, false}, {"+1", 0, false},
		{"1.5m", 0, false}, {"99999999999999999999g", 0, false}, {"9999999999g", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("parseSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

// refMatch is an independent statement of the Ingress matching rules,
// over the fixture's routes, for the fuzzer to check match against.
func refMatch(routes []Route, host, reqPath string) string {
	host = strings.ToLower(host)
	if i := strings.LastIndex(host, ":"); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	hasHost := func(h string) bool {
		for _, r := range routes {
			if r.Host == h && r.Path != "" {
				return true
			}
		}
		return false
	}
	group := ""
	switch {
	case hasHost(host) && host != "":
		group = host
	default:
		if first, rest, ok := strings.Cut(host, "."); ok && first != "" && hasHost("*."+rest) {
			group = "*." + rest
		}
	}
	fallback := "404"
	for _, r := range routes {
		if r.Path == "" {
			fallback = r.Backend.Service
		}
	}
	if reqPath == "" {
		reqPath = "/"
	}
	if !strings.HasPrefix(reqPath, "/") {
		return fallback
	}
	clean := pathpkg.Clean(reqPath)
	if strings.HasSuffix(reqPath, "/") || strings.HasSuffix(reqPath, "/.") || strings.HasSuffix(reqPath, "/..") {
		if clean != "/" {
			clean += "/"
		}
	}
	elems := func(p string) []string {
		var out []string
		for _, e := range strings.Split(p, "/") {
			if e != "" {
				out = append(out, e)
			}
		}
		return out
	}
	best, bestLen, bestExact := "", -1, false
	for _, r := range routes {
		if r.Host != group || r.Path == "" {
			continue
		}
		var ok bool
		var n int
		if r.PathType == exact {
			ok, n = clean == r.Path, len(r.Path)
		} else {
			re, ce := elems(r.Path), elems(clean)
			ok = len(re) <= len(ce)
			for i := 0; ok && i < len(re); i++ {
				ok = re[i] == ce[i]
			}
			n = len(strings.TrimRight(r.Path, "/"))
		}
		if ok && (n > bestLen || (n == bestLen && r.PathType == exact && !bestExact)) {
			best, bestLen, bestExact = r.Backend.Service, n, r.PathType == exact
		}
	}
	if best == "" {
		return fallback
	}
	return best
}

func FuzzMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"foo.example.com", "/api/v2/x"}, {"a.example.com:80", "//static/./a/../b"}, {"bar.example.com.", "/only"},
		{"", "/any/"}, {"[::1]:80", "/exact/"}, {"x..example.com", "/.."}, {"FOO.EXAMPLE.COM", "/api"},
		{"other", "*"}, {"a.b.example.com", "/exact/."}, {":80", ""},
	} {
		f.Add(s[0], s[1])
	}
	h := New(Config{})
	if err := h.Update(fixture()); err != nil {
		f.Fatal(err)
	}
	t := h.table.Load()
	routes := h.Routes()
	f.Fuzz(func(tt *testing.T, host, reqPath string) {
		r := t.match(host, reqPath)
		got := "404"
		if r != nil {
			got = r.Backend.Service
		}
		if want := refMatch(routes, host, reqPath); got != want {
			tt.Errorf("match(%q, %q) = %s, reference says %s", host, reqPath, got, want)
		}
	})
}

// FuzzUpdate feeds arbitrary hosts, paths, path types and annotation
// values to Update: it must never panic, must reject with a FieldError,
// and an accepted path must route to itself.
func FuzzUpdate(f *testing.F) {
	f.Add("foo.example.com", "/api", "Prefix", "16m", "error timeout http_503")
	f.Add("*.example.com", "/a/b/", "Exact", "0", "off")
	f.Add("", "/static", "ImplementationSpecific", "1k", "non_idempotent")
	f.Add("Foo", "/(.*)", "Regex", "1.5m", "bogus")
	f.Add("*.*", "api", "", "", "")
	f.Fuzz(func(t *testing.T, host, p, pathType, size, next string) {
		ing := withAnnotations(ingress("fz", rule(host, path(p, networkingv1.PathType(pathType), "svc"))),
			AnnotationProxyBodySize, size, AnnotationProxyNextUpstream, next)
		h := New(Config{})
		err := h.Update([]*networkingv1.Ingress{ing})
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Name != "fz" {
				t.Fatalf("error %v does not name the Ingress through a FieldError", err)
			}
			return
		}
		reqHost := host
		if strings.HasPrefix(host, "*.") {
			reqHost = "x" + host[1:]
		}
		reqPath := p
		if reqPath == "" {
			reqPath = "/"
		}
		if r := h.table.Load().match(reqHost, reqPath); r == nil || r.Backend.Service != "svc" {
			t.Errorf("accepted rule host %q path %q (%s) does not route its own path: %v", host, p, pathType, r)
		}
	})
}

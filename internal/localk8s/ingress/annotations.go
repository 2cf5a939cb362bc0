package ingress

import (
	"fmt"
	"strconv"
	"strings"
)

// Annotation keys read from each Ingress.
const (
	AnnotationPrefix                 = "nginx.ingress.kubernetes.io/"
	AnnotationProxyBodySize          = AnnotationPrefix + "proxy-body-size"
	AnnotationProxyNextUpstream      = AnnotationPrefix + "proxy-next-upstream"
	AnnotationProxyNextUpstreamTries = AnnotationPrefix + "proxy-next-upstream-tries"
	annotationUseRegex               = AnnotationPrefix + "use-regex"
	annotationRewriteTarget          = AnnotationPrefix + "rewrite-target"
)

// Defaults of ingress-nginx's ConfigMap.
const (
	defaultBodySize = 1 << 20 // "1m"
	defaultTries    = 3
)

// nextUpstream is the set of conditions under which a request moves on to
// the next endpoint (nginx's proxy_next_upstream).
type nextUpstream struct {
	onError, onTimeout bool
	statuses           []int
	nonIdempotent      bool
}

func (n nextUpstream) off() bool { return !n.onError && !n.onTimeout && len(n.statuses) == 0 }

func (n nextUpstream) onStatus(code int) bool {
	for _, s := range n.statuses {
		if s == code {
			return true
		}
	}
	return false
}

var defaultNextUpstream = nextUpstream{onError: true, onTimeout: true}

// settings are the per-Ingress proxy settings its annotations choose.
type settings struct {
	bodyLimit int64 // bytes; 0 means no limit
	next      nextUpstream
	tries     int // 0 means one per endpoint
}

// parseSettings reads ing's annotations; every problem is reported
// through bad with the annotation as the field.
func parseSettings(annotations map[string]string, bad func(field, format string, args ...any)) settings {
	s := settings{bodyLimit: defaultBodySize, next: defaultNextUpstream, tries: defaultTries}
	field := func(key string) string { return "metadata.annotations[" + key + "]" }
	if v, ok := annotations[AnnotationProxyBodySize]; ok {
		n, err := parseSize(v)
		if err != nil {
			bad(field(AnnotationProxyBodySize), "%v", err)
		}
		s.bodyLimit = n
	}
	if v, ok := annotations[AnnotationProxyNextUpstream]; ok {
		n, err := parseNextUpstream(v)
		if err != nil {
			bad(field(AnnotationProxyNextUpstream), "%v", err)
		}
		s.next = n
	}
	if v, ok := annotations[AnnotationProxyNextUpstreamTries]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			bad(field(AnnotationProxyNextUpstreamTries), "%q is not a count of tries (a whole number, 0 for no limit)", v)
		}
		s.tries = n
	}
	if v, ok := annotations[annotationUseRegex]; ok && strings.TrimSpace(v) == "true" {
		bad(field(annotationUseRegex), "regular-expression paths are not supported; use Exact or Prefix paths")
	}
	if _, ok := annotations[annotationRewriteTarget]; ok {
		bad(field(annotationRewriteTarget), "path rewriting is not supported; the backend receives the request path unchanged")
	}
	return s
}

// parseSize parses an nginx size: a whole number of bytes with an
// optional k, m or g suffix (either case); "0" means no limit.
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			mult = 1 << 10
		case 'm', 'M':
			mult = 1 << 20
		case 'g', 'G':
			mult = 1 << 30
		}
		if mult != 1 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || s[0] == '+' || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size (bytes with an optional k, m or g suffix, as \"16m\")", v)
	}
	return n * mult, nil
}

// parseNextUpstream parses nginx's proxy_next_upstream value.
func parseNextUpstream(v string) (nextUpstream, error) {
	var n nextUpstream
	fields := strings.Fields(v)
	if len(fields) == 0 {
		return n, fmt.Errorf("empty value; use \"off\" to disable retries")
	}
	for _, f := range fields {
		switch f {
		case "error":
			n.onError = true
		case "timeout":
			n.onTimeout = true
		case "non_idempotent":
			n.nonIdempotent = true
		case "off":
			if len(fields) != 1 {
				return n, fmt.Errorf("%q: off cannot be combined with other conditions", v)
			}
			return nextUpstream{}, nil
		case "http_500", "http_502", "http_503", "http_504", "http_403", "http_404", "http_429":
			code, _ := strconv.Atoi(strings.TrimPrefix(f, "http_"))
			n.statuses = append(n.statuses, code)
		default:
			return n, fmt.Errorf("%q: unsupported condition %q (want error, timeout, http_500, http_502, http_503, http_504, http_403, http_404, http_429, non_idempotent or off)", v, f)
		}
	}
	return n, nil
}

package podmetrics

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// ErrUnsupportedQuery is wrapped by the errors of [ParseQuery]: the query
// is not PromQL, or uses PromQL beyond the subset evaluated here.
var ErrUnsupportedQuery = errors.New("podmetrics: unsupported query")

// Query is a parsed PromQL expression of the subset the adapter rules and
// KEDA's prometheus triggers use: an aggregation (sum, avg, min, max,
// count, with by or without) of a range function (rate, increase, irate,
// and the *_over_time family) of a selector, or of a selector itself.
// Binary operators, offsets, subqueries and other functions are rejected
// by [ParseQuery].
type Query struct {
	text string
	root node
}

// String returns the query as written.
func (q *Query) String() string { return q.text }

type node interface{ isNode() }

type matcher struct {
	name, op, value string
	re              *regexp.Regexp
}

func (m *matcher) matches(v string) bool {
	switch m.op {
	case "=":
		return v == m.value
	case "!=":
		return v != m.value
	case "=~":
		return m.re.MatchString(v)
	default: // "!~"
		return !m.re.MatchString(v)
	}
}

type selectorNode struct {
	matchers []matcher
	window   time.Duration // 0: an instant selector
}

type callNode struct {
	fn  string
	arg *selectorNode
}

type aggNode struct {
	op      string
	labels  []string
	without bool
	inner   node
}

func (*selectorNode) isNode() {}
func (*callNode) isNode()     {}
func (*aggNode) isNode()      {}

var rangeFuncs = map[string]bool{
	"rate": true, "increase": true, "irate": true,
	"avg_over_time": true, "sum_over_time": true, "min_over_time": true,
	"max_over_time": true, "count_over_time": true, "last_over_time": true,
}

var aggOps = map[string]bool{"sum": true, "avg": true, "min": true, "max": true, "count": true}

// maxQueryLen bounds the text ParseQuery accepts.
const maxQueryLen = 64 << 10

// ParseQuery parses a PromQL expression of the supported subset.
func ParseQuery(text string) (*Query, error) {
	if len(text) > maxQueryLen {
		return nil, fmt.Errorf("%w: query longer than %d bytes", ErrUnsupportedQuery, maxQueryLen)
	}
	p := &parser{src: text}
	if err := p.lex(); err != nil {
		return nil, err
	}
	root, err := p.expr(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, p.errorf("unexpected %q after the expression", p.toks[p.pos].text)
	}
	return &Query{text: text, root: root}, nil
}

// token is one lexeme of a query. Its kind is 'i' for an identifier, 's'
// for a string (text holds it unquoted), 'd' for a duration (or any word
// that starts with a digit; only a range selector takes one), 'o' for a
// label matcher's operator (text is =, !=, =~ or !~), the character itself
// for one of {}()[], and 0 past the end of the query.
type token struct {
	kind byte
	text string
	at   int // offset in the query
}

type parser struct {
	src  string
	toks []token
	pos  int
}

func (p *parser) errorf(format string, args ...any) error {
	at := len(p.src)
	if p.pos < len(p.toks) {
		at = p.toks[p.pos].at
	}
	return fmt.Errorf("%w: %s at offset %d of %q", ErrUnsupportedQuery, fmt.Sprintf(format, args...), at, p.src)
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

func (p *parser) lex() error {
	s := p.src
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(s) && isIdentPart(s[j]) {
				j++
			}
			p.toks = append(p.toks, token{kind: 'i', text: s[i:j], at: i})
			i = j
		case c >= '0' && c <= '9':
			j := i + 1
			for j < len(s) && (isIdentPart(s[j]) || s[j] == '.') {
				j++
			}
			p.toks = append(p.toks, token{kind: 'd', text: s[i:j], at: i})
			i = j
		case c == '"' || c == '\'' || c == '`':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' && c != '`' {
					j++
				}
				j++
			}
			if j >= len(s) {
				return fmt.Errorf("%w: unterminated string at offset %d of %q", ErrUnsupportedQuery, i, s)
			}
			raw := s[i : j+1]
			var v string
			var err error
			switch c {
			case '`':
				v = raw[1 : len(raw)-1]
			case '\'':
				// A single-quoted string escapes like a double-quoted one.
				v, err = strconv.Unquote(`"` + strings.ReplaceAll(strings.ReplaceAll(raw[1:len(raw)-1], `\'`, `'`), `"`, `\"`) + `"`)
			default:
				v, err = strconv.Unquote(raw)
			}
			if err != nil {
				return fmt.Errorf("%w: bad string %s at offset %d", ErrUnsupportedQuery, raw, i)
			}
			p.toks = append(p.toks, token{kind: 's', text: v, at: i})
			i = j + 1
		case c == '!' || c == '=':
			if i+1 < len(s) && (s[i+1] == '=' || s[i+1] == '~') && !(c == '=' && s[i+1] == '=') {
				p.toks = append(p.toks, token{kind: 'o', text: s[i : i+2], at: i})
				i += 2
				continue
			}
			if c == '=' {
				p.toks = append(p.toks, token{kind: 'o', text: "=", at: i})
				i++
				continue
			}
			return fmt.Errorf("%w: unexpected %q at offset %d of %q", ErrUnsupportedQuery, c, i, s)
		case strings.IndexByte("{}()[],", c) >= 0:
			p.toks = append(p.toks, token{kind: c, text: string(c), at: i})
			i++
		default:
			return fmt.Errorf("%w: unexpected %q at offset %d of %q (binary operators are not supported)", ErrUnsupportedQuery, c, i, s)
		}
	}
	return nil
}

func (p *parser) peek() token {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return token{}
}

func (p *parser) expect(kind byte) (token, error) {
	t := p.peek()
	if t.kind != kind {
		if t.kind == 0 {
			return t, p.errorf("unexpected end, want %q", kind)
		}
		return t, p.errorf("unexpected %q, want %q", t.text, kind)
	}
	p.pos++
	return t, nil
}

// maxDepth bounds nesting, so hostile input cannot exhaust the stack.
const maxDepth = 32

func (p *parser) expr(depth int) (node, error) {
	if depth > maxDepth {
		return nil, p.errorf("expression nested too deeply")
	}
	t := p.peek()
	switch {
	case t.kind == 'i' && aggOps[t.text]:
		p.pos++
		a := &aggNode{op: t.text}
		if err := p.grouping(a); err != nil {
			return nil, err
		}
		if _, err := p.expect('('); err != nil {
			return nil, err
		}
		inner, err := p.expr(depth + 1)
		if err != nil {
			return nil, err
		}
		a.inner = inner
		if _, err := p.expect(')'); err != nil {
			return nil, err
		}
		if a.labels == nil {
			if err := p.grouping(a); err != nil {
				return nil, err
			}
		}
		return a, nil
	case t.kind == 'i' && rangeFuncs[t.text]:
		p.pos++
		if _, err := p.expect('('); err != nil {
			return nil, err
		}
		sel, err := p.selector()
		if err != nil {
			return nil, err
		}
		if sel.window == 0 {
			return nil, p.errorf("%s needs a range selector such as [1m]", t.text)
		}
		if _, err := p.expect(')'); err != nil {
			return nil, err
		}
		return &callNode{fn: t.text, arg: sel}, nil
	case t.kind == 'i' && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == '(':
		return nil, p.errorf("function %q is not supported", t.text)
	case t.kind == 'i' || t.kind == '{':
		sel, err := p.selector()
		if err != nil {
			return nil, err
		}
		if sel.window != 0 {
			return nil, p.errorf("a range selector must be the argument of a function")
		}
		return sel, nil
	case t.kind == 0:
		return nil, p.errorf("empty expression")
	}
	return nil, p.errorf("unexpected %q", t.text)
}

// grouping parses an optional "by (a, b)" or "without (a)".
func (p *parser) grouping(a *aggNode) error {
	t := p.peek()
	if t.kind != 'i' || (t.text != "by" && t.text != "without") {
		return nil
	}
	p.pos++
	a.without = t.text == "without"
	a.labels = []string{}
	if _, err := p.expect('('); err != nil {
		return err
	}
	for p.peek().kind != ')' {
		l, err := p.expect('i')
		if err != nil {
			return err
		}
		a.labels = append(a.labels, l.text)
		if p.peek().kind == ',' {
			p.pos++
		}
	}
	p.pos++
	return nil
}

func (p *parser) selector() (*selectorNode, error) {
	s := &selectorNode{}
	if t := p.peek(); t.kind == 'i' {
		p.pos++
		s.matchers = append(s.matchers, matcher{name: model.MetricNameLabel, op: "=", value: t.text})
	}
	if p.peek().kind == '{' {
		p.pos++
		for p.peek().kind != '}' {
			name, err := p.expect('i')
			if err != nil {
				return nil, err
			}
			op, err := p.expect('o')
			if err != nil {
				return nil, err
			}
			val, err := p.expect('s')
			if err != nil {
				return nil, err
			}
			m := matcher{name: name.text, op: op.text, value: val.text}
			if m.op == "=~" || m.op == "!~" {
				// PromQL regexps are anchored at both ends.
				if m.re, err = regexp.Compile("^(?s:" + m.value + ")$"); err != nil {
					return nil, fmt.Errorf("%w: label %s: bad regexp %q: %w", ErrUnsupportedQuery, m.name, m.value, err)
				}
			}
			s.matchers = append(s.matchers, m)
			if p.peek().kind == ',' {
				p.pos++
			}
		}
		p.pos++
	}
	if len(s.matchers) == 0 {
		return nil, p.errorf("a selector needs a metric name or label matchers")
	}
	if p.peek().kind == '[' {
		p.pos++
		d, err := p.expect('d')
		if err != nil {
			return nil, err
		}
		w, err := model.ParseDuration(d.text)
		if err != nil || w <= 0 {
			return nil, p.errorf("bad range %q", d.text)
		}
		s.window = time.Duration(w)
		if _, err := p.expect(']'); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Point is one value of a series at one time.
type Point struct {
	T time.Time
	V float64
}

// StoredSeries is one series with its points in time order; Labels
// include __name__.
type StoredSeries struct {
	Labels map[string]string
	Points []Point
	// Stale marks a series that stopped being reported: instant
	// selectors skip it, range functions still see its points.
	Stale bool
}

// Element is one labelled value of a query's result.
type Element struct {
	Labels map[string]string
	Value  float64
}

// lookback is how far back an instant selector looks for a point, as
// Prometheus' default --query.lookback-delta.
const lookback = 5 * time.Minute

// Eval evaluates the query at now over series. An instant selector takes
// each series' latest point within the 5m lookback, skipping stale
// series. The result is sorted by labels.
func (q *Query) Eval(series []StoredSeries, now time.Time) []Element {
	out := eval(q.root, series, now)
	sort.Slice(out, func(i, j int) bool { return labelKey(out[i].Labels) < labelKey(out[j].Labels) })
	return out
}

func (s *selectorNode) matches(labels map[string]string) bool {
	for i := range s.matchers {
		if !s.matchers[i].matches(labels[s.matchers[i].name]) {
			return false
		}
	}
	return true
}

func eval(n node, series []StoredSeries, now time.Time) []Element {
	switch n := n.(type) {
	case *selectorNode:
		var out []Element
		for _, s := range series {
			if s.Stale || len(s.Points) == 0 || !n.matches(s.Labels) {
				continue
			}
			last := s.Points[len(s.Points)-1]
			if last.T.After(now) || !last.T.After(now.Add(-lookback)) {
				continue
			}
			out = append(out, Element{Labels: s.Labels, Value: last.V})
		}
		return out
	case *callNode:
		var out []Element
		for _, s := range series {
			if !n.arg.matches(s.Labels) {
				continue
			}
			var pts []Point
			for _, p := range s.Points {
				if p.T.After(now.Add(-n.arg.window)) && !p.T.After(now) {
					pts = append(pts, p)
				}
			}
			v, ok := rangeFunc(n.fn, pts, now.Add(-n.arg.window), now)
			if !ok {
				continue
			}
			out = append(out, Element{Labels: dropName(s.Labels), Value: v})
		}
		return out
	case *aggNode:
		return aggregate(n, eval(n.inner, series, now))
	}
	return nil
}

func dropName(l map[string]string) map[string]string {
	out := make(map[string]string, len(l))
	for k, v := range l {
		if k != model.MetricNameLabel {
			out[k] = v
		}
	}
	return out
}

func rangeFunc(fn string, pts []Point, start, end time.Time) (float64, bool) {
	if len(pts) == 0 {
		return 0, false
	}
	switch fn {
	case "rate", "increase":
		return extrapolatedRate(pts, start, end, fn == "rate")
	case "irate":
		if len(pts) < 2 {
			return 0, false
		}
		a, b := pts[len(pts)-2], pts[len(pts)-1]
		dt := b.T.Sub(a.T).Seconds()
		if dt <= 0 {
			return 0, false
		}
		return increase(a.V, b.V) / dt, true
	case "avg_over_time", "sum_over_time":
		sum := 0.0
		for _, p := range pts {
			sum += p.V
		}
		if fn == "sum_over_time" {
			return sum, true
		}
		return sum / float64(len(pts)), true
	case "min_over_time", "max_over_time":
		v := pts[0].V
		for _, p := range pts[1:] {
			if (fn == "min_over_time" && p.V < v) || (fn == "max_over_time" && p.V > v) {
				v = p.V
			}
		}
		return v, true
	case "count_over_time":
		return float64(len(pts)), true
	default: // last_over_time
		return pts[len(pts)-1].V, true
	}
}

// extrapolatedRate is Prometheus' rate and increase: the increase between
// the first and last point in the window, corrected for counter resets,
// extrapolated towards the window's edges (by at most half a sampling
// interval where the series starts or ends inside the window, and never
// below zero), per second for rate.
func extrapolatedRate(pts []Point, start, end time.Time, perSecond bool) (float64, bool) {
	if len(pts) < 2 {
		return 0, false
	}
	first, last := pts[0], pts[len(pts)-1]
	result := last.V - first.V
	prev := first.V
	for _, p := range pts[1:] {
		if p.V < prev {
			result += prev
		}
		prev = p.V
	}
	sampled := last.T.Sub(first.T).Seconds()
	if sampled <= 0 {
		return 0, false
	}
	toStart := first.T.Sub(start).Seconds()
	toEnd := end.Sub(last.T).Seconds()
	avgStep := sampled / float64(len(pts)-1)
	if result > 0 && first.V >= 0 {
		if toZero := sampled * (first.V / result); toZero < toStart {
			toStart = toZero
		}
	}
	threshold := avgStep * 1.1
	interval := sampled
	if toStart < threshold {
		interval += toStart
	} else {
		interval += avgStep / 2
	}
	if toEnd < threshold {
		interval += toEnd
	} else {
		interval += avgStep / 2
	}
	result *= interval / sampled
	if perSecond {
		result /= end.Sub(start).Seconds()
	}
	return result, true
}

func aggregate(a *aggNode, in []Element) []Element {
	type group struct {
		labels map[string]string
		sum    float64
		min    float64
		max    float64
		n      int
	}
	groups := map[string]*group{}
	var order []string
	for _, e := range in {
		labels := map[string]string{}
		if a.without {
			drop := map[string]bool{model.MetricNameLabel: true}
			for _, l := range a.labels {
				drop[l] = true
			}
			for k, v := range e.Labels {
				if !drop[k] {
					labels[k] = v
				}
			}
		} else {
			for _, l := range a.labels {
				if v, ok := e.Labels[l]; ok && v != "" {
					labels[l] = v
				}
			}
		}
		key := labelKey(labels)
		g, ok := groups[key]
		if !ok {
			g = &group{labels: labels, min: math.Inf(1), max: math.Inf(-1)}
			groups[key] = g
			order = append(order, key)
		}
		g.sum += e.Value
		g.min = math.Min(g.min, e.Value)
		g.max = math.Max(g.max, e.Value)
		g.n++
	}
	out := make([]Element, 0, len(order))
	for _, k := range order {
		g := groups[k]
		v := g.sum
		switch a.op {
		case "avg":
			v = g.sum / float64(g.n)
		case "min":
			v = g.min
		case "max":
			v = g.max
		case "count":
			v = float64(g.n)
		}
		out = append(out, Element{Labels: g.labels, Value: v})
	}
	return out
}

func labelKey(l map[string]string) string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(l[k])
		b.WriteByte(0)
	}
	return b.String()
}

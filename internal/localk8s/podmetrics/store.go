package podmetrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// ErrLimit is wrapped when a scrape is refused because keeping it would
// break one of the store's bounds: too many series in one scrape, a label
// value too long, too many labels, or no room left in the memory budget.
// As Prometheus does for a scrape over its sample_limit, the whole scrape
// is dropped and the pod's earlier series are marked stale.
var ErrLimit = errors.New("podmetrics: scrape over a limit")

// Defaults of [DirectConfig]'s bounds.
const (
	defaultRetention      = 10 * time.Minute
	defaultScrapeInterval = 2 * time.Second
	defaultMaxBytes       = 64 << 20
	defaultSampleLimit    = 10_000
	defaultLabelLimit     = 64
	defaultLabelValueLen  = 2048
)

// seriesOverhead is what a series costs beyond its labels and samples:
// the struct, its place in the map and in its target's list, with room.
const seriesOverhead = 384

// sampleBytes is the size of one kept sample.
const sampleBytes = 16

// store is a bounded in-memory time-series store: each series keeps its
// samples in a ring sized for the retention at the scrape interval, and
// the whole store is charged every series' full ring up front, so its
// memory stays within maxBytes whatever the targets expose.
type store struct {
	retention   int64 // ms
	ringSize    int
	maxBytes    int
	sampleLimit int
	labelLimit  int
	valueLen    int

	mu      sync.RWMutex
	series  map[uint64][]*memSeries // by labels hash
	targets map[podKey]*target
	bytes   int   // charged
	newest  int64 // latest sample time, ms
	lastGC  int64
}

type podKey struct{ namespace, pod string }

// target is what a pod's latest scrape reported, so the next one can
// mark the series it no longer reports stale.
type target struct {
	last   int64
	series []*memSeries
}

type sample struct {
	t int64
	v float64
}

// memSeries is one series: a ring of samples in time order.
type memSeries struct {
	lset labels.Labels
	hash uint64
	cost int
	buf  []sample
	head int // index of the oldest sample
	n    int
}

func (s *memSeries) at(i int) sample { return s.buf[(s.head+i)%len(s.buf)] }

func (s *memSeries) append(smp sample, ringSize int) {
	if s.n > 0 && smp.t <= s.at(s.n-1).t {
		return // out of order, as the TSDB refuses it
	}
	if s.n == len(s.buf) {
		if len(s.buf) >= ringSize {
			s.buf[s.head] = smp // full: the oldest goes
			s.head = (s.head + 1) % len(s.buf)
			return
		}
		grown := make([]sample, min(ringSize, max(8, 2*len(s.buf))))
		for i := range s.n {
			grown[i] = s.at(i)
		}
		s.buf, s.head = grown, 0
	}
	s.buf[(s.head+s.n)%len(s.buf)] = smp
	s.n++
}

// trim drops the samples before mint.
func (s *memSeries) trim(mint int64) {
	for s.n > 0 && s.at(0).t < mint {
		s.head = (s.head + 1) % len(s.buf)
		s.n--
	}
}

// between copies the samples in [mint, maxt].
func (s *memSeries) between(mint, maxt int64) []sample {
	lo := sort.Search(s.n, func(i int) bool { return s.at(i).t >= mint })
	var out []sample
	for i := lo; i < s.n; i++ {
		smp := s.at(i)
		if smp.t > maxt {
			break
		}
		out = append(out, smp)
	}
	return out
}

func newStore(cfg DirectConfig) *store {
	return &store{
		retention:   cfg.Retention.Milliseconds(),
		ringSize:    int(cfg.Retention/cfg.ScrapeInterval) + 2,
		maxBytes:    cfg.MaxBytes,
		sampleLimit: cfg.SampleLimit,
		labelLimit:  cfg.LabelLimit,
		valueLen:    cfg.LabelValueLengthLimit,
		series:      map[uint64][]*memSeries{},
		targets:     map[podKey]*target{},
	}
}

// cost is what a series of these labels is charged: its ring and its
// labels, each with the eighth the allocator may round a block up by.
func (st *store) cost(lset labels.Labels) int {
	l := 0
	lset.Range(func(lb labels.Label) { l += len(lb.Name) + len(lb.Value) + 4 })
	return seriesOverhead + (st.ringSize*sampleBytes+l)*9/8
}

func (st *store) lookup(lset labels.Labels, hash uint64) *memSeries {
	for _, s := range st.series[hash] {
		if labels.Equal(s.lset, lset) {
			return s
		}
	}
	return nil
}

// targetLabels builds a scraped series' labels as Prometheus stores them
// for a target labelled namespace and pod: scraped labels of those names
// are kept as exported_namespace and exported_pod (honor_labels: false).
func targetLabels(b *labels.ScratchBuilder, k podKey, s Series) labels.Labels {
	b.Reset()
	for name, v := range s.Labels {
		if name == "namespace" || name == "pod" {
			name = "exported_" + name
		}
		b.Add(name, v)
	}
	b.Add(model.MetricNameLabel, s.Name)
	b.Add("namespace", k.namespace)
	b.Add("pod", k.pod)
	b.Sort()
	return b.Labels()
}

// record adds one scrape of a pod taken at t (ms).
func (st *store) record(k podKey, t int64, series []Series) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	tg := st.targets[k]
	if tg != nil && t <= tg.last {
		return nil // not newer than the pod's latest scrape
	}
	if err := st.check(k, series); err != nil {
		st.markStale(tg, t)
		delete(st.targets, k)
		return err
	}
	var b labels.ScratchBuilder
	cur := make([]*memSeries, 0, len(series))
	added := 0
	fresh := map[uint64][]*memSeries{}
	for _, s := range series {
		lset := targetLabels(&b, k, s)
		h := lset.Hash()
		ms := st.lookup(lset, h)
		if ms == nil {
			for _, f := range fresh[h] {
				if labels.Equal(f.lset, lset) {
					ms = f
				}
			}
		}
		if ms == nil {
			ms = &memSeries{lset: lset, hash: h, cost: st.cost(lset)}
			fresh[h] = append(fresh[h], ms)
			added += ms.cost
		}
		cur = append(cur, ms)
	}
	if st.bytes+added > st.maxBytes {
		st.markStale(tg, t)
		delete(st.targets, k)
		return fmt.Errorf("%w: %s/%s: its %d new series need %d bytes, %d of the %d-byte budget are in use",
			ErrLimit, k.namespace, k.pod, countSeries(fresh), added, st.bytes, st.maxBytes)
	}
	for h, list := range fresh {
		st.series[h] = append(st.series[h], list...)
	}
	st.bytes += added
	seen := make(map[*memSeries]bool, len(cur))
	uniq := make([]*memSeries, 0, len(cur))
	for i, ms := range cur {
		if seen[ms] {
			continue // a duplicate in the exposition: the first sample wins
		}
		seen[ms] = true
		uniq = append(uniq, ms)
		ms.append(sample{t, series[i].Value}, st.ringSize)
	}
	if tg != nil {
		for _, ms := range tg.series {
			if !seen[ms] {
				ms.append(sample{t, math.Float64frombits(value.StaleNaN)}, st.ringSize)
			}
		}
	} else {
		tg = &target{}
		st.targets[k] = tg
	}
	tg.last = t
	tg.series = uniq
	st.advance(t)
	return nil
}

func countSeries(m map[uint64][]*memSeries) int {
	n := 0
	for _, l := range m {
		n += len(l)
	}
	return n
}

// check applies the per-scrape limits.
func (st *store) check(k podKey, series []Series) error {
	if len(series) > st.sampleLimit {
		return fmt.Errorf("%w: %s/%s exposes %d series, over the limit of %d", ErrLimit, k.namespace, k.pod, len(series), st.sampleLimit)
	}
	for _, s := range series {
		if len(s.Labels)+3 > st.labelLimit {
			return fmt.Errorf("%w: %s/%s: series %.100q has %d labels, over the limit of %d", ErrLimit, k.namespace, k.pod, s.Name, len(s.Labels)+3, st.labelLimit)
		}
		if len(s.Name) > st.valueLen {
			return fmt.Errorf("%w: %s/%s: a series name of %d bytes is over the limit of %d", ErrLimit, k.namespace, k.pod, len(s.Name), st.valueLen)
		}
		for name, v := range s.Labels {
			if len(v) > st.valueLen || len(name) > st.valueLen {
				return fmt.Errorf("%w: %s/%s: series %.100q label %.100q: %d bytes, over the limit of %d", ErrLimit, k.namespace, k.pod, s.Name, name, max(len(v), len(name)), st.valueLen)
			}
		}
	}
	return nil
}

// markStale appends a staleness marker at t to every series of tg, as
// Prometheus does when a target stops reporting them.
func (st *store) markStale(tg *target, t int64) {
	if tg == nil {
		return
	}
	for _, ms := range tg.series {
		ms.append(sample{t, math.Float64frombits(value.StaleNaN)}, st.ringSize)
	}
}

// forget marks a pod's series stale at t and stops tracking the pod; its
// samples stay until they are older than the retention, as in Prometheus.
func (st *store) forget(k podKey, t int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	tg := st.targets[k]
	if tg == nil {
		return
	}
	st.markStale(tg, max(t, tg.last+1))
	delete(st.targets, k)
}

// advance moves the store's clock to t and, at most every tenth of the
// retention, drops samples older than the retention and series left
// without samples, giving their charge back.
func (st *store) advance(t int64) {
	st.newest = max(st.newest, t)
	if st.newest-st.lastGC < st.retention/10 {
		return
	}
	st.lastGC = st.newest
	mint := st.newest - st.retention
	for h, list := range st.series {
		kept := list[:0]
		for _, ms := range list {
			ms.trim(mint)
			if ms.n > 0 {
				kept = append(kept, ms)
			} else {
				st.bytes -= ms.cost
			}
		}
		if len(kept) == 0 {
			delete(st.series, h)
		} else {
			st.series[h] = kept
		}
	}
}

// usage reports the series kept and the bytes charged for them.
func (st *store) usage() (series, bytes int) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	for _, l := range st.series {
		series += len(l)
	}
	return series, st.bytes
}

// querier reads the store for the engine. Select copies what it returns,
// so a query sees one consistent state while scrapes go on.
type querier struct {
	st         *store
	mint, maxt int64
}

var _ storage.Querier = (*querier)(nil)

func (q *querier) matching(ms []*labels.Matcher, fn func(*memSeries)) {
	for _, list := range q.st.series {
	next:
		for _, s := range list {
			for _, m := range ms {
				if !m.Matches(s.lset.Get(m.Name)) {
					continue next
				}
			}
			fn(s)
		}
	}
}

func (q *querier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if err := ctx.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	mint, maxt := q.mint, q.maxt
	if hints != nil {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	q.st.mu.RLock()
	var out []*listSeries
	q.matching(ms, func(s *memSeries) {
		if smp := s.between(mint, maxt); len(smp) > 0 {
			out = append(out, &listSeries{lset: s.lset, samples: smp})
		}
	})
	q.st.mu.RUnlock()
	if sortSeries {
		slices.SortFunc(out, func(a, b *listSeries) int { return labels.Compare(a.lset, b.lset) })
	}
	return &seriesSet{list: out, i: -1}
}

func (q *querier) LabelValues(ctx context.Context, name string, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	q.st.mu.RLock()
	q.matching(ms, func(s *memSeries) {
		if v := s.lset.Get(name); v != "" {
			seen[v] = true
		}
	})
	q.st.mu.RUnlock()
	return sortedKeys(seen), nil, ctx.Err()
}

func (q *querier) LabelNames(ctx context.Context, _ *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	seen := map[string]bool{}
	q.st.mu.RLock()
	q.matching(ms, func(s *memSeries) {
		s.lset.Range(func(l labels.Label) { seen[l.Name] = true })
	})
	q.st.mu.RUnlock()
	return sortedKeys(seen), nil, ctx.Err()
}

func (q *querier) Close() error { return nil }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type listSeries struct {
	lset    labels.Labels
	samples []sample
}

func (s *listSeries) Labels() labels.Labels { return s.lset }

func (s *listSeries) Iterator(chunkenc.Iterator) chunkenc.Iterator {
	return storage.NewListSeriesIterator(sampleList(s.samples))
}

type seriesSet struct {
	list []*listSeries
	i    int
}

func (s *seriesSet) Next() bool                        { s.i++; return s.i < len(s.list) }
func (s *seriesSet) At() storage.Series                { return s.list[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

// sampleList hands Prometheus' list iterator pointers into the copied
// samples, which allocates nothing per sample.
type sampleList []sample

func (l sampleList) Get(i int) chunks.Sample { return &l[i] }
func (l sampleList) Len() int                { return len(l) }

var _ chunks.Sample = (*sample)(nil)

func (s *sample) T() int64                      { return s.t }
func (s *sample) ST() int64                     { return 0 }
func (s *sample) F() float64                    { return s.v }
func (s *sample) H() *histogram.Histogram       { return nil }
func (s *sample) FH() *histogram.FloatHistogram { return nil }
func (s *sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s *sample) Copy() chunks.Sample           { c := *s; return &c }

// keyOf renders labels as a stable key, for tests and results.
func keyOf(l map[string]string) string {
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

package podmetrics_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s/podmetrics"
)

// hostile returns an exposition of n gauges, each with a label value of
// valueLen bytes.
func hostile(n, valueLen int) string {
	var b strings.Builder
	pad := strings.Repeat("v", valueLen)
	for i := range n {
		fmt.Fprintf(&b, "evil_gauge{id=\"%d\",junk=\"%s\"} %d\n", i, pad[:max(0, valueLen-len(fmt.Sprint(i)))]+fmt.Sprint(i), i)
	}
	return b.String()
}

func TestRecordLimits(t *testing.T) {
	tests := []struct {
		name string
		cfg  podmetrics.DirectConfig
		text string
		want string // in the error
	}{
		{name: "too many series in a scrape", cfg: podmetrics.DirectConfig{SampleLimit: 100}, text: hostile(101, 1), want: "exposes 102 series, over the limit of 100"},
		{name: "label value too long", cfg: podmetrics.DirectConfig{LabelValueLengthLimit: 64}, text: hostile(1, 65), want: `label "junk": 65 bytes, over the limit of 64`},
		{name: "too many labels", cfg: podmetrics.DirectConfig{LabelLimit: 4}, text: hostile(1, 1), want: "has 5 labels, over the limit of 4"},
		{name: "memory budget", cfg: podmetrics.DirectConfig{MaxBytes: 1 << 20}, text: hostile(1000, 100), want: "byte budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := epoch
			tt.cfg.Now = func() time.Time { return now }
			d, err := podmetrics.NewDirect(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			record(t, d, "good", epoch, "up 1\n")
			record(t, d, "evil", epoch, "up 1\n")
			now = epoch.Add(2 * time.Second)
			s, err := podmetrics.Parse(strings.NewReader("up 1\n"+tt.text), now)
			if err != nil {
				t.Fatal(err)
			}
			err = d.Record("shoal", "evil", s)
			if !errors.Is(err, podmetrics.ErrLimit) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "shoal/evil") {
				t.Fatalf("Record = %v, want ErrLimit naming shoal/evil and %q", err, tt.want)
			}
			// The refused scrape left nothing, and made the pod's series
			// stale; the other pod is untouched.
			els, err := d.Eval(context.Background(), `up or evil_gauge`)
			if err != nil {
				t.Fatal(err)
			}
			if got := render(els); got != "{__name__=up,namespace=shoal,pod=good} 1" {
				t.Errorf("after the refused scrape: %s", got)
			}
		})
	}
	if _, err := podmetrics.NewDirect(podmetrics.DirectConfig{MaxBytes: -1}); err == nil || !strings.Contains(err.Error(), "negative max bytes") {
		t.Errorf("NewDirect with a negative bound = %v", err)
	}
}

// TestHostileTargetMemory lets hostile pods (hundreds of series each with
// 2 KiB label values, scraped until every ring is full) fill the store,
// and checks that its heap stays within MaxBytes and that room comes back
// once a forgotten pod's samples age out.
func TestHostileTargetMemory(t *testing.T) {
	const budget = 4 << 20
	now := epoch
	samples := map[int]podmetrics.Sample{}
	for p := range 6 {
		s, err := podmetrics.Parse(strings.NewReader(hostile(300, 2000)+fmt.Sprintf("pod_id %d\n", p)), epoch)
		if err != nil {
			t.Fatal(err)
		}
		samples[p] = s
	}
	before := heap()
	d, err := podmetrics.NewDirect(podmetrics.DirectConfig{MaxBytes: budget, ScrapeInterval: 10 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	refused := 0
	for i := range 70 { // past the 62 samples a ring holds at 10s over 10m
		now = epoch.Add(time.Duration(i) * 10 * time.Second)
		for p := range 6 {
			s := samples[p]
			s.Time = now
			if err := d.Record("shoal", fmt.Sprintf("evil-%d", p), s); errors.Is(err, podmetrics.ErrLimit) {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
	}
	series, charged := d.Usage()
	grown := heap() - before
	t.Logf("%d series kept, %d bytes charged, heap grew %d bytes (budget %d); %d scrapes refused", series, charged, grown, budget, refused)
	// The engine and the store's maps are not charged: half a MiB.
	if charged > budget || grown > budget || grown > charged+512<<10 {
		t.Errorf("%d bytes charged, heap grew %d bytes: over the charge or the %d-byte budget", charged, grown, budget)
	}
	if refused == 0 || charged < budget/2 {
		t.Fatalf("%d series kept, %d scrapes refused: the budget was not reached", series, refused)
	}
	v, err := d.Query(context.Background(), `count(count_over_time(evil_gauge[10m]))`)
	if want := series - series/301; err != nil || int(v) != want { // each pod's pod_id aside
		t.Errorf("series queryable = %v, %v; want %d", v, err, want)
	}
	// A pod that goes frees its charge once its samples are older than
	// the retention; then another fits.
	d.Forget("shoal", "evil-0")
	for i := range 65 {
		now = now.Add(10 * time.Second)
		_ = d.Record("shoal", "evil-1", podmetrics.Sample{Time: now, Series: samples[1].Series})
		if i == 64 {
			if err := d.Record("shoal", "evil-5", podmetrics.Sample{Time: now, Series: samples[5].Series}); err != nil {
				t.Errorf("after evil-0 aged out: %v", err)
			}
		}
	}
	runtime.KeepAlive(d)
}

func heap() int {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int(m.HeapAlloc)
}

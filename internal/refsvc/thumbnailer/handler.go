package thumbnailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/refsvc/httperr"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/shed"
)

// DigestHeader carries, on every response that got as far as reading the
// image, the hex SHA-256 of the source image: the key its result is cached
// under. It is set for clients to inspect and never read from requests;
// callers that balance by digest (the gallery) send the same digest in
// balancer.DefaultKeyHeader.
const DigestHeader = "X-Content-Digest"

// Defaults of [Config].
const (
	DefaultMaxBodyBytes = 10 << 20
	DefaultCacheBytes   = 32 << 20
	DefaultMemoryLimit  = 1 << 30
	DefaultWriteStall   = 10 * time.Second
)

// runtimeReserve is the memory left out of the budgets for the runtime,
// goroutine stacks, connection buffers and metrics.
const runtimeReserve = 16 << 20

// Config configures the API. The zero value is valid: a zero field means
// its default. Negative numbers are invalid except where a field says what
// they mean.
type Config struct {
	// MaxBodyBytes bounds the uploaded image. Zero means
	// DefaultMaxBodyBytes (10 MiB).
	MaxBodyBytes int64
	// MaxPixels bounds the decoded image. Zero means
	// thumbnail.DefaultMaxPixels (40 megapixels).
	MaxPixels int
	// CacheBytes bounds the LRU of results. Zero means DefaultCacheBytes
	// (32 MiB); negative disables the cache.
	CacheBytes int
	// MemoryLimit is the memory the process may use, in bytes: the
	// container's limit (the service's MEMORY_LIMIT). The API budgets requests from it
	// so that, however many arrive, what they hold fits: half of it, less
	// CacheBytes and 16 MiB for the runtime (the other half is the
	// collector's room: garbage not yet collected or returned to the OS
	// took peak RSS to 1.7 times the live bytes under the chaos suite's
	// bombs at three quarters). Of that, a quarter holds uploads being
	// read, a quarter the results being written to clients (a cached
	// one too: it may be evicted while it is written), and half the
	// images being decoded, resized and encoded, each counted from its
	// header by thumbnail.Need. A request needing more than its whole
	// budget gets 413. Zero means DefaultMemoryLimit (1 GiB). The API
	// does not read the environment: the service finds the limit and
	// passes it.
	MemoryLimit int64
	// MemoryWait is how long a request waits for its share of a budget
	// before it is answered 503 with Retry-After. A result waiting for
	// the results budget lets go of its image's memory first when the
	// cache holds it, and whoever holds results memory is writing, not
	// waiting for more, so no wait holds memory another wait needs.
	// Zero means shed.DefaultBudgetWait (5s); negative means no wait.
	MemoryWait time.Duration
	// WriteStall bounds how long a result's client may take to accept
	// each next 64 KiB of it: one that stops reading is cut off once the
	// socket's buffers are full and WriteStall has passed, releasing the
	// result's memory, rather than holding it until the server's write
	// timeout. A result that finds the results budget spent cuts off,
	// sooner, clients that have taken nothing for a second. The response
	// as a whole must end within server.DefaultWriteTimeout (60s, the
	// service's server's) of the request. Zero means DefaultWriteStall
	// (10s); negative means no bound but those.
	WriteStall time.Duration
	// Logger receives one line per failed request. Nil means slog.Default().
	Logger *slog.Logger
}

// API serves the thumbnailer's routes.
type API struct {
	cfg     Config
	log     *slog.Logger
	cache   *thumbnail.Cache
	uploads *shed.Budget // bytes of bodies being read or held
	images  *shed.Budget // thumbnail.Need of images being made
	results *results     // bytes of results being written
	hits    prometheus.Counter
	misses  prometheus.Counter
}

// withDefaults returns c with every zero field that has a default set to
// it.
func (c Config) withDefaults() Config {
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxPixels == 0 {
		c.MaxPixels = thumbnail.DefaultMaxPixels
	}
	if c.CacheBytes == 0 {
		c.CacheBytes = DefaultCacheBytes
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = DefaultMemoryLimit
	}
	if c.WriteStall == 0 {
		c.WriteStall = DefaultWriteStall
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first invalid field by name.
func (c Config) Validate() error {
	switch {
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("thumbnailer: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.MaxPixels < 0:
		return fmt.Errorf("thumbnailer: MaxPixels %d is negative", c.MaxPixels)
	case c.MemoryLimit < 0:
		return fmt.Errorf("thumbnailer: MemoryLimit %d is negative", c.MemoryLimit)
	}
	d := c.withDefaults()
	if uploads, _, _ := d.budgets(); uploads < 2*d.MaxBodyBytes {
		return fmt.Errorf("thumbnailer: MemoryLimit %d leaves %d bytes for uploads, less than two of MaxBodyBytes %d",
			d.MemoryLimit, uploads, d.MaxBodyBytes)
	}
	return nil
}

// budgets splits the memory limit of a defaulted c into the bytes
// uploads, images being made and results being written may hold at once.
func (c Config) budgets() (uploads, images, results int64) {
	usable := c.MemoryLimit/2 - int64(max(c.CacheBytes, 0)) - runtimeReserve
	uploads, results = usable/4, usable/4
	return uploads, usable - uploads - results, results
}

// New returns the API, registering its cache metrics on reg. Its errors
// are [Config.Validate]'s and the registry's.
func New(cfg Config, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "thumbnailer_cache_lookups_total",
		Help: "Thumbnail cache lookups by result (hit or miss).",
	}, []string{"result"})
	if err := reg.Register(lookups); err != nil {
		return nil, fmt.Errorf("thumbnailer: registering cache metrics: %w", err)
	}
	uploadBytes, imageBytes, resultBytes := cfg.budgets()
	uploads, err := shed.NewBudget(uploadBytes, cfg.MemoryWait)
	if err != nil {
		return nil, fmt.Errorf("thumbnailer: %w", err)
	}
	images, err := shed.NewBudget(imageBytes, cfg.MemoryWait)
	if err != nil {
		return nil, fmt.Errorf("thumbnailer: %w", err)
	}
	results := newResults(resultBytes, cfg.MemoryWait)
	return &API{
		cfg:     cfg,
		log:     cfg.Logger,
		uploads: uploads,
		images:  images,
		results: results,
		cache:   thumbnail.NewCache(cfg.CacheBytes),
		hits:    lookups.WithLabelValues("hit"),
		misses:  lookups.WithLabelValues("miss"),
	}, nil
}

// Register adds the API's routes to mux: a *service.Service, or an
// *http.ServeMux in tests.
func (a *API) Register(mux interface{ Handle(string, http.Handler) }) {
	mux.Handle("POST /v1/thumbnails", http.HandlerFunc(a.thumbnail))
}

func (a *API) thumbnail(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	q := r.URL.Query()
	opts, err := thumbnail.ParseOptions(q.Get("width"), q.Get("height"), q.Get("fit"))
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	ctx := r.Context()
	// Uploads, images and results wait for memory in that order, never
	// the other way round, and a result's memory is held while writing
	// to the client, never while waiting for more: holding the one while
	// waiting for the next cannot deadlock.
	body, releaseBody, err := a.uploads.ReadAllEvictable(ctx, http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), r.ContentLength, shed.StopBody(w))
	if err := budgetError(ctx, "uploads", err); err != nil {
		a.answerFailure(w, r, err)
		return
	}
	if err != nil {
		// The error's text names the sockets: it goes to the log only.
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "thumbnail request rejected: reading body", slog.String("error", err.Error()))
		httperr.WriteBodyError(w, "image", err)
		return
	}
	defer releaseBody()
	key := thumbnail.Key{Digest: thumbnail.Digest(body), Options: opts}
	w.Header().Set(DigestHeader, key.Digest)
	m, err := a.produce(ctx, key, body)
	if err != nil {
		a.answerFailure(w, r, err)
		return
	}
	// Only the result is left, and a client that does not read holds its
	// bytes in the results budget, not an upload's.
	releaseBody()
	rw, e, err := a.holdResult(ctx, http.NewResponseController(w), key, m)
	if err != nil {
		a.answerFailure(w, r, err)
		return
	}
	a.write(w, r, rw, e, m.cacheLabel(), start)
}

// made is a thumbnail [API.produce] has ready: in the cache (hit), or
// made now and held in the images budget until its result's memory is
// held instead.
type made struct {
	hit          bool
	size         int             // bytes of the result
	entry        thumbnail.Entry // the result, on a miss
	releaseImage func()          // on a miss; safe to call more than once
}

func (m made) cacheLabel() string {
	if m.hit {
		return "hit"
	}
	return "miss"
}

// produce is the part of a request both APIs share once the image is
// read, and held in the uploads budget, as body: it answers from the
// cache when it can; otherwise it reads the image's header, holds what
// thumbnail.Need says decoding and resizing take in the images budget,
// and makes the thumbnail within ctx, adding it to the cache. Its errors
// are *failure values.
func (a *API) produce(ctx context.Context, key thumbnail.Key, body []byte) (made, error) {
	if e, ok := a.cache.Get(key); ok {
		a.hits.Inc()
		return made{hit: true, size: len(e.Data)}, nil
	}
	a.misses.Inc()
	hd, err := thumbnail.ReadHeader(body)
	if err != nil {
		return made{}, &failure{failBadRequest, err}
	}
	lim := thumbnail.Limits{MaxPixels: a.cfg.MaxPixels}
	if err := lim.Check(hd.Width, hd.Height); err != nil {
		return made{}, imageFailure(err)
	}
	releaseImage, err := a.images.Acquire(ctx, thumbnail.Need(hd, key.Options))
	if err := budgetError(ctx, "images", err); err != nil {
		return made{}, err
	}
	out, ct, err := thumbnail.Make(ctx, body, key.Options, lim)
	if cause := context.Cause(ctx); cause != nil && err != nil {
		// The caller left and the work stopped; nobody reads an answer.
		releaseImage()
		return made{}, &failure{failGone, cause}
	}
	if err != nil {
		releaseImage()
		return made{}, imageFailure(err)
	}
	e := thumbnail.Entry{Data: out, ContentType: ct}
	a.cache.Add(key, e)
	return made{size: len(out), entry: e, releaseImage: releaseImage}, nil
}

// holdResult holds the memory of m's result in the results budget and
// returns the result, written through rc (nil when the transport writes
// it; such a writer is never cut off) and released with a.results.release.
// A miss holds its image's memory only as long as it must: it takes the
// results memory at once if it can; else, when the cache holds the
// result, it lets the image go and waits holding nothing, as a hit does
// (the cache may drop the result meanwhile: the caller is asked to
// retry); only a result too large to be cached waits holding its image.
func (a *API) holdResult(ctx context.Context, rc *http.ResponseController, key thumbnail.Key, m made) (*resultWriter, thumbnail.Entry, error) {
	if !m.hit {
		if rw, err := a.results.acquire(ctx, rc, int64(m.size), 0); err == nil {
			m.releaseImage()
			return rw, m.entry, nil
		}
		if m.size > a.cfg.CacheBytes {
			defer m.releaseImage()
			rw, err := a.results.acquire(ctx, rc, int64(m.size), a.results.wait)
			if err := budgetError(ctx, "results", err); err != nil {
				return nil, thumbnail.Entry{}, err
			}
			return rw, m.entry, nil
		}
		m.releaseImage()
	}
	rw, err := a.results.acquire(ctx, rc, int64(m.size), a.results.wait)
	if err := budgetError(ctx, "results", err); err != nil {
		return nil, thumbnail.Entry{}, err
	}
	e, ok := a.cache.Get(key)
	if !ok || len(e.Data) != m.size {
		a.results.release(rw)
		return nil, thumbnail.Entry{}, &failure{failBusy, errors.New("thumbnailer: the result left the cache while it waited for memory, retry later")}
	}
	return rw, e, nil
}

// StatusClientClosed is the status recorded for a request whose client
// left before its answer was ready (as nginx records it); nobody reads it.
const StatusClientClosed = 499

// failKind is what a failure says about the request, which each API
// answers in its own terms.
type failKind int

const (
	failBadRequest failKind = iota // the options or the image are wrong: 400, INVALID_ARGUMENT
	failTooLarge                   // more than this replica takes at all: 413, RESOURCE_EXHAUSTED
	failBusy                       // memory stayed in use: 503 + Retry-After, UNAVAILABLE + pushback
	failGone                       // the caller left: 499, its context's code
)

// failure is why a request got no thumbnail. Its message is for the
// caller: it describes the request, never the process.
type failure struct {
	kind failKind
	err  error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// imageFailure classifies the thumbnail package's errors.
func imageFailure(err error) error {
	if errors.Is(err, thumbnail.ErrTooLarge) {
		return &failure{failTooLarge, err}
	}
	return &failure{failBadRequest, err}
}

// budgetError turns an error of a budget's Acquire or ReadAll, made
// within ctx, into a *failure, or returns nil for nil and for a
// ReadAll's error reading the body: more than the whole budget is too
// large, a budget that stayed exhausted for MemoryWait is busy, and a
// wait ended with ctx is the caller gone.
func budgetError(ctx context.Context, budget string, err error) error {
	switch {
	case errors.Is(err, shed.ErrOverBudget):
		return &failure{failTooLarge, fmt.Errorf("thumbnailer: the image needs more memory than this replica's %s budget allows", budget)}
	case errors.Is(err, shed.ErrBusy):
		return &failure{failBusy, fmt.Errorf("thumbnailer: memory for %s is in use, retry later", budget)}
	case err != nil && errors.Is(err, context.Cause(ctx)):
		return &failure{failGone, err}
	}
	return nil
}

// answerFailure answers err, a *failure, over HTTP.
func (a *API) answerFailure(w http.ResponseWriter, r *http.Request, err error) {
	var f *failure
	if !errors.As(err, &f) {
		a.fail(w, r, http.StatusInternalServerError, errors.New("thumbnailer: internal error"))
		return
	}
	switch f.kind {
	case failBadRequest:
		a.fail(w, r, http.StatusBadRequest, f)
	case failTooLarge:
		a.fail(w, r, http.StatusRequestEntityTooLarge, f)
	case failBusy:
		w.Header().Set("Retry-After", "1")
		a.fail(w, r, http.StatusServiceUnavailable, f)
	case failGone:
		w.WriteHeader(StatusClientClosed)
	}
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "thumbnail request rejected",
		slog.Int("status", code), slog.String("error", err.Error()))
	httperr.Write(w, code, err.Error())
}

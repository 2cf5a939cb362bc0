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
	// container's limit, or GOMEMLIMIT. The API budgets requests from it
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
	body, releaseBody, err := a.uploads.ReadAll(ctx, http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), r.ContentLength)
	if a.budgetFailed(w, r, "uploads", err) {
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
	if e, ok := a.cache.Get(key); ok {
		a.hits.Inc()
		releaseBody()
		a.writeCached(w, r, key, len(e.Data), "hit", start)
		return
	}
	a.misses.Inc()
	hd, err := thumbnail.ReadHeader(body)
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	lim := thumbnail.Limits{MaxPixels: a.cfg.MaxPixels}
	if err := lim.Check(hd.Width, hd.Height); err != nil {
		a.fail(w, r, statusOf(err), err)
		return
	}
	releaseImage, err := a.images.Acquire(ctx, thumbnail.Need(hd, opts))
	if a.budgetFailed(w, r, "images", err) {
		return
	}
	defer releaseImage()
	out, ct, err := thumbnail.Make(ctx, body, opts, lim)
	if cause := context.Cause(ctx); cause != nil && err != nil {
		// The caller left and the work stopped; nobody reads an answer.
		w.WriteHeader(StatusClientClosed)
		return
	}
	switch {
	case errors.Is(err, thumbnail.ErrTooLarge):
		a.fail(w, r, http.StatusRequestEntityTooLarge, err)
		return
	case err != nil:
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	e := thumbnail.Entry{Data: out, ContentType: ct}
	a.cache.Add(key, e)
	// Only the result is left, and a client that does not read holds its
	// bytes in the results budget, not an image's.
	releaseBody()
	rc := http.NewResponseController(w)
	if rw, err := a.results.acquire(ctx, rc, int64(len(out)), 0); err == nil {
		releaseImage()
		a.write(w, r, rw, e, "miss", start)
		return
	}
	if len(out) <= a.cfg.CacheBytes {
		// The cache holds the result (and counts it): wait for room
		// holding nothing, as a hit does, rather than keep the image's
		// memory from others meanwhile.
		releaseImage()
		a.writeCached(w, r, key, len(out), "miss", start)
		return
	}
	rw, err := a.results.acquire(ctx, rc, int64(len(out)), a.results.wait)
	if a.budgetFailed(w, r, "results", err) {
		return
	}
	releaseImage()
	a.write(w, r, rw, e, "miss", start)
}

// StatusClientClosed is the status recorded for a request whose client
// left before its answer was ready (as nginx records it); nobody reads it.
const StatusClientClosed = 499

// statusOf maps the thumbnail package's errors to a status.
func statusOf(err error) int {
	if errors.Is(err, thumbnail.ErrTooLarge) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// budgetFailed answers a request that could not have its share of a
// budget, and reports whether it did: 413 when the request needs more
// than the whole budget, 503 with Retry-After when the budget stayed
// exhausted for MemoryWait, StatusClientClosed when the client left.
func (a *API) budgetFailed(w http.ResponseWriter, r *http.Request, budget string, err error) bool {
	switch {
	case errors.Is(err, shed.ErrOverBudget):
		a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("thumbnailer: the image needs more memory than this replica's %s budget allows", budget))
	case errors.Is(err, shed.ErrBusy):
		w.Header().Set("Retry-After", "1")
		a.fail(w, r, http.StatusServiceUnavailable, fmt.Errorf("thumbnailer: memory for %s is in use, retry later", budget))
	case err != nil && errors.Is(err, context.Cause(r.Context())):
		// The wait ended with the request's context: the client left.
		w.WriteHeader(StatusClientClosed)
	default:
		return false
	}
	return true
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "thumbnail request rejected",
		slog.Int("status", code), slog.String("error", err.Error()))
	httperr.Write(w, code, err.Error())
}

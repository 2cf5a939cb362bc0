package thumbnailer

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shoal-dev/shoal/internal/refsvc/httperr"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
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
)

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
	// Logger receives one line per failed request. Nil means slog.Default().
	Logger *slog.Logger
}

// API serves the thumbnailer's routes.
type API struct {
	cfg    Config
	log    *slog.Logger
	cache  *thumbnail.Cache
	hits   prometheus.Counter
	misses prometheus.Counter
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
	}
	return nil
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
	return &API{
		cfg:    cfg,
		log:    cfg.Logger,
		cache:  thumbnail.NewCache(cfg.CacheBytes),
		hits:   lookups.WithLabelValues("hit"),
		misses: lookups.WithLabelValues("miss"),
	}, nil
}

// Register adds the API's routes to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/thumbnails", a.thumbnail)
}

func (a *API) thumbnail(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts, err := thumbnail.ParseOptions(q.Get("width"), q.Get("height"), q.Get("fit"))
	if err != nil {
		a.fail(w, r, http.StatusBadRequest, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			a.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Errorf("thumbnailer: body exceeds %d bytes", tooBig.Limit))
			return
		}
		a.fail(w, r, http.StatusBadRequest, fmt.Errorf("thumbnailer: reading body: %w", err))
		return
	}
	key := thumbnail.Key{Digest: thumbnail.Digest(body), Options: opts}
	w.Header().Set(DigestHeader, key.Digest)
	if e, ok := a.cache.Get(key); ok {
		a.hits.Inc()
		a.write(w, e, "hit")
		return
	}
	a.misses.Inc()
	out, ct, err := thumbnail.Make(body, opts, thumbnail.Limits{MaxPixels: a.cfg.MaxPixels})
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
	a.write(w, e, "miss")
}

func (a *API) write(w http.ResponseWriter, e thumbnail.Entry, cache string) {
	h := w.Header()
	h.Set("Content-Type", e.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(e.Data)))
	h.Set("X-Cache", cache)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.Data)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, code int, err error) {
	a.log.LogAttrs(r.Context(), slog.LevelInfo, "thumbnail request rejected",
		slog.Int("status", code), slog.String("error", err.Error()))
	httperr.Write(w, code, err.Error())
}

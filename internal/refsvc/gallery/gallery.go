package gallery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/internal/refsvc/httperr"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/service"
	"github.com/shoal-dev/shoal/session"
	"github.com/shoal-dev/shoal/shed"
)

// Defaults of [Config].
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = 10 << 20
	DefaultMaxHistory   = 50
	DefaultUploadBytes  = 32 << 20
)

// Config configures the API. A zero field means its default; Sessions and
// ThumbnailerURL have none and are required. Negative numbers are invalid.
type Config struct {
	// Sessions signs users in and holds their history. Required.
	Sessions *session.Manager
	// ThumbnailerURL is the base URL of the thumbnailer, such as
	// http://thumbnailer:8080. Required.
	ThumbnailerURL string
	// Client calls the thumbnailer. Nil means http.DefaultClient; the
	// service passes a client.New client, over a balancer when asked.
	Client *http.Client
	// Timeout is the deadline of one thumbnail call, retries included.
	// Zero means DefaultTimeout (10s).
	Timeout time.Duration
	// MaxBodyBytes bounds an upload. Zero means DefaultMaxBodyBytes (10 MiB).
	MaxBodyBytes int64
	// MaxHistory bounds the entries kept in a user's history, oldest
	// dropped first. Zero means DefaultMaxHistory.
	MaxHistory int
	// UploadBytes bounds the bytes of uploads, and of the thumbnails
	// read back for them, the API holds at once, counted as they arrive:
	// a request that finds it spent waits up to UploadWait, then gets 503
	// with Retry-After. A thumbnail is read up to what its width and
	// height can take encoded (thumbnail.MaxResultBytes), and never more
	// than UploadBytes less MaxBodyBytes; a thumbnailer answering more
	// gets the caller a 502. Zero means DefaultUploadBytes (32 MiB); it
	// must hold two of MaxBodyBytes.
	UploadBytes int64
	// UploadWait is how long an upload waits for UploadBytes. Zero means
	// shed.DefaultBudgetWait (5s); negative means no wait.
	UploadWait time.Duration
	// ThumbnailRouteTimeout is the deadline of a whole POST
	// /v1/thumbnails request, set with service.WithTimeout so that it
	// replaces the service's REQUEST_TIMEOUT on that route. Zero leaves
	// the route under the deadline of the mux it is registered on, if
	// any; negative means none beyond the caller's.
	ThumbnailRouteTimeout time.Duration
	// Logger receives failed upstream calls. Nil means slog.Default().
	Logger *slog.Logger
}

// API serves the gallery's routes.
type API struct {
	cfg      Config
	upstream *url.URL
	log      *slog.Logger
	uploads  *shed.Budget
}

// historyKey names the session value holding the user's history: a JSON
// array of [HistoryEntry], oldest first.
const historyKey = "history"

// HistoryEntry is one thumbnail in a user's history.
type HistoryEntry struct {
	Time        time.Time `json:"time"`
	Digest      string    `json:"digest"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	Fit         string    `json:"fit,omitempty"`
	Bytes       int       `json:"bytes"`
	ContentType string    `json:"contentType"`
	ServedBy    string    `json:"servedBy,omitempty"`
}

// New validates cfg and returns the API.
func New(cfg Config) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	u, _ := url.Parse(cfg.ThumbnailerURL) // Validate parsed it
	uploads, err := shed.NewBudget(cfg.UploadBytes, cfg.UploadWait)
	if err != nil {
		return nil, fmt.Errorf("gallery: %w", err)
	}
	return &API{cfg: cfg, upstream: u.JoinPath("/v1/thumbnails"), log: cfg.Logger, uploads: uploads}, nil
}

// withDefaults returns c with every zero field that has a default set to
// it.
func (c Config) withDefaults() Config {
	if c.Client == nil {
		c.Client = http.DefaultClient
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.MaxHistory == 0 {
		c.MaxHistory = DefaultMaxHistory
	}
	if c.UploadBytes == 0 {
		c.UploadBytes = DefaultUploadBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports the first field that is missing or invalid, by name.
func (c Config) Validate() error {
	if c.Sessions == nil {
		return errors.New("gallery: Sessions is required")
	}
	if u, err := url.Parse(c.ThumbnailerURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("gallery: ThumbnailerURL %q is not an http(s) URL with a host", c.ThumbnailerURL)
	}
	switch {
	case c.Timeout < 0:
		return fmt.Errorf("gallery: Timeout %v is negative", c.Timeout)
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("gallery: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.MaxHistory < 0:
		return fmt.Errorf("gallery: MaxHistory %d is negative", c.MaxHistory)
	case c.UploadBytes < 0:
		return fmt.Errorf("gallery: UploadBytes %d is negative", c.UploadBytes)
	}
	if d := c.withDefaults(); d.UploadBytes < 2*d.MaxBodyBytes {
		return fmt.Errorf("gallery: UploadBytes %d holds less than two of MaxBodyBytes %d", d.UploadBytes, d.MaxBodyBytes)
	}
	return nil
}

// Register adds the API's routes to mux: a *service.Service, or an
// *http.ServeMux in tests.
func (a *API) Register(mux interface{ Handle(string, http.Handler) }) {
	m := a.cfg.Sessions
	mux.Handle("POST /v1/login", m.Middleware(http.HandlerFunc(a.login)))
	var thumb http.Handler = m.Require(http.HandlerFunc(a.thumbnail))
	if a.cfg.ThumbnailRouteTimeout != 0 {
		thumb = service.WithTimeout(a.cfg.ThumbnailRouteTimeout, thumb)
	}
	mux.Handle("POST /v1/thumbnails", thumb)
	mux.Handle("GET /v1/history", m.Require(http.HandlerFunc(a.history)))
}

// MaxUserLen bounds a user name.
const MaxUserLen = 64

// maxLoginBytes bounds a login body, far above {"user": NAME} at MaxUserLen.
const maxLoginBytes = 4 << 10

func validUser(u string) error {
	if u == "" {
		return errors.New(`"user" is required`)
	}
	if len(u) > MaxUserLen {
		return fmt.Errorf(`"user" is longer than %d bytes`, MaxUserLen)
	}
	for _, r := range u {
		if !unicode.IsPrint(r) || r == unicode.ReplacementChar {
			return errors.New(`"user" holds a character that is not printable`)
		}
	}
	return nil
}

func (a *API) login(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User string `json:"user"`
	}
	// Reading first keeps network errors, whose text names sockets, apart
	// from the decoding errors that describe the body.
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxLoginBytes))
	if err != nil {
		httperr.WriteBodyError(w, "login body", err)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		httperr.Write(w, http.StatusBadRequest, `login body must be JSON {"user": "NAME"}`)
		return
	}
	if err := validUser(body.User); err != nil {
		httperr.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := a.cfg.Sessions.Start(w, r, body.User); err != nil {
		session.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": body.User})
}

func (a *API) thumbnail(w http.ResponseWriter, r *http.Request) {
	s, _ := session.FromContext(r.Context())
	q := r.URL.Query()
	opts, err := thumbnail.ParseOptions(q.Get("width"), q.Get("height"), q.Get("fit"))
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	img, releaseImg, err := a.uploads.ReadAll(r.Context(), http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), r.ContentLength)
	switch {
	case errors.Is(err, shed.ErrBusy):
		w.Header().Set("Retry-After", "1")
		httperr.Write(w, http.StatusServiceUnavailable, "uploads are using this replica's memory, retry later")
		return
	case err != nil:
		httperr.WriteBodyError(w, "image", err)
		return
	}
	defer releaseImg()
	digest := thumbnail.Digest(img)

	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.Timeout)
	defer cancel()
	u := *a.upstream
	u.RawQuery = url.Values{"width": {strconv.Itoa(opts.Width)}, "height": {strconv.Itoa(opts.Height)}, "fit": {string(opts.Fit)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(img))
	if err != nil {
		httperr.Write(w, http.StatusInternalServerError, "building thumbnailer request")
		return
	}
	req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
	// A consistent-hash balancer keyed on the digest sends repeat work to
	// the replica whose cache already holds the answer.
	req.Header.Set(balancer.DefaultKeyHeader, digest)
	// The call is a pure function of its body: safe to retry.
	req.Header.Set(client.IdempotencyKeyHeader, digest)
	resp, err := a.cfg.Client.Do(req)
	if err != nil {
		code, msg := http.StatusBadGateway, "thumbnailer unreachable"
		if errors.Is(err, context.DeadlineExceeded) {
			code, msg = http.StatusGatewayTimeout, "thumbnailer did not answer in time"
		}
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer call failed", slog.String("error", err.Error()))
		httperr.Write(w, code, msg)
		return
	}
	defer resp.Body.Close()
	servedBy := resp.Header.Get("X-Served-By")
	limit, most := int64(maxErrorBody), "the most an error takes"
	if resp.StatusCode == http.StatusOK {
		limit, most = a.resultLimit(opts)
	}
	out, releaseOut, ok := a.readUpstream(ctx, w, r, resp, limit, most)
	if !ok {
		return
	}
	defer releaseOut()
	if resp.StatusCode != http.StatusOK {
		// 4xx from the thumbnailer describe the caller's image: pass them
		// on. Anything else is the upstream's failure.
		if resp.StatusCode >= 400 && resp.StatusCode < 500 {
			w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(out)
			return
		}
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer failed",
			slog.Int("status", resp.StatusCode), slog.String("upstream", servedBy))
		// A shedding thumbnailer asks to be called later, and the client's
		// retries did not get past it: ask our caller the same, rather
		// than report a failure.
		if ra := resp.Header.Get("Retry-After"); resp.StatusCode == http.StatusServiceUnavailable && ra != "" {
			w.Header().Set("Retry-After", ra)
			httperr.Write(w, http.StatusServiceUnavailable, "thumbnailer is shedding load; retry later")
			return
		}
		httperr.Write(w, http.StatusBadGateway, "thumbnailer failed with status "+strconv.Itoa(resp.StatusCode))
		return
	}
	entry := HistoryEntry{
		Time: time.Now().UTC(), Digest: digest, Width: opts.Width, Height: opts.Height, Fit: string(opts.Fit),
		Bytes: len(out), ContentType: resp.Header.Get("Content-Type"), ServedBy: servedBy,
	}
	if err := a.appendHistory(s, entry); err != nil {
		session.WriteError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", entry.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(out)))
	if servedBy != "" {
		h.Set("X-Upstream-Served-By", servedBy)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// maxErrorBody bounds the body of a thumbnailer's error answer: a JSON
// message.
const maxErrorBody = 4 << 10

// resultWait bounds how long reading a thumbnailer's answer waits for
// room in the uploads budget: the answer's body is on the call's per-try
// timeout meanwhile, and a long wait would end as a read cut short rather
// than as the 503 it is.
const resultWait = time.Second

// errResultWait ends a wait of resultWait.
var errResultWait = errors.New("gallery: no room for the thumbnail in the uploads budget")

// resultLimit is the most the gallery reads of a thumbnail of opts, and
// why: what such a thumbnail can take encoded, or less when the uploads
// budget cannot hold that beside the largest upload.
func (a *API) resultLimit(opts thumbnail.Options) (int64, string) {
	limit := thumbnail.MaxResultBytes(opts)
	if room := a.uploads.Capacity() - a.cfg.MaxBodyBytes; room < limit {
		return room, "the most this replica holds for one thumbnail"
	}
	return limit, fmt.Sprintf("the most a %dx%d thumbnail takes", opts.Width, opts.Height)
}

// readUpstream reads the thumbnailer's answer, holding it in the uploads
// budget, and reports whether it did; if not, it has answered w. A body
// of more than limit bytes is the thumbnailer's failure, 502, found from
// the Content-Length or after limit+1 bytes, never by reading the rest:
// a broken or hostile thumbnailer cannot make the gallery hold more.
func (a *API) readUpstream(ctx context.Context, w http.ResponseWriter, r *http.Request, resp *http.Response, limit int64, most string) ([]byte, func(), bool) {
	tooLarge := func() {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer response too large",
			slog.Int("status", resp.StatusCode), slog.Int64("content_length", resp.ContentLength), slog.Int64("limit", limit),
			slog.String("upstream", resp.Header.Get("X-Served-By")))
		httperr.Write(w, http.StatusBadGateway, fmt.Sprintf("thumbnailer response is larger than %d bytes, %s", limit, most))
	}
	if resp.ContentLength > limit {
		tooLarge()
		return nil, nil, false
	}
	hint := resp.ContentLength
	if hint < 0 {
		hint = limit // grow no further than the limit
	}
	// ReadAll waits on its context only for budget, never for the body.
	waitCtx, cancel := context.WithTimeoutCause(ctx, resultWait, errResultWait)
	defer cancel()
	out, release, err := a.uploads.ReadAll(waitCtx, io.LimitReader(resp.Body, limit+1), hint)
	switch {
	case errors.Is(err, shed.ErrBusy) || errors.Is(err, errResultWait):
		w.Header().Set("Retry-After", "1")
		httperr.Write(w, http.StatusServiceUnavailable, "uploads are using this replica's memory, retry later")
		return nil, nil, false
	case err != nil:
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "reading thumbnailer response", slog.String("error", err.Error()))
		httperr.Write(w, http.StatusBadGateway, "thumbnailer response cut short")
		return nil, nil, false
	case int64(len(out)) > limit:
		release()
		tooLarge()
		return nil, nil, false
	}
	return out, release, true
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	s, _ := session.FromContext(r.Context())
	entries := []HistoryEntry{}
	if _, err := s.Get(historyKey, &entries); err != nil {
		session.WriteError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"user": s.User(), "history": entries})
}

// appendHistory adds e to the user's history in s, dropping the oldest
// entries beyond MaxHistory. Its errors are the session's.
func (a *API) appendHistory(s *session.Session, e HistoryEntry) error {
	var h []HistoryEntry
	if _, err := s.Get(historyKey, &h); err != nil {
		return err
	}
	h = append(h, e)
	if over := len(h) - a.cfg.MaxHistory; over > 0 {
		h = h[over:]
	}
	return s.Set(historyKey, h)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

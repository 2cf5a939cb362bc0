package gallery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/shoal-dev/shoal/balancer"
	"github.com/shoal-dev/shoal/client"
	"github.com/shoal-dev/shoal/internal/refsvc/httperr"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
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
// ThumbnailerURL (or GRPC) have none and are required. Negative numbers
// are invalid.
type Config struct {
	// Sessions signs users in and holds their history. Required.
	Sessions *session.Manager
	// ThumbnailerURL is the base URL of the thumbnailer, such as
	// http://thumbnailer:8080. Required.
	ThumbnailerURL string
	// GRPC, when set, is the thumbnailer the API calls instead of
	// ThumbnailerURL and Client: over gRPC, its balancing key the image's
	// digest (grpcclient.WithBalanceKey), its failures answered as the
	// HTTP call's are. ThumbnailerURL is then not required.
	GRPC pb.ThumbnailerClient
	// Client calls the thumbnailer. Nil means http.DefaultClient; the
	// service passes a client.New client, over a balancer when asked.
	Client *http.Client
	// Timeout is the deadline of one thumbnail's calls to the
	// thumbnailer: the client's retries included, and the second call
	// made when an answer's body breaks or stalls after its headers.
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
	if u, err := url.Parse(c.ThumbnailerURL); c.GRPC == nil && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
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
	img, releaseImg, err := a.uploads.ReadAllEvictable(r.Context(), http.MaxBytesReader(w, r.Body, a.cfg.MaxBodyBytes), r.ContentLength, shed.StopBody(w))
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
	res, ok := a.makeThumbnail(ctx, w, r, opts, img, digest)
	if !ok {
		return
	}
	defer res.release()
	out, ct, servedBy := res.data, res.contentType, res.servedBy
	entry := HistoryEntry{
		Time: time.Now().UTC(), Digest: digest, Width: opts.Width, Height: opts.Height, Fit: string(opts.Fit),
		Bytes: len(out), ContentType: ct, ServedBy: servedBy,
	}
	if err := a.appendHistory(s, entry); err != nil {
		session.WriteError(w, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(out)))
	if servedBy != "" {
		h.Set("X-Upstream-Served-By", servedBy)
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// upstreamFailed answers a thumbnailer's answer other than 200. A 400,
// 413, 415 or 422 describes the caller's image and passes on with the
// thumbnailer's message (from the first maxErrorBody bytes of its body),
// in the gallery's own JSON error: never the thumbnailer's body or
// Content-Type, for a broken or hostile one could answer HTML for the
// gallery's origin. A 503 with a valid Retry-After asks our caller to
// come back as the thumbnailer asked. Any other answer is the
// thumbnailer's failure: 502. Only a message is read of the body.
func (a *API) upstreamFailed(w http.ResponseWriter, r *http.Request, resp *http.Response, servedBy string) {
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity:
		// A body cut short or too long is no message: the status still
		// says what the thumbnailer thought of the image.
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody+1))
		msg, ok := httperr.Parse(resp.Header.Get("Content-Type"), body)
		if err != nil || len(body) > maxErrorBody || !ok {
			msg = "the thumbnailer refused the image"
		}
		httperr.Write(w, resp.StatusCode, msg)
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer failed",
		slog.Int("status", resp.StatusCode), slog.String("upstream", servedBy))
	// A shedding thumbnailer asks to be called later, and the client's
	// retries did not get past it: ask our caller the same, rather than
	// report a failure.
	if ra, ok := retryAfter(resp.Header); ok && resp.StatusCode == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", ra)
		httperr.Write(w, http.StatusServiceUnavailable, "thumbnailer is shedding load; retry later")
		return
	}
	httperr.Write(w, http.StatusBadGateway, "thumbnailer failed with status "+strconv.Itoa(resp.StatusCode))
}

// maxRetryAfter is the longest Retry-After, in seconds, passed on from the
// thumbnailer: an hour.
const maxRetryAfter = 3600

// retryAfter returns h's Retry-After when it is one delay-seconds value
// of at most maxRetryAfter, in canonical form. An HTTP-date, a second
// value, a sign, a fraction or a longer delay are not passed on: the
// thumbnailer says "1", and anything else would be ours to vouch for.
func retryAfter(h http.Header) (string, bool) {
	vs := h.Values("Retry-After")
	if len(vs) != 1 || len(vs[0]) == 0 || len(vs[0]) > len("3600") {
		return "", false
	}
	for _, c := range []byte(vs[0]) {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	n, _ := strconv.Atoi(vs[0])
	if n > maxRetryAfter {
		return "", false
	}
	return strconv.Itoa(n), true
}

// imageType returns the media type of a thumbnail the thumbnailer can
// answer (thumbnail.Encode's: PNG or JPEG), parameters dropped.
func imageType(contentType string) (string, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "image/png" && mt != "image/jpeg") {
		return "", false
	}
	return mt, true
}

// maxServedBy bounds the replica name passed on from X-Served-By: a
// Kubernetes pod name, with room for a port.
const maxServedBy = 253 + len(":65535")

// servedByOf returns the replica name in h's X-Served-By when it is short
// and made of what pod names, hosts and ports are (letters, digits and
// ".-_@:[]"), else "": it reaches our callers in X-Upstream-Served-By and
// their history.
func servedByOf(h http.Header) string {
	return servedByName(h.Get("X-Served-By"))
}

// servedByName returns v when it is a replica name servedByOf passes on,
// else "".
func servedByName(v string) string {
	if len(v) > maxServedBy {
		return ""
	}
	for _, c := range []byte(v) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte(".-_@:[]", c) >= 0:
		default:
			return ""
		}
	}
	return v
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
// budget cannot hold that beside the largest upload, copies times over
// (a gRPC answer is held three times while it is decoded).
func (a *API) resultLimit(opts thumbnail.Options, copies int64) (int64, string) {
	limit := thumbnail.MaxResultBytes(opts)
	if room := (a.uploads.Capacity() - a.cfg.MaxBodyBytes) / copies; room < limit {
		return room, "the most this replica holds for one thumbnail"
	}
	return limit, fmt.Sprintf("the most a %dx%d thumbnail takes", opts.Width, opts.Height)
}

// tooLargeError is an answer larger than the gallery reads.
type tooLargeError struct {
	limit int64
	most  string // why the limit
}

func (e *tooLargeError) Error() string {
	return fmt.Sprintf("thumbnailer response is larger than %d bytes, %s", e.limit, e.most)
}

// errNoRoom is an answer the uploads budget had no room for.
var errNoRoom = errors.New("gallery: no room in the uploads budget")

// readResult reads the thumbnail the thumbnailer answered for opts,
// holding it in the uploads budget until release. A body of more than
// resultLimit is a *tooLargeError, found from the Content-Length or after
// one byte more, never by reading the rest: a broken or hostile
// thumbnailer cannot make the gallery hold more. No room in the budget
// is errNoRoom; any other error is the body's.
func (a *API) readResult(ctx context.Context, resp *http.Response, opts thumbnail.Options) (data []byte, release func(), err error) {
	limit, most := a.resultLimit(opts, 1)
	if resp.ContentLength > limit {
		return nil, nil, &tooLargeError{limit, most}
	}
	hint := resp.ContentLength
	if hint < 0 {
		hint = limit // grow no further than the limit
	}
	// ReadAll waits on its context only for budget, never for the body.
	waitCtx, cancel := context.WithTimeoutCause(ctx, resultWait, errResultWait)
	defer cancel()
	out, release, err := a.uploads.ReadAll(waitCtx, &atMost{r: resp.Body, n: limit}, hint)
	switch {
	case errors.Is(err, errLonger):
		return nil, nil, &tooLargeError{limit, most}
	case errors.Is(err, shed.ErrBusy) || errors.Is(err, errResultWait):
		return nil, nil, errNoRoom
	case err != nil:
		return nil, nil, err
	}
	return out, release, nil
}

// errLonger is what an [atMost] reader returns once its source has more.
var errLonger = errors.New("gallery: body longer than its limit")

// atMost reads r up to n bytes and fails with errLonger once r has more.
// Unlike io.LimitReader's end, the error fails the read that holds the
// body, so an answer cut off at the limit is dropped as it stands instead
// of being joined into one buffer first.
type atMost struct {
	r io.Reader
	n int64 // bytes left
}

func (l *atMost) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if l.n <= 0 {
		var b [1]byte
		n, err := io.ReadFull(l.r, b[:])
		if n > 0 {
			return 0, errLonger
		}
		return 0, err
	}
	p = p[:min(int64(len(p)), l.n)]
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// result is a thumbnail the thumbnailer made, held in the uploads budget
// until release.
type result struct {
	data        []byte
	release     func()
	contentType string
	servedBy    string
}

// maxCalls bounds the calls to the thumbnailer for one thumbnail: one
// more when an answer's body breaks or stalls after its headers.
const maxCalls = 2

// makeThumbnail has the thumbnailer make the thumbnail of img and reads
// it, and reports whether it did; if not, it has answered w. The client
// retries a call that fails before its headers; once they are in, its
// retries are decided, so a body that breaks or stalls (to the per-try
// timeout) would be the caller's 502. The call is a pure function of img,
// keyed by its digest, so makeThumbnail calls again, once, within ctx.
// Both calls' attempts share one record of the replicas they went to
// (client.Tries): the balancer sends the second call to a replica the
// first did not try.
func (a *API) makeThumbnail(ctx context.Context, w http.ResponseWriter, r *http.Request, opts thumbnail.Options, img []byte, digest string) (result, bool) {
	if a.cfg.GRPC != nil {
		return a.callGRPC(ctx, w, r, opts, img, digest)
	}
	ctx = client.WithTries(ctx)
	for call := 1; ; call++ {
		res, ok, again := a.call(ctx, w, r, opts, img, digest)
		switch {
		case ok:
			return res, true
		case !again:
			return result{}, false
		case call == maxCalls || ctx.Err() != nil:
			httperr.Write(w, http.StatusBadGateway, "thumbnailer response cut short")
			return result{}, false
		}
	}
}

// call calls the thumbnailer once. It returns the thumbnail (ok), or
// reports that the answer's body broke or stalled (again: w is not
// answered), or has answered w.
func (a *API) call(ctx context.Context, w http.ResponseWriter, r *http.Request, opts thumbnail.Options, img []byte, digest string) (res result, ok, again bool) {
	u := *a.upstream
	u.RawQuery = url.Values{"width": {strconv.Itoa(opts.Width)}, "height": {strconv.Itoa(opts.Height)}, "fit": {string(opts.Fit)}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(img))
	if err != nil {
		httperr.Write(w, http.StatusInternalServerError, "building thumbnailer request")
		return result{}, false, false
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
		return result{}, false, false
	}
	defer resp.Body.Close()
	servedBy := servedByOf(resp.Header)
	if resp.StatusCode != http.StatusOK {
		a.upstreamFailed(w, r, resp, servedBy)
		return result{}, false, false
	}
	// What the gallery serves from its origin is a PNG or JPEG, never
	// what a broken or hostile thumbnailer calls its answer.
	ct, ok := imageType(resp.Header.Get("Content-Type"))
	if !ok {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer answered no image",
			slog.String("content_type", resp.Header.Get("Content-Type")), slog.String("upstream", servedBy))
		httperr.Write(w, http.StatusBadGateway, "thumbnailer answered something other than a PNG or JPEG image")
		return result{}, false, false
	}
	out, release, err := a.readResult(ctx, resp, opts)
	var tooLarge *tooLargeError
	switch {
	case errors.As(err, &tooLarge):
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer response too large",
			slog.Int64("content_length", resp.ContentLength), slog.Int64("limit", tooLarge.limit), slog.String("upstream", servedBy))
		httperr.Write(w, http.StatusBadGateway, err.Error())
		return result{}, false, false
	case errors.Is(err, errNoRoom):
		w.Header().Set("Retry-After", "1")
		httperr.Write(w, http.StatusServiceUnavailable, "uploads are using this replica's memory, retry later")
		return result{}, false, false
	case err != nil:
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer response cut short",
			slog.String("error", err.Error()), slog.String("upstream", servedBy))
		return result{}, false, true
	}
	return result{data: out, release: release, contentType: ct, servedBy: servedBy}, true, false
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
	// The history holds what the thumbnailer said (content types,
	// replica names): no browser may read it as anything but JSON.
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

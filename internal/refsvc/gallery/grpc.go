package gallery

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/grpcclient"
	"github.com/shoal-dev/shoal/internal/refsvc/httperr"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
	"github.com/shoal-dev/shoal/shed"
)

// servedByMetadata is the response header metadata naming the replica
// that answered: the service kit's spelling of X-Served-By.
const servedByMetadata = "x-served-by"

// responseOverhead is what a ResizeResponse holds beside its thumbnail:
// the content type, the digest and their tags, with room to spare.
const responseOverhead = 1 << 10

// fits maps the thumbnail package's Fit to the schema's.
var fits = map[thumbnail.Fit]pb.Fit{
	"":                pb.Fit_FIT_UNSPECIFIED,
	thumbnail.Contain: pb.Fit_FIT_CONTAIN,
	thumbnail.Cover:   pb.Fit_FIT_COVER,
	thumbnail.Fill:    pb.Fit_FIT_FILL,
}

// callGRPC has the thumbnailer make the thumbnail of img over gRPC and
// reports whether it did; if not, it has answered w as the HTTP call
// would have. The digest is the call's balancing key, so consistent
// hashing sends repeat work to the replica whose cache holds it; the
// call's deadline is ctx's. grpc-go reads an answer whole before the
// gallery sees its size, so the gallery's bound on a thumbnail
// (resultLimit) is the call's receive limit, and three times that is
// held in the uploads budget before the call: grpc-go holds the message
// as it arrived in frames, joined into one buffer, and the thumbnail
// copied out of that. What the thumbnail takes is kept once it is in.
// Counted only after the call, sixteen calls for the largest size held
// 528 MiB in a gallery of 128 MiB.
func (a *API) callGRPC(ctx context.Context, w http.ResponseWriter, r *http.Request, opts thumbnail.Options, img []byte, digest string) (result, bool) {
	const copies = 3
	limit, most := a.resultLimit(opts, copies)
	waitCtx, cancel := context.WithTimeoutCause(ctx, resultWait, errResultWait)
	hold, err := a.uploads.Reserve(waitCtx, copies*(limit+responseOverhead))
	cancel()
	switch {
	case errors.Is(err, shed.ErrBusy) || errors.Is(err, errResultWait):
		w.Header().Set("Retry-After", "1")
		httperr.Write(w, http.StatusServiceUnavailable, "uploads are using this replica's memory, retry later")
		return result{}, false
	case err != nil:
		service504(w)
		return result{}, false
	}
	defer hold.Release() // unless kept below
	var header, trailer metadata.MD
	resp, err := a.cfg.GRPC.Resize(grpcclient.WithBalanceKey(ctx, digest),
		&pb.ResizeRequest{Image: img, Width: uint32(opts.Width), Height: uint32(opts.Height), Fit: fits[opts.Fit]},
		grpc.Header(&header), grpc.Trailer(&trailer), grpc.MaxCallRecvMsgSize(int(limit)+responseOverhead))
	servedBy := ""
	if v := header.Get(servedByMetadata); len(v) == 1 {
		servedBy = servedByName(v[0])
	}
	if err != nil {
		st := status.Convert(err)
		if overReceiveLimit(st) {
			err := &tooLargeError{limit, most}
			a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer response too large",
				slog.String("error", st.Message()), slog.Int64("limit", limit), slog.String("upstream", servedBy))
			httperr.Write(w, http.StatusBadGateway, err.Error())
			return result{}, false
		}
		a.grpcFailed(w, r, st, trailer, servedBy)
		return result{}, false
	}
	ct, ok := imageType(resp.GetContentType())
	if !ok {
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer answered no image",
			slog.String("content_type", resp.GetContentType()), slog.String("upstream", servedBy))
		httperr.Write(w, http.StatusBadGateway, "thumbnailer answered something other than a PNG or JPEG image")
		return result{}, false
	}
	out := resp.GetThumbnail()
	if int64(len(out)) > limit {
		err := &tooLargeError{limit, most}
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer response too large",
			slog.Int("bytes", len(out)), slog.Int64("limit", limit), slog.String("upstream", servedBy))
		httperr.Write(w, http.StatusBadGateway, err.Error())
		return result{}, false
	}
	return result{data: out, release: hold.Keep(int64(len(out))), contentType: ct, servedBy: servedBy}, true
}

// receiveLimitMessage begins the status grpc-go makes on its side of a
// call whose answer is over the call's receive limit. grpc-go gives the
// case no type or detail of its own, so its text is what tells it.
const receiveLimitMessage = "grpc: received message larger than max"

// overReceiveLimit reports whether st is grpc-go's for an answer over the
// call's receive limit, not the thumbnailer's (whose own refusals carry
// its ErrorInfo).
func overReceiveLimit(st *status.Status) bool {
	return st.Code() == codes.ResourceExhausted && thumbnailerReason(st) == "" &&
		strings.HasPrefix(st.Message(), receiveLimitMessage)
}

// service504 answers a call whose request's time ran out.
func service504(w http.ResponseWriter) {
	httperr.Write(w, http.StatusGatewayTimeout, "thumbnailer did not answer in time")
}

// grpcFailed answers a failed Resize as upstreamFailed answers the HTTP
// call's failures. The thumbnailer's own refusals (its ErrorInfo says
// so) of the caller's image pass on as 400 and 413 with its message, made
// safe; a pushback on UNAVAILABLE or RESOURCE_EXHAUSTED (a replica
// shedding, past the client's retries) becomes 503 with Retry-After; the
// request's time running out, or its caller leaving, is 504; anything
// else is the thumbnailer's failure: 502.
func (a *API) grpcFailed(w http.ResponseWriter, r *http.Request, st *status.Status, trailer metadata.MD, servedBy string) {
	reason := thumbnailerReason(st)
	switch {
	case r.Context().Err() != nil || st.Code() == codes.DeadlineExceeded:
		a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer call failed",
			slog.String("code", st.Code().String()), slog.String("upstream", servedBy))
		service504(w)
		return
	case reason == thumbnailer.ReasonBadRequest && st.Code() == codes.InvalidArgument:
		httperr.Write(w, http.StatusBadRequest, safeMessage(st.Message()))
		return
	case reason == thumbnailer.ReasonTooLarge && st.Code() == codes.ResourceExhausted:
		httperr.Write(w, http.StatusRequestEntityTooLarge, safeMessage(st.Message()))
		return
	}
	a.log.LogAttrs(r.Context(), slog.LevelWarn, "thumbnailer failed",
		slog.String("code", st.Code().String()), slog.String("error", st.Message()), slog.String("upstream", servedBy))
	if ra, ok := pushback(trailer); ok && (st.Code() == codes.Unavailable || st.Code() == codes.ResourceExhausted) {
		w.Header().Set("Retry-After", ra)
		httperr.Write(w, http.StatusServiceUnavailable, "thumbnailer is shedding load; retry later")
		return
	}
	if st.Code() == codes.Unavailable {
		httperr.Write(w, http.StatusBadGateway, "thumbnailer unreachable")
		return
	}
	httperr.Write(w, http.StatusBadGateway, "thumbnailer failed with code "+st.Code().String())
}

// thumbnailerReason returns the reason of st's ErrorInfo when the
// thumbnailer itself answered st, else "".
func thumbnailerReason(st *status.Status) string {
	for _, d := range st.Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetDomain() == thumbnailer.ErrorDomain {
			return ei.GetReason()
		}
	}
	return ""
}

// safeMessage returns msg as httperr.Parse would pass on an HTTP
// thumbnailer's message: valid UTF-8, no control characters, bounded;
// or a fixed text when nothing is left.
func safeMessage(msg string) string {
	body, _ := json.Marshal(map[string]string{"error": msg})
	if m, ok := httperr.Parse("application/json", body); ok {
		return m
	}
	return "the thumbnailer refused the image"
}

// pushback returns the trailer's grpc-retry-pushback-ms as a Retry-After
// value, in whole seconds rounded up, when it holds one value of at most
// maxRetryAfter seconds: the rule retryAfter applies to HTTP's.
func pushback(trailer metadata.MD) (string, bool) {
	vs := trailer.Get(thumbnailer.PushbackMetadata)
	if len(vs) != 1 || len(vs[0]) == 0 || len(vs[0]) > len(strconv.Itoa(maxRetryAfter*1000)) {
		return "", false
	}
	for _, c := range []byte(vs[0]) {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	ms, _ := strconv.Atoi(vs[0])
	if s := (ms + 999) / 1000; s <= maxRetryAfter {
		return strconv.Itoa(s), true
	}
	return "", false
}

// errNoGRPCReplica fails the thumbnailer check while no replica is
// reachable.
var errNoGRPCReplica = errors.New("gallery: no thumbnailer replica is reachable over gRPC")

// grpcCheck is the gallery's check of its gRPC thumbnailer: the
// ClientConn's state, asked to connect when idle. It fails while every
// replica failed to connect; it makes no call.
func grpcCheck(cc *grpc.ClientConn) func(context.Context) error {
	return func(context.Context) error {
		switch cc.GetState() {
		case connectivity.Idle:
			cc.Connect()
		case connectivity.TransientFailure, connectivity.Shutdown:
			return errNoGRPCReplica
		}
		return nil
	}
}

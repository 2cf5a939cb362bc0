package thumbnailer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
)

// Metadata of the gRPC API.
const (
	// DigestMetadata is the response header metadata carrying what
	// DigestHeader carries over HTTP, on every call that got as far as
	// reading the image.
	DigestMetadata = "x-content-digest"
	// PushbackMetadata is the trailer by which an UNAVAILABLE answer says
	// when to try again, in milliseconds: grpc-go's retries wait that
	// long instead of their backoff (gRFC A6), as Retry-After does for
	// HTTP.
	PushbackMetadata = "grpc-retry-pushback-ms"
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo detail on every
// status Resize answers itself, whose reason says why (AIP-193). A status
// without it came from elsewhere: grpc-go, the service kit, the network.
const ErrorDomain = "thumbnailer.shoal.dev"

// Reasons of the ErrorInfo detail.
const (
	ReasonBadRequest  = "BAD_REQUEST"     // INVALID_ARGUMENT: the options or the image
	ReasonTooLarge    = "IMAGE_TOO_LARGE" // RESOURCE_EXHAUSTED: more than the replica takes at all
	ReasonMemoryInUse = "MEMORY_IN_USE"   // UNAVAILABLE: try again after the pushback
)

// busyPushback is the pushback of a busy answer: Retry-After: 1's second.
const busyPushback = "1000"

// RegisterGRPC registers the Thumbnailer service on s, serving Resize with
// the HTTP route's limits, budgets and cache. s should take messages of
// [API.MaxRecvMsgSize].
func (a *API) RegisterGRPC(s grpc.ServiceRegistrar) {
	pb.RegisterThumbnailerServer(s, &grpcAPI{a: a})
}

// requestOverhead is what a ResizeRequest holds beside its image: the
// image's tag and length (11 bytes at most) and the three numbers' (6
// bytes each at most).
const requestOverhead = 64

// MaxRecvMsgSize is the largest request message the gRPC API takes: one
// holding an image of MaxBodyBytes. grpc-go reads a message whole before
// Resize sees it, so this, not Resize, stops a larger upload, with
// RESOURCE_EXHAUSTED.
func (a *API) MaxRecvMsgSize() int {
	return int(a.cfg.MaxBodyBytes) + requestOverhead
}

// grpcAPI serves the Thumbnailer service.
type grpcAPI struct {
	pb.UnimplementedThumbnailerServer
	a *API
}

var _ pb.ThumbnailerServer = (*grpcAPI)(nil)

// fits maps the schema's Fit to the thumbnail package's.
var fits = map[pb.Fit]thumbnail.Fit{
	pb.Fit_FIT_UNSPECIFIED: "",
	pb.Fit_FIT_CONTAIN:     thumbnail.Contain,
	pb.Fit_FIT_COVER:       thumbnail.Cover,
	pb.Fit_FIT_FILL:        thumbnail.Fill,
}

// optionsOf reads req's options, naming the field that is wrong.
func optionsOf(req *pb.ResizeRequest) (thumbnail.Options, error) {
	fit, ok := fits[req.GetFit()]
	if !ok {
		return thumbnail.Options{}, fmt.Errorf("%w: fit %d is not one of FIT_CONTAIN, FIT_COVER, FIT_FILL", thumbnail.ErrBadOptions, req.GetFit())
	}
	o := thumbnail.Options{Width: int(min(req.GetWidth(), thumbnail.MaxSide+1)), Height: int(min(req.GetHeight(), thumbnail.MaxSide+1)), Fit: fit}
	if err := o.Validate(); err != nil {
		return thumbnail.Options{}, err
	}
	return o, nil
}

// Resize is the HTTP route's work with the image already read: grpc-go
// holds the message when Resize starts, so the uploads budget counts it
// from then, waiting as long as an HTTP upload waits before it reads.
// The result is held in the results budget until Resize returns it;
// grpc-go then holds its encoding until the client's flow-control window
// takes it.
func (g *grpcAPI) Resize(ctx context.Context, req *pb.ResizeRequest) (*pb.ResizeResponse, error) {
	a := g.a
	opts, err := optionsOf(req)
	if err != nil {
		return nil, a.grpcFailure(ctx, &failure{failBadRequest, err})
	}
	img := req.GetImage()
	if n := int64(len(img)); n > a.cfg.MaxBodyBytes {
		return nil, a.grpcFailure(ctx, &failure{failTooLarge, fmt.Errorf("image exceeds %d bytes", a.cfg.MaxBodyBytes)})
	}
	releaseBody, err := a.uploads.Acquire(ctx, int64(len(img)))
	if err := budgetError(ctx, "uploads", err); err != nil {
		return nil, a.grpcFailure(ctx, err)
	}
	defer releaseBody()
	key := thumbnail.Key{Digest: thumbnail.Digest(img), Options: opts}
	_ = grpc.SetHeader(ctx, metadata.Pairs(DigestMetadata, key.Digest))
	m, err := a.produce(ctx, key, img)
	if err != nil {
		return nil, a.grpcFailure(ctx, err)
	}
	// Nothing here refers to the image from now on: its memory is the
	// collector's, and the budget's to give to the next upload.
	req.Image, img = nil, nil
	releaseBody()
	rw, e, err := a.holdResult(ctx, nil, key, m)
	if err != nil {
		return nil, a.grpcFailure(ctx, err)
	}
	defer a.results.release(rw)
	return &pb.ResizeResponse{Thumbnail: e.Data, ContentType: e.ContentType, Digest: key.Digest, Cached: m.hit}, nil
}

// grpcFailure returns the status of err, a *failure: INVALID_ARGUMENT
// and RESOURCE_EXHAUSTED with the failure's message (which describes the
// request), UNAVAILABLE with a pushback trailer when memory stayed in
// use, and the context's code when the caller left.
func (a *API) grpcFailure(ctx context.Context, err error) error {
	var f *failure
	if !errors.As(err, &f) {
		a.log.LogAttrs(ctx, slog.LevelError, "thumbnail call failed", slog.String("error", err.Error()))
		return status.Error(codes.Internal, "thumbnailer: internal error")
	}
	var code codes.Code
	var reason string
	switch f.kind {
	case failBadRequest:
		code, reason = codes.InvalidArgument, ReasonBadRequest
	case failTooLarge:
		code, reason = codes.ResourceExhausted, ReasonTooLarge
	case failBusy:
		code, reason = codes.Unavailable, ReasonMemoryInUse
		_ = grpc.SetTrailer(ctx, metadata.Pairs(PushbackMetadata, busyPushback))
	case failGone:
		// Nobody reads it; grpc-go answers the caller's cancellation or
		// deadline itself.
		return status.FromContextError(ctx.Err()).Err()
	}
	a.log.LogAttrs(ctx, slog.LevelInfo, "thumbnail call rejected",
		slog.String("code", code.String()), slog.String("error", f.Error()))
	st, err := status.New(code, f.Error()).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain})
	if err != nil {
		return status.Error(code, f.Error())
	}
	return st.Err()
}

package grpcserver

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// chain is the kit's interceptors, outermost first (see the package doc
// for the order and its reasons).
type chain struct {
	unary  []grpc.UnaryServerInterceptor
	stream []grpc.StreamServerInterceptor
}

func (s *Server) interceptors(stopping context.Context, panics prometheus.Counter) chain {
	var c chain
	if s.admit != nil {
		// The handler holds the message: its share of the receive budget
		// stays taken until the handler returns, even if the stream ended.
		c.unary = append(c.unary, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if t := ticketOf(ctx); t != nil && t.ref() {
				defer t.unref()
			}
			return h(ctx, req)
		})
		c.stream = append(c.stream, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if t := ticketOf(ss.Context()); t != nil && t.ref() {
				defer t.unref()
			}
			return h(srv, ss)
		})
	}
	if s.cfg.Name != "" {
		md := metadata.Pairs(ServedByKey, s.cfg.Name)
		c.unary = append(c.unary, func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			_ = grpc.SetHeader(ctx, md) // fails only once headers are sent, which they are not yet
			return h(ctx, req)
		})
		c.stream = append(c.stream, func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			_ = ss.SetHeader(md)
			return h(srv, ss)
		})
	}
	if s.metrics != nil {
		c.unary = append(c.unary, s.metrics.UnaryServerInterceptor())
		c.stream = append(c.stream, s.metrics.StreamServerInterceptor())
	}
	if s.cfg.RequestLogSample >= 0 {
		c.unary = append(c.unary, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			start := time.Now()
			resp, err := h(ctx, req)
			s.logRPC(ctx, info.FullMethod, start, err)
			return resp, err
		})
		c.stream = append(c.stream, func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			start := time.Now()
			err := h(srv, ss)
			s.logRPC(ss.Context(), info.FullMethod, start, err)
			return err
		})
	}
	c.unary = append(c.unary, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if p := recover(); p != nil {
				resp, err = nil, s.panicked(ctx, info.FullMethod, p, panics)
			}
		}()
		return h(ctx, req)
	})
	c.stream = append(c.stream, func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = s.panicked(ss.Context(), info.FullMethod, p, panics)
			}
		}()
		return h(srv, ss)
	})
	c.stream = append(c.stream, endWatches(stopping))
	if l := s.cfg.Limiter; l != nil {
		pushback := metadata.Pairs(PushbackKey, strconv.FormatInt(l.RetryAfter().Milliseconds(), 10))
		c.unary = append(c.unary, func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if internalService(serviceOf(info.FullMethod)) {
				return h(ctx, req)
			}
			release, ok := l.Acquire()
			if !ok {
				_ = grpc.SetTrailer(ctx, pushback)
				return nil, errOverloaded
			}
			completed := false
			defer func() {
				// A panic is no latency sample, but its slot comes back.
				if !completed {
					release(context.Canceled)
				}
			}()
			resp, err := h(ctx, req)
			completed = true
			release(context.Cause(ctx))
			return resp, err
		})
		c.stream = append(c.stream, func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if internalService(serviceOf(info.FullMethod)) {
				return h(srv, ss)
			}
			release, ok := l.Acquire()
			if !ok {
				ss.SetTrailer(pushback)
				return errOverloaded
			}
			completed := false
			defer func() {
				if !completed {
					release(context.Canceled)
				}
			}()
			err := h(srv, ss)
			completed = true
			release(context.Cause(ss.Context()))
			return err
		})
	}
	return c
}

// errOverloaded is a shed RPC's status: Unavailable, which retry policies
// retry, after the pushback the trailer gives.
var errOverloaded = status.Error(codes.Unavailable, "grpcserver: server overloaded, retry later")

// errPanicked is a panicking handler's status; the panic's value stays
// in the log, out of the client's reach.
var errPanicked = status.Error(codes.Internal, "grpcserver: internal error")

func (s *Server) panicked(ctx context.Context, method string, p any, panics prometheus.Counter) error {
	s.log.ErrorContext(ctx, "grpcserver: handler panicked", "method", method,
		"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	if panics != nil {
		panics.Inc()
	}
	return errPanicked
}

// serverError reports the codes that HTTP would answer with a 5xx: their
// request lines are never sampled away, as HTTP's 5xx are not.
func serverError(c codes.Code) bool {
	switch c {
	case codes.Unknown, codes.DeadlineExceeded, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

func (s *Server) logRPC(ctx context.Context, method string, start time.Time, err error) {
	if internalService(serviceOf(method)) {
		return // health probes every few seconds would drown the rest
	}
	code := status.Code(err)
	if rate := s.cfg.RequestLogSample; !serverError(code) && rate < 1 && s.cfg.Rand() >= rate {
		return
	}
	if !s.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	addr := ""
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		addr = p.Addr.String()
	}
	s.log.LogAttrs(ctx, slog.LevelInfo, "rpc",
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Float64("duration", time.Since(start).Seconds()),
		slog.String("peer", addr))
}

// serviceOf returns the service of a full method name, /service/method.
func serviceOf(fullMethod string) string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return svc
}

// watchMethod is the health service's server-streaming method, whose
// streams never end by themselves.
var watchMethod = "/" + healthpb.Health_ServiceDesc.ServiceName + "/Watch"

// endWatches ends a health Watch stream when stopping ends (its
// generation's GracefulStop begins, health NOT_SERVING already sent), so
// watches do not hold GracefulStop until the shutdown deadline.
func endWatches(stopping context.Context) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if info.FullMethod != watchMethod {
			return h(srv, ss)
		}
		ctx, cancel := context.WithCancel(ss.Context())
		defer cancel()
		stop := context.AfterFunc(stopping, cancel)
		defer stop()
		return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
	}
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

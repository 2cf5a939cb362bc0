package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/shoal-dev/shoal/grpcclient"
	"github.com/shoal-dev/shoal/loadgen"
	"github.com/shoal-dev/shoal/loadgen/grpcmsg"
)

// Balancing policies --grpc-balancer takes: Shoal's, over grpcclient's
// resolvers, and grpc-go's own for comparison (over the same resolvers).
var grpcBalancers = []string{grpcclient.PeakEWMA, grpcclient.ConsistentHash, "round_robin", "pick_first"}

// httpOnlyFlags are the flags that shape an HTTP request; a gRPC run
// refuses them rather than ignore them.
var httpOnlyFlags = []string{"method", "h2c", "no-keepalive", "connections"}

// grpcConfig fills cfg's gRPC half from the flags, all but the message:
// the method, the metadata and the channel. It moves --body out of cfg,
// for grpcMessage.
func (o *options) grpcConfig(cmd *cobra.Command, target string, cfg *loadgen.Config) error {
	flags := cmd.Flags()
	for _, name := range httpOnlyFlags {
		if flags.Changed(name) {
			return flagErr("--"+name, "applies to HTTP only, not to --grpc")
		}
	}
	if o.data != "" && o.body != "" {
		return flagErr("--data", "give either --data (JSON) or --body (protobuf wire bytes), not both")
	}
	if !slices.Contains(grpcBalancers, o.grpcBalancer) {
		return flagErr("--grpc-balancer", "%q is not one of %s", o.grpcBalancer, strings.Join(grpcBalancers, ", "))
	}
	full, _, _, err := grpcmsg.ParseMethod(o.grpcMethod)
	if err != nil {
		return &FlagError{Flag: "--grpc", Err: stripPkg(err)}
	}
	g := &loadgen.GRPC{Target: target, Method: full, Dial: o.dialer(cmd)}
	for _, h := range o.headers {
		k, v, ok := strings.Cut(h, ":")
		if !ok {
			// Not h itself: its value may be a credential. ParseHeader
			// refuses a header without a colon, naming only what comes
			// before the value.
			_, _, err := loadgen.ParseHeader(h)
			return &FlagError{Flag: "--header", Err: stripPkg(err)}
		}
		k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
		if err := loadgen.CheckMetadataKey(k); err != nil {
			return &FlagError{Flag: "--header", Err: stripPkg(err)}
		}
		if g.Metadata == nil {
			g.Metadata = metadata.MD{}
		}
		g.Metadata.Append(k, v)
	}
	cfg.URL, cfg.Method, cfg.Header = "", "", nil
	cfg.ServedByHeader = strings.ToLower(cfg.ServedByHeader)
	cfg.KeyHeader = strings.ToLower(cfg.KeyHeader)
	cfg.GRPC = g
	o.wire, cfg.Body = cfg.Body, nil
	return nil
}

// grpcMessage sets the message of a valid gRPC cfg: --data as JSON
// through the server's reflection, or --body as wire bytes, checked
// against the method's request type when the server has reflection. It
// asks the server about the method first, so that a wrong target, method
// or message is an error before the run rather than a report full of
// failed calls.
func (o *options) grpcMessage(cmd *cobra.Command, cfg *loadgen.Config) error {
	g, target := cfg.GRPC, cfg.GRPC.Target
	var data []byte
	if o.data != "" {
		var err error
		if data, err = readBody(o.data, cmd.InOrStdin()); err != nil {
			return &FlagError{Flag: "--data", Err: err}
		}
	}
	m, err := o.describe(cmd.Context(), g)
	var fe *FlagError
	switch {
	case errors.As(err, &fe):
		return fe
	case errors.Is(err, grpcmsg.ErrUnreachable):
		return &FlagError{Flag: "TARGET", Err: fmt.Errorf("%s: %w", target, stripPkg(err))}
	case errors.Is(err, grpcmsg.ErrNoReflection) && o.data != "":
		return flagErr("--data", "%s has no reflection service to read the JSON with; give the message in protobuf wire format with --body @FILE", target)
	case errors.Is(err, grpcmsg.ErrNoReflection):
		// Nothing to check the method and message against: the calls
		// will tell.
		g.Message = o.wire
	case err != nil:
		return &FlagError{Flag: "--grpc", Err: fmt.Errorf("%s: %w", target, stripPkg(err))}
	case o.data != "":
		if g.Message, err = m.EncodeJSON(data); err != nil {
			return &FlagError{Flag: "--data", Err: stripPkg(err)}
		}
	default:
		if err := m.CheckWire(o.wire); err != nil {
			return &FlagError{Flag: "--body", Err: stripPkg(err)}
		}
		g.Message = o.wire
	}
	return nil
}

// describe asks the target about the method, within --timeout, over a
// channel of its own.
func (o *options) describe(ctx context.Context, g *loadgen.GRPC) (*grpcmsg.Method, error) {
	cc, err := g.Dial(g.Target)
	if err != nil {
		return nil, &FlagError{Flag: "TARGET", Err: fmt.Errorf("%s: %w", g.Target, stripPkg(err))}
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	return grpcmsg.Describe(ctx, cc, g.Method)
}

// dialer makes the channels of the run: grpcclient's, with Shoal's
// resolvers and the chosen policy, without retries (the report shows
// every failed call). Its warnings (lookup errors, ejections) go to
// stderr unless --quiet.
func (o *options) dialer(cmd *cobra.Command) func(string, ...grpc.DialOption) (*grpc.ClientConn, error) {
	var w io.Writer = cmd.ErrOrStderr()
	if o.quiet {
		w = io.Discard
	}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
	return func(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
		cfg := grpcclient.Config{MaxAttempts: 1, Logger: log, DialOptions: opts}
		switch o.grpcBalancer {
		case grpcclient.PeakEWMA, grpcclient.ConsistentHash:
			cfg.Policy = o.grpcBalancer
		default:
			// grpc-go's policy replaces Shoal's in the service config;
			// the resolvers stay.
			sc := fmt.Sprintf(`{"loadBalancingConfig":[{%q:{}}]}`, o.grpcBalancer)
			cfg.DialOptions = append([]grpc.DialOption{grpc.WithDefaultServiceConfig(sc)}, opts...)
		}
		return grpcclient.New(target, cfg)
	}
}

// stripPkg drops a package's "name: " prefix from err's text, which a
// FlagError replaces with the flag's name; errors.Is still sees through.
func stripPkg(err error) error {
	msg := err.Error()
	for _, p := range []string{"grpcmsg: ", "grpcclient: ", "loadgen: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return &strippedErr{msg: msg, err: err}
}

type strippedErr struct {
	msg string
	err error
}

func (e *strippedErr) Error() string { return e.msg }
func (e *strippedErr) Unwrap() error { return e.err }

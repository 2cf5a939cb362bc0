package load

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/grpcclient"
	"github.com/shoal-dev/shoal/loadgen"
)

// FlagError is a bad command line, naming the flag at fault.
type FlagError struct {
	Flag string // e.g. "--steps", or "URL" for the argument
	Err  error
}

func (e *FlagError) Error() string { return "load: " + e.Flag + ": " + e.Err.Error() }
func (e *FlagError) Unwrap() error { return e.Err }

func flagErr(flag, format string, args ...any) error {
	return &FlagError{Flag: flag, Err: fmt.Errorf(format, args...)}
}

// flagFor names the flag that sets a loadgen.Config field.
func flagFor(field string) string {
	switch field {
	case "URL":
		return "URL"
	case "MaxInFlight":
		return "--max-in-flight"
	case "KeyHeader":
		return "--key-header"
	case "ServedByHeader":
		return "--served-by-header"
	case "H2C":
		return "--h2c"
	case "GRPC.Target":
		return "TARGET"
	case "GRPC.Method":
		return "--grpc"
	case "GRPC.Metadata":
		return "--header"
	case "GRPC.Message":
		return "--body"
	}
	return "--" + strings.ToLower(field)
}

type options struct {
	rate        float64
	steps       string
	duration    time.Duration
	count       int64
	maxInFlight int
	connections int
	noKeepAlive bool
	h2c         bool
	method      string
	headers     []string
	body        string
	timeout     time.Duration
	keyHeader   string
	keys        int
	seed        uint64
	servedBy    string
	window      time.Duration
	output      string
	quiet       bool
	maxErrors   int64

	grpcMethod   string
	data         string
	grpcBalancer string
	wire         []byte // --body of a gRPC run, the message in wire format
}

// TooManyErrorsError is returned, after the report is written, when more
// requests failed than --max-errors allows. Its exit status is 1, as
// `shoal lint`'s for findings; bad input exits with 2.
type TooManyErrorsError struct {
	Failed, Scheduled, Max int64
}

func (e *TooManyErrorsError) Error() string {
	return fmt.Sprintf("load: %d of %d scheduled requests failed, more than --max-errors %d", e.Failed, e.Scheduled, e.Max)
}

// ExitCode is the process exit status for the error.
func (e *TooManyErrorsError) ExitCode() int { return 1 }

// NewCommand returns the `load` command.
func NewCommand() *cobra.Command {
	var o options
	cmd := &cobra.Command{
		Use:   "load URL | load --grpc /package.Service/Method TARGET",
		Short: "Send open-loop HTTP or gRPC load and report latency, errors and each replica's share",
		Long: `Send HTTP requests to URL on a fixed timetable (--rate, or --steps), free of
coordinated omission: each request's latency runs from the time it was due,
and a request due while --max-in-flight are in flight is dropped and counted,
never sent late. The run ends at --duration or after --count requests
(at least one is required; --steps also bound the run).

With --grpc, send unary calls of that method to the gRPC TARGET (host:port,
dns:///name:port, dns://server:port/name:port) instead, over one channel
with Shoal's resolvers and the --grpc-balancer policy, without retries.
The message is --data, JSON converted through the server's reflection
service, or --body, the message in protobuf wire format (for servers
without reflection); neither sends an empty message. -H sets metadata,
--timeout each call's deadline, --key-header a balance key in metadata.
The server is asked about the method before the run: an unreachable
target, an unknown method or a message that does not fit is an error
then. The report adds the calls' gRPC status codes, and reads replicas
from the x-served-by metadata Shoal's gRPC kit sets.

With --max-errors N the command exits with status 1, after the report, when
more than N requests failed (any error kind, dropped requests included):
--max-errors 0 makes a script fail on the first lost request.

The report gives throughput, latency percentiles, errors by kind and each
replica's share of the responses, read from the --served-by-header, with the
coefficient of variation (CV) of the shares overall and per --window.`,
		Example: `  shoal load http://127.0.0.1:8080/ --rate 200 --duration 30s
  shoal load http://127.0.0.1:8080/v1/thumbnails -X POST --body @cat.png \
    -H 'Content-Type: image/png' --steps 100:10s,400:20s,100:10s --window 5s
  shoal load http://127.0.0.1:8080/ --count 1000 --no-keepalive -o json --quiet
  shoal load http://127.0.0.1:8080/ --rate 50 --duration 60s --max-errors 0
  shoal load dns:///thumbnailer-headless:8082 --grpc /grpc.health.v1.Health/Check \
    --data '{}' --rate 200 --duration 30s --window 5s
  shoal load 127.0.0.1:8082 --grpc /shoal.thumbnailer.v1.Thumbnailer/Resize \
    --body @resize.bin --grpc-balancer round_robin --count 1000`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				if o.grpcMethod != "" {
					return flagErr("TARGET", "want exactly one gRPC target argument, got %d", len(args))
				}
				return flagErr("URL", "want exactly one URL argument, got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := o.config(cmd, args[0])
			if err != nil {
				return err
			}
			rep, err := loadgen.Run(cmd.Context(), cfg)
			if err != nil {
				return configErr(err)
			}
			write := rep.WriteText
			if o.output == "json" {
				write = rep.WriteJSON
			}
			if err := write(cmd.OutOrStdout()); err != nil {
				return err
			}
			return o.checkErrors(rep)
		},
	}
	f := cmd.Flags()
	f.Float64Var(&o.rate, "rate", loadgen.DefaultRate, "requests per second")
	f.StringVar(&o.steps, "steps", "", "stepped rate RATE:DURATION,... (e.g. 100:10s,400:20s,100:10s); replaces --rate")
	f.DurationVar(&o.duration, "duration", 0, "schedule no request at or after this time")
	f.Int64Var(&o.count, "count", 0, "schedule at most this many requests")
	f.IntVar(&o.maxInFlight, "max-in-flight", loadgen.DefaultMaxInFlight, "requests in flight at most; more are dropped")
	f.IntVar(&o.connections, "connections", 0, "keep-alive connections at most (0: --max-in-flight)")
	f.BoolVar(&o.noKeepAlive, "no-keepalive", false, "open a new connection for every request")
	f.BoolVar(&o.h2c, "h2c", false, "speak unencrypted HTTP/2 (prior knowledge) to an http:// URL")
	f.StringVarP(&o.method, "method", "X", http.MethodGet, "request method")
	f.StringArrayVarP(&o.headers, "header", "H", nil, "request header 'Name: value' (repeatable); gRPC metadata with --grpc")
	f.StringVar(&o.body, "body", "", "request body: @FILE reads a file (@- stdin), anything else is sent as is; with --grpc, the message in protobuf wire format")
	f.DurationVar(&o.timeout, "timeout", loadgen.DefaultTimeout, "per-request timeout, body included; with --grpc, each call's deadline")
	f.StringVar(&o.grpcMethod, "grpc", "", "send unary gRPC calls of this method (/package.Service/Method) to the TARGET argument")
	f.StringVar(&o.data, "data", "", "with --grpc, the message as JSON (@FILE reads a file, @- stdin), converted through the server's reflection")
	f.StringVar(&o.grpcBalancer, "grpc-balancer", grpcclient.PeakEWMA, "with --grpc, the balancing policy: "+strings.Join(grpcBalancers, ", "))
	f.StringVar(&o.keyHeader, "key-header", "", "header carrying a random balance key per request (e.g. X-Balance-Key)")
	f.IntVar(&o.keys, "keys", 0, "distinct balance keys (with --key-header; 0: 1)")
	f.Uint64Var(&o.seed, "seed", 1, "seed of the balance key sequence")
	f.StringVar(&o.servedBy, "served-by-header", loadgen.DefaultServedByHeader, "response header naming the replica")
	f.DurationVar(&o.window, "window", 0, "also report shares per window of this length (e.g. 5s)")
	f.StringVarP(&o.output, "output", "o", "text", "report format: text or json")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "no progress line on stderr")
	f.Int64Var(&o.maxErrors, "max-errors", -1, "exit with status 1 when more requests than this fail, dropped ones included (-1: never)")
	return cmd
}

// config turns the flags into a loadgen.Config, naming the flag of any
// error.
func (o *options) config(cmd *cobra.Command, url string) (loadgen.Config, error) {
	if o.grpcMethod == "" {
		for _, name := range []string{"data", "grpc-balancer"} {
			if cmd.Flags().Changed(name) {
				return loadgen.Config{}, flagErr("--"+name, "applies to --grpc only (an HTTP body is --body)")
			}
		}
	}
	cfg := loadgen.Config{
		URL:            url,
		Method:         o.method,
		Rate:           o.rate,
		Duration:       o.duration,
		Count:          o.count,
		MaxInFlight:    o.maxInFlight,
		Connections:    o.connections,
		NoKeepAlive:    o.noKeepAlive,
		H2C:            o.h2c,
		Timeout:        o.timeout,
		KeyHeader:      o.keyHeader,
		Keys:           o.keys,
		Seed:           o.seed,
		ServedByHeader: o.servedBy,
		Window:         o.window,
	}
	if o.output != "text" && o.output != "json" {
		return cfg, flagErr("--output", "%q is not text or json", o.output)
	}
	flags := cmd.Flags()
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"--rate", o.rate}, {"--duration", float64(o.duration)}, {"--count", float64(o.count)},
		{"--max-in-flight", float64(o.maxInFlight)}, {"--connections", float64(o.connections)},
		{"--timeout", float64(o.timeout)}, {"--keys", float64(o.keys)}, {"--window", float64(o.window)},
	} {
		if f.v < 0 {
			return cfg, flagErr(f.name, "must not be negative")
		}
	}
	if o.maxErrors < -1 {
		return cfg, flagErr("--max-errors", "must be -1 (no limit) or more, got %d", o.maxErrors)
	}
	if o.rate == 0 {
		return cfg, flagErr("--rate", "must be positive")
	}
	if o.maxInFlight == 0 {
		return cfg, flagErr("--max-in-flight", "must be positive")
	}
	if o.timeout == 0 {
		return cfg, flagErr("--timeout", "must be positive")
	}
	if o.steps != "" {
		if flags.Changed("rate") {
			return cfg, flagErr("--steps", "give either --rate or --steps, not both")
		}
		steps, err := loadgen.ParseSteps(o.steps)
		if err != nil {
			return cfg, &FlagError{Flag: "--steps", Err: err}
		}
		cfg.Steps = steps
	}
	if o.duration == 0 && o.count == 0 && o.steps == "" {
		return cfg, flagErr("--duration", "set --duration, --count or --steps to bound the run")
	}
	if o.keys > 0 && o.keyHeader == "" {
		return cfg, flagErr("--keys", "needs --key-header")
	}
	for _, h := range o.headers {
		if o.grpcMethod != "" {
			break // metadata, read by grpcConfig
		}
		name, value, err := loadgen.ParseHeader(h)
		if err != nil {
			return cfg, &FlagError{Flag: "--header", Err: err}
		}
		if cfg.Header == nil {
			cfg.Header = http.Header{}
		}
		cfg.Header.Add(name, value)
	}
	if o.body != "" {
		b, err := readBody(o.body, cmd.InOrStdin())
		if err != nil {
			return cfg, &FlagError{Flag: "--body", Err: err}
		}
		cfg.Body = b
	}
	if !o.quiet {
		cfg.Progress = cmd.ErrOrStderr()
	}
	if o.grpcMethod != "" {
		if err := o.grpcConfig(cmd, url, &cfg); err != nil {
			return cfg, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, configErr(err)
	}
	if cfg.GRPC != nil {
		if err := o.grpcMessage(cmd, &cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// checkErrors applies --max-errors to a finished run.
func (o *options) checkErrors(rep *loadgen.Report) error {
	if o.maxErrors < 0 {
		return nil
	}
	var failed int64
	for _, n := range rep.Errors {
		failed += n
	}
	if failed > o.maxErrors {
		return &TooManyErrorsError{Failed: failed, Scheduled: rep.Scheduled, Max: o.maxErrors}
	}
	return nil
}

// readBody reads --body: @FILE, @- for stdin, or the text itself.
func readBody(arg string, stdin io.Reader) ([]byte, error) {
	path, ok := strings.CutPrefix(arg, "@")
	if !ok {
		return []byte(arg), nil
	}
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, loadgen.MaxBodyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > loadgen.MaxBodyBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, loadgen.MaxBodyBytes)
	}
	return b, nil
}

// configErr names the flag behind a loadgen.ConfigError.
func configErr(err error) error {
	var ce *loadgen.ConfigError
	if errors.As(err, &ce) {
		return &FlagError{Flag: flagFor(ce.Field), Err: errors.New(ce.Reason)}
	}
	return err
}

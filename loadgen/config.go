package loadgen

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Hard caps that protect the machine running the generator. Validate
// rejects a Config beyond them.
const (
	MaxRate        = 50_000           // requests per second, in Rate and in every step
	MaxDuration    = time.Hour        // of a run
	MaxCount       = 10_000_000       // requests in a run
	MaxInFlightCap = 10_000           // for MaxInFlight and Connections
	MaxKeys        = 100_000          // distinct balance keys
	MaxBodyBytes   = 64 << 20         // request body
	MaxTimeout     = 10 * time.Minute // per request
	MaxWindows     = 10_000           // time windows in a report
	MaxReplicas    = 256              // replicas named in a report; the rest are OtherReplicas
	MinWindow      = 10 * time.Millisecond
)

// Defaults used for zero fields of Config.
const (
	DefaultRate           = 100
	DefaultMaxInFlight    = 1000
	DefaultTimeout        = 10 * time.Second
	DefaultServedByHeader = "X-Served-By"
	DefaultProgressEvery  = time.Second
)

// ErrInvalidConfig is wrapped by every error Validate returns; the
// concrete error is a *ConfigError naming the field.
var ErrInvalidConfig = errors.New("invalid config")

// ConfigError says which Config field is wrong and why.
type ConfigError struct {
	Field  string // Config field name, e.g. "Rate" or "Steps"
	Reason string
}

func (e *ConfigError) Error() string {
	return "loadgen: " + ErrInvalidConfig.Error() + ": " + e.Field + ": " + e.Reason
}

// Unwrap lets callers test for ErrInvalidConfig with errors.Is.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func fieldErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Step is one stage of a stepped load: Rate requests per second for
// Duration. A Rate of zero is a pause.
type Step struct {
	Rate     float64
	Duration time.Duration
}

// String formats the step as ParseSteps reads it, e.g. "100:10s".
func (s Step) String() string {
	return strconv.FormatFloat(s.Rate, 'g', -1, 64) + ":" + s.Duration.String()
}

// Config describes one load run. The zero value of every field is valid
// and stands for the default documented on it; URL (or GRPC) and one of
// Duration, Count or Steps must be set.
type Config struct {
	// URL is the target, http:// or https://.
	URL string
	// GRPC, if not nil, makes the run send unary gRPC calls instead of
	// HTTP requests. URL, Method, Header, Body, Connections,
	// NoKeepAlive, H2C and Transport are HTTP's and must then be
	// unset; KeyHeader and ServedByHeader name metadata keys (in lower
	// case) and Timeout is each call's deadline.
	GRPC *GRPC
	// Method defaults to GET.
	Method string
	// Header is sent with every request. A "Host" entry sets the
	// request's Host.
	Header http.Header
	// Body is sent with every request; empty means no body.
	Body []byte

	// Rate is the constant request rate per second, used when Steps is
	// empty. Zero means DefaultRate.
	Rate float64
	// Steps, when not empty, replaces Rate with a sequence of rates; the
	// run ends after the last step at the latest.
	Steps []Step
	// Duration bounds the run: no request is scheduled at or after it.
	// Zero means no bound of its own.
	Duration time.Duration
	// Count bounds the number of requests scheduled (sent or dropped).
	// Zero means no bound of its own. At least one of Duration, Count
	// and Steps must bound the run.
	Count int64

	// MaxInFlight caps requests in flight; a request due while the cap
	// is reached is dropped. Zero means DefaultMaxInFlight.
	MaxInFlight int
	// Connections caps the connections kept to the target (keep-alive
	// pool size). Zero means MaxInFlight.
	Connections int
	// NoKeepAlive opens a new connection for every request.
	NoKeepAlive bool
	// H2C speaks unencrypted HTTP/2 with prior knowledge (http:// only).
	H2C bool
	// Timeout bounds each request, body included. Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// Transport, if not nil, sends the requests instead of a transport
	// built from Connections, NoKeepAlive, H2C and Timeout. Run does not
	// close its idle connections.
	Transport http.RoundTripper

	// KeyHeader, if set, carries a balance key on every request, chosen
	// uniformly from Keys distinct keys ("key-0", "key-1", ...) by a
	// generator seeded with Seed, so a run's key sequence is repeatable.
	KeyHeader string
	// Keys is the number of distinct keys; zero means 1.
	Keys int
	// Seed seeds the key choice.
	Seed uint64

	// ServedByHeader names the response header carrying the replica.
	// Empty means DefaultServedByHeader.
	ServedByHeader string
	// Window, if not zero, splits the report into windows of this length
	// by scheduled send time.
	Window time.Duration

	// Progress, if not nil, receives a progress line every
	// ProgressEvery and one at the end.
	Progress io.Writer
	// ProgressEvery is the interval of progress lines; zero means
	// DefaultProgressEvery.
	ProgressEvery time.Duration
}

// Validate reports the first thing wrong with c as a *ConfigError.
func (c *Config) Validate() error {
	if c.GRPC != nil {
		if err := c.validateGRPC(); err != nil {
			return err
		}
	} else if err := c.validateHTTP(); err != nil {
		return err
	}
	return c.validateLoad()
}

// validateHTTP checks the fields that describe an HTTP request.
func (c *Config) validateHTTP() error {
	if c.URL == "" {
		return fieldErr("URL", "required")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		// url.Error repeats the URL, password and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fieldErr("URL", "not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fieldErr("URL", "%q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return fieldErr("URL", "%q: no host", u.Redacted())
	}
	if c.H2C && u.Scheme != "http" {
		return fieldErr("H2C", "needs an http:// URL, got %q", u.Redacted())
	}
	if c.Method != "" && !validToken(c.Method) {
		return fieldErr("Method", "%q is not a valid HTTP method", c.Method)
	}
	for name, vals := range c.Header {
		for _, v := range vals {
			if err := checkHeader(name, v); err != nil {
				return fieldErr("Header", "%v", err)
			}
		}
	}
	if len(c.Body) > MaxBodyBytes {
		return fieldErr("Body", "%d bytes, above the cap of %d", len(c.Body), MaxBodyBytes)
	}
	switch {
	case c.KeyHeader != "" && !validToken(c.KeyHeader):
		return fieldErr("KeyHeader", "%q is not a valid header name", c.KeyHeader)
	case c.ServedByHeader != "" && !validToken(c.ServedByHeader):
		return fieldErr("ServedByHeader", "%q is not a valid header name", c.ServedByHeader)
	}
	return nil
}

// validateLoad checks the fields that shape the load, the same for
// HTTP and gRPC.
func (c *Config) validateLoad() error {
	if err := checkRate("Rate", c.Rate); err != nil {
		return err
	}
	var total time.Duration
	for i, s := range c.Steps {
		if err := checkRate("Steps", s.Rate); err != nil {
			return fieldErr("Steps", "step %d: rate %v out of range [0, %d]", i+1, s.Rate, MaxRate)
		}
		if s.Duration <= 0 {
			return fieldErr("Steps", "step %d: duration %v must be positive", i+1, s.Duration)
		}
		total += s.Duration
		if total > MaxDuration || total < 0 {
			return fieldErr("Steps", "total duration above the cap of %v", MaxDuration)
		}
	}
	switch {
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fieldErr("Duration", "%v out of range [0, %v]", c.Duration, MaxDuration)
	case c.Count < 0 || c.Count > MaxCount:
		return fieldErr("Count", "%d out of range [0, %d]", c.Count, MaxCount)
	case c.Duration == 0 && c.Count == 0 && len(c.Steps) == 0:
		return fieldErr("Duration", "set Duration, Count or Steps to bound the run")
	case c.MaxInFlight < 0 || c.MaxInFlight > MaxInFlightCap:
		return fieldErr("MaxInFlight", "%d out of range [0, %d]", c.MaxInFlight, MaxInFlightCap)
	case c.Connections < 0 || c.Connections > MaxInFlightCap:
		return fieldErr("Connections", "%d out of range [0, %d]", c.Connections, MaxInFlightCap)
	case c.Timeout < 0 || c.Timeout > MaxTimeout:
		return fieldErr("Timeout", "%v out of range [0, %v]", c.Timeout, MaxTimeout)
	case c.Keys < 0 || c.Keys > MaxKeys:
		return fieldErr("Keys", "%d out of range [0, %d]", c.Keys, MaxKeys)
	case c.Keys > 0 && c.KeyHeader == "":
		return fieldErr("Keys", "needs KeyHeader")
	case c.ProgressEvery < 0:
		return fieldErr("ProgressEvery", "%v is negative", c.ProgressEvery)
	case c.Window < 0 || (c.Window > 0 && c.Window < MinWindow):
		return fieldErr("Window", "%v below the minimum of %v", c.Window, MinWindow)
	}
	if c.Window > 0 && c.span()/c.Window >= MaxWindows {
		return fieldErr("Window", "%v splits the run into more than %d windows", c.Window, MaxWindows)
	}
	return nil
}

func checkRate(field string, r float64) error {
	if math.IsNaN(r) || r < 0 || r > MaxRate {
		return fieldErr(field, "%v out of range [0, %d]", r, MaxRate)
	}
	return nil
}

// span bounds the length of the timetable from Duration, Steps and,
// at a constant rate, Count.
func (c *Config) span() time.Duration {
	span := MaxDuration
	if c.Duration > 0 {
		span = c.Duration
	}
	if len(c.Steps) > 0 {
		var total time.Duration
		for _, s := range c.Steps {
			total += s.Duration
		}
		span = min(span, total)
	} else if c.Count > 0 {
		rate := c.Rate
		if rate == 0 {
			rate = DefaultRate
		}
		span = min(span, time.Duration(float64(c.Count)/rate*float64(time.Second))+time.Second)
	}
	return span
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c Config) withDefaults() Config {
	if c.Method == "" && c.GRPC == nil {
		c.Method = http.MethodGet
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Connections == 0 {
		c.Connections = c.MaxInFlight
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Keys == 0 {
		c.Keys = 1
	}
	if c.ServedByHeader == "" {
		c.ServedByHeader = DefaultServedByHeader
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	return c
}

// steps returns the rate schedule: Steps, or Rate for ever.
func (c *Config) steps() []Step {
	if len(c.Steps) > 0 {
		return c.Steps
	}
	return []Step{{Rate: c.Rate, Duration: math.MaxInt64}}
}

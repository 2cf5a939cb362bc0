package loadgen

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

// GRPC describes the unary call a gRPC run sends (Config.GRPC).
type GRPC struct {
	// Target is the channel's target: host:port, dns:///name:port, or
	// any scheme with a resolver registered with grpc-go. It may not name
	// a user or password (user:pw@): credentials go in Metadata.
	Target string
	// Method is the full method name, /package.Service/Method.
	Method string
	// Message is the request in protobuf wire format, sent as is; empty
	// is a message with every field unset.
	Message []byte
	// Metadata is sent with every call. Keys are lower-case.
	Metadata metadata.MD
	// Dial makes the channel to Target with the options Run passes (a
	// stats handler that tells which calls the server answered, and
	// by which replica), which it must keep. Run closes the channel at
	// the end. Nil means grpc.NewClient with insecure (plaintext)
	// transport credentials and grpc-go's defaults.
	Dial func(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error)
}

// GRPCKind is the error kind of a call the server answered with the
// non-OK status code c, e.g. "grpc_unavailable".
func GRPCKind(c codes.Code) string {
	if int(c) < len(grpcCodes) {
		return grpcCodes[c].kind
	}
	return "grpc_code_" + fmt.Sprint(uint32(c))
}

// grpcCodes holds each standard code's name and kind, so that recording
// a call does not allocate.
var grpcCodes = func() [17]struct{ name, kind string } {
	var t [17]struct{ name, kind string }
	for i := range t {
		name := codes.Code(i).String()
		var kind strings.Builder
		kind.WriteString("grpc_")
		for j := 0; j < len(name); j++ {
			c := name[j]
			if c >= 'A' && c <= 'Z' {
				if j > 0 && name[j-1] >= 'a' && name[j-1] <= 'z' {
					kind.WriteByte('_')
				}
				c += 'a' - 'A'
			}
			kind.WriteByte(c)
		}
		t[i].name, t[i].kind = name, kind.String()
	}
	return t
}()

func codeName(c codes.Code) string {
	if int(c) < len(grpcCodes) {
		return grpcCodes[c].name
	}
	return c.String()
}

// sortedCodes orders code names as the codes' numbers, unknown ones
// last by name.
func sortedCodes(m map[string]int64) []string {
	rank := func(name string) int {
		for i, c := range grpcCodes {
			if c.name == name {
				return i
			}
		}
		return len(grpcCodes)
	}
	keys := sortedKeys(m)
	slices.SortStableFunc(keys, func(a, b string) int { return rank(a) - rank(b) })
	return keys
}

// validGRPCMethod reports whether m looks like /package.Service/Method.
func validGRPCMethod(m string) bool {
	svc, meth, ok := strings.Cut(strings.TrimPrefix(m, "/"), "/")
	if !strings.HasPrefix(m, "/") || !ok || svc == "" || meth == "" || len(m) > maxMethodLen {
		return false
	}
	for _, part := range strings.Split(svc, ".") {
		if !isIdent(part) {
			return false
		}
	}
	return isIdent(meth)
}

const maxMethodLen = 1024

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// CheckMetadataKey reports whether key may be sent as gRPC metadata:
// lower-case letters, digits, '-', '_' and '.', not one of gRPC's own
// "grpc-" keys.
func CheckMetadataKey(key string) error {
	if why := metadataKeyProblem(key); why != "" {
		return errors.New("loadgen: " + why)
	}
	return nil
}

// metadataKeyProblem says what is wrong with key, or "".
func metadataKeyProblem(key string) string {
	if key == "" {
		return "metadata key is empty"
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Sprintf("metadata key %q: only lower-case letters, digits, '-', '_' and '.'", shownName(key))
		}
	}
	if strings.HasPrefix(key, "grpc-") {
		return fmt.Sprintf("metadata key %q: grpc- keys are gRPC's own", key)
	}
	return ""
}

// metadataValueProblem accepts printable ASCII, or anything for a binary
// ("-bin") key, which gRPC sends base64-encoded.
func metadataValueProblem(key, v string) string {
	if strings.HasSuffix(key, "-bin") {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			// Not the value itself: it may be a credential.
			return fmt.Sprintf("metadata %q: its value holds a byte that is not printable ASCII (or use a -bin key)", key)
		}
	}
	return ""
}

// validateGRPC checks the gRPC half of c.
func (c *Config) validateGRPC() error {
	g := c.GRPC
	switch {
	case c.URL != "":
		return fieldErr("URL", "set either URL or GRPC, not both")
	case c.Method != "":
		return fieldErr("Method", "is HTTP's; GRPC.Method names the call")
	case len(c.Header) > 0:
		return fieldErr("Header", "is HTTP's; use GRPC.Metadata")
	case len(c.Body) > 0:
		return fieldErr("Body", "is HTTP's; use GRPC.Message")
	case c.H2C:
		return fieldErr("H2C", "applies to HTTP only")
	case c.NoKeepAlive:
		return fieldErr("NoKeepAlive", "applies to HTTP only")
	case c.Connections != 0:
		return fieldErr("Connections", "applies to HTTP only")
	case c.Transport != nil:
		return fieldErr("Transport", "applies to HTTP only; use GRPC.Dial")
	case g.Target == "":
		return fieldErr("GRPC.Target", "required")
	case targetHasUserinfo(g.Target):
		return fieldErr("GRPC.Target", "names a user or password before an @, which gRPC does not use; send credentials as metadata")
	case !validGRPCMethod(g.Method):
		return fieldErr("GRPC.Method", "%q is not a full method name /package.Service/Method", g.Method)
	case len(g.Message) > MaxBodyBytes:
		return fieldErr("GRPC.Message", "%d bytes, above the cap of %d", len(g.Message), MaxBodyBytes)
	}
	for k, vals := range g.Metadata {
		if why := metadataKeyProblem(k); why != "" {
			return fieldErr("GRPC.Metadata", "%s", why)
		}
		for _, v := range vals {
			if why := metadataValueProblem(k, v); why != "" {
				return fieldErr("GRPC.Metadata", "%s", why)
			}
		}
	}
	if c.KeyHeader != "" {
		if why := metadataKeyProblem(strings.ToLower(c.KeyHeader)); why != "" {
			return fieldErr("KeyHeader", "%s", why)
		}
	}
	if c.ServedByHeader != "" {
		if why := metadataKeyProblem(strings.ToLower(c.ServedByHeader)); why != "" {
			return fieldErr("ServedByHeader", "%s", why)
		}
	}
	return nil
}

// targetHasUserinfo reports whether a gRPC target of the form
// scheme://authority/endpoint has a user or password in its authority
// (or a target without a scheme has an @ before any '/', as a host:port
// cannot). gRPC's resolvers ignore one, so it can only be a credential
// typed in the wrong place; refusing it, without repeating it, keeps it
// out of the report and of the dial errors that repeat the target. Unix
// socket targets are paths, where an @ is just a character.
func targetHasUserinfo(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return false
	}
	if _, rest, ok := strings.Cut(target, "://"); ok {
		target = rest
	}
	authority, _, _ := strings.Cut(target, "/")
	return strings.Contains(authority, "@")
}

// grpcCaller sends a run's calls over one channel.
type grpcCaller struct {
	cc       *grpc.ClientConn
	method   string
	msg      rawMessage
	md       metadata.MD
	keyName  string // lower-case KeyHeader
	servedBy string // lower-case ServedByHeader
	opts     []grpc.CallOption
}

func newGRPCCaller(c *Config) (*grpcCaller, error) {
	dial := c.GRPC.Dial
	if dial == nil {
		dial = func(target string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
			return grpc.NewClient(target, append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)...)
		}
	}
	cc, err := dial(c.GRPC.Target, grpc.WithStatsHandler(answerWatcher{}))
	if err != nil {
		return nil, fieldErr("GRPC.Target", "%q: %v", c.GRPC.Target, err)
	}
	cc.Connect()
	return &grpcCaller{
		cc:       cc,
		method:   c.GRPC.Method,
		msg:      rawMessage(c.GRPC.Message),
		md:       c.GRPC.Metadata.Copy(),
		keyName:  strings.ToLower(c.KeyHeader),
		servedBy: strings.ToLower(c.ServedByHeader),
		opts: []grpc.CallOption{
			grpc.ForceCodecV2(rawCodec{}),
			grpc.MaxCallRecvMsgSize(MaxBodyBytes),
			grpc.MaxCallSendMsgSize(MaxBodyBytes),
		},
	}, nil
}

// do sends one call; the result is the server's answer or, failing
// one, what the client saw.
func (c *grpcCaller) do(runCtx context.Context, timeout time.Duration, j job) result {
	res := result{offset: j.offset}
	ctx, cancel := context.WithTimeout(runCtx, timeout)
	defer cancel()
	md := c.md
	if j.key != nil {
		md = md.Copy()
		md[c.keyName] = j.key
	}
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, md)
	}
	a := &answer{servedByKey: c.servedBy}
	ctx = context.WithValue(ctx, answerKey{}, a)
	err := c.cc.Invoke(ctx, c.method, c.msg, &discarded{}, c.opts...)
	st, _ := status.FromError(err)
	res.code = codeName(st.Code())
	answered, servedBy := a.get()
	if answered {
		res.answered = true
		res.latency = time.Since(j.intended)
		res.servedBy = servedBy
		if st.Code() != codes.OK {
			res.kind = GRPCKind(st.Code())
			res.msg = sample(codeName(st.Code()) + ": " + st.Message())
		}
		return res
	}
	if runCtx.Err() != nil {
		res.kind, res.msg = KindCanceled, msgCanceled
		return res
	}
	if st.Code() == codes.OK {
		// Answered without the watcher seeing it: a Dial that dropped
		// Run's options. Count the call, not its replica.
		res.answered = true
		res.latency = time.Since(j.intended)
		return res
	}
	res.kind = classifyGRPC(st)
	res.msg = sample(codeName(st.Code()) + ": " + st.Message())
	return res
}

// classifyGRPC names the kind of a call that failed before the server
// answered. grpc-go hands over the transport's error as text only, so
// the kinds HTTP gets from the error's type are read from it here.
func classifyGRPC(st *status.Status) string {
	if st.Code() == codes.DeadlineExceeded {
		return KindTimeout
	}
	m := st.Message()
	switch {
	case strings.Contains(m, "connection refused"):
		return KindRefused
	case strings.Contains(m, "no such host"), strings.Contains(m, "produced zero addresses"):
		return KindDNS
	case strings.Contains(m, "connection reset"), strings.Contains(m, "broken pipe"):
		return KindReset
	case strings.Contains(m, "EOF"), strings.Contains(m, "closing"), strings.Contains(m, "connection closed"):
		return KindClosed
	case st.Code() == codes.Canceled:
		return KindCanceled
	}
	return KindOther
}

// rawMessage is a request already in protobuf wire format.
type rawMessage []byte

// discarded is the response, which the run does not read.
type discarded struct{}

// rawCodec sends rawMessage as is and drops responses unread. Its name
// is "proto", so the server decodes the request with its protobuf
// codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(rawMessage)
	if !ok {
		return nil, fmt.Errorf("loadgen: raw codec cannot send %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(m)}, nil
}

func (rawCodec) Unmarshal(_ mem.BufferSlice, v any) error {
	if _, ok := v.(*discarded); !ok {
		return fmt.Errorf("loadgen: raw codec cannot receive %T", v)
	}
	return nil
}

func (rawCodec) Name() string { return "proto" }

// answer is what the watcher learns about one call: whether its last
// attempt got a status from the server (trailers), and the replica
// named in its header or trailer metadata.
type answer struct {
	servedByKey string
	mu          sync.Mutex
	answered    bool
	servedBy    string
}

func (a *answer) get() (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.answered, a.servedBy
}

type answerKey struct{}

// answerWatcher is a client stats handler filling in the answer of each
// call that carries one in its context. It has no state of its own.
type answerWatcher struct{}

var _ stats.Handler = answerWatcher{}

func (answerWatcher) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (answerWatcher) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (answerWatcher) HandleConn(context.Context, stats.ConnStats) {}

func (answerWatcher) HandleRPC(ctx context.Context, s stats.RPCStats) {
	a, ok := ctx.Value(answerKey{}).(*answer)
	if !ok {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch s := s.(type) {
	case *stats.Begin:
		// A retried call: only the last attempt's answer counts.
		a.answered, a.servedBy = false, ""
	case *stats.InHeader:
		if v := s.Header.Get(a.servedByKey); len(v) > 0 {
			a.servedBy = v[0]
		}
	case *stats.InTrailer:
		a.answered = true
		if v := s.Trailer.Get(a.servedByKey); len(v) > 0 && a.servedBy == "" {
			a.servedBy = v[0]
		}
	}
}

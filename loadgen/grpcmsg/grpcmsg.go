package grpcmsg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Errors Describe and Method's encoders wrap; the message around each
// names the method, service or type at fault.
var (
	ErrBadMethod      = errors.New("not a method name")
	ErrUnreachable    = errors.New("target unreachable")
	ErrNoReflection   = errors.New("server has no reflection service")
	ErrUnknownService = errors.New("unknown service")
	ErrUnknownMethod  = errors.New("unknown method")
	ErrStreaming      = errors.New("streaming method")
	ErrBadMessage     = errors.New("message does not match the request type")
)

// MaxFiles caps the descriptor files read from one server.
const MaxFiles = 10_000

// The reflection service's names: v1, and v1alpha for older servers;
// both carry the same messages.
const (
	reflectionV1      = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	reflectionV1alpha = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
)

// ParseMethod reads a method name as /package.Service/Method, also
// taking package.Service/Method and package.Service.Method (as grpcurl
// does), and returns the full method name a call needs with its
// service's and method's names.
func ParseMethod(s string) (full, service, method string, err error) {
	bad := func(why string) (string, string, string, error) {
		return "", "", "", fmt.Errorf("grpcmsg: %q: %w: %s", s, ErrBadMethod, why)
	}
	if len(s) > 1024 {
		return bad("longer than 1024 bytes")
	}
	t := strings.TrimPrefix(s, "/")
	service, method, ok := strings.Cut(t, "/")
	if !ok {
		i := strings.LastIndexByte(t, '.')
		if i < 0 {
			return bad("want /package.Service/Method")
		}
		service, method = t[:i], t[i+1:]
	}
	if service == "" || method == "" {
		return bad("want /package.Service/Method")
	}
	for _, part := range strings.Split(service, ".") {
		if !isIdent(part) {
			return bad(fmt.Sprintf("service %q is not a dotted name", service))
		}
	}
	if !isIdent(method) {
		return bad(fmt.Sprintf("method %q is not a name", method))
	}
	return "/" + service + "/" + method, service, method, nil
}

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

// Method is a unary method's description, as the server gave it.
type Method struct {
	// Desc describes the method; Desc.Input() is the request type.
	Desc  protoreflect.MethodDescriptor
	types *dynamicpb.Types
}

// FullName is the method's full name for a call, /package.Service/Method.
func (m *Method) FullName() string {
	return "/" + string(m.Desc.Parent().FullName()) + "/" + string(m.Desc.Name())
}

// EncodeJSON turns data, the request in protobuf's JSON mapping, into
// protobuf wire format.
func (m *Method) EncodeJSON(data []byte) ([]byte, error) {
	msg := dynamicpb.NewMessage(m.Desc.Input())
	opts := protojson.UnmarshalOptions{Resolver: m.types}
	if err := opts.Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("grpcmsg: %w %s: %s", ErrBadMessage, m.Desc.Input().FullName(), protoErr(err))
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("grpcmsg: %w %s: %s", ErrBadMessage, m.Desc.Input().FullName(), protoErr(err))
	}
	return b, nil
}

// CheckWire reports whether b, protobuf wire format, decodes as the
// request type.
func (m *Method) CheckWire(b []byte) error {
	msg := dynamicpb.NewMessage(m.Desc.Input())
	if err := (proto.UnmarshalOptions{Resolver: m.types}).Unmarshal(b, msg); err != nil {
		return fmt.Errorf("grpcmsg: %w %s: %s", ErrBadMessage, m.Desc.Input().FullName(), protoErr(err))
	}
	return nil
}

// protoErr is err's text without the "proto:" prefix, which the
// protobuf module spells with a space or a no-break space at random
// (per build) so that nobody matches on it.
func protoErr(err error) string {
	s := err.Error()
	if rest, ok := strings.CutPrefix(s, "proto:"); ok {
		s = strings.TrimLeft(rest, " \u00a0")
	}
	return s
}

// Describe asks the server's reflection service (v1, else v1alpha) for
// the unary method named full (see ParseMethod) and the types of its
// request. ctx bounds the whole exchange.
func Describe(ctx context.Context, conn grpc.ClientConnInterface, full string) (*Method, error) {
	full, service, method, err := ParseMethod(full)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the reflection stream
	r, err := openReflection(ctx, conn)
	if err != nil {
		return nil, err
	}
	defer r.close()

	files := map[string]*descriptorpb.FileDescriptorProto{}
	resp, err := r.ask(&rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: service},
	})
	if err != nil {
		return nil, err
	}
	if e := resp.GetErrorResponse(); e != nil {
		if codes.Code(e.GetErrorCode()) == codes.NotFound {
			return nil, fmt.Errorf("grpcmsg: %w %s%s", ErrUnknownService, service, r.listServices())
		}
		return nil, fmt.Errorf("grpcmsg: reflection on %s: %s", service, e.GetErrorMessage())
	}
	if err := addFiles(files, resp); err != nil {
		return nil, err
	}
	if err := r.fetchDependencies(files); err != nil {
		return nil, err
	}

	set := &descriptorpb.FileDescriptorSet{}
	for _, name := range sortedNames(files) {
		set.File = append(set.File, files[name])
	}
	reg, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("grpcmsg: the server's descriptors of %s do not build: %s", service, protoErr(err))
	}
	d, err := reg.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return nil, fmt.Errorf("grpcmsg: %w %s (the server's reflection names it but does not describe it)", ErrUnknownService, service)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("grpcmsg: %w %s: the name is a %s, not a service", ErrUnknownService, service, kindOf(d))
	}
	md := sd.Methods().ByName(protoreflect.Name(method))
	if md == nil {
		var names []string
		for i := range sd.Methods().Len() {
			names = append(names, string(sd.Methods().Get(i).Name()))
		}
		return nil, fmt.Errorf("grpcmsg: %w %s in service %s, which has %s", ErrUnknownMethod, method, service, strings.Join(names, ", "))
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, fmt.Errorf("grpcmsg: %w %s: only unary methods are supported", ErrStreaming, full)
	}
	return &Method{Desc: md, types: dynamicpb.NewTypes(reg)}, nil
}

func kindOf(d protoreflect.Descriptor) string {
	switch d.(type) {
	case protoreflect.MessageDescriptor:
		return "message"
	case protoreflect.EnumDescriptor:
		return "enum"
	case protoreflect.MethodDescriptor:
		return "method"
	}
	return "declaration"
}

func sortedNames(m map[string]*descriptorpb.FileDescriptorProto) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// reflStream is one open ServerReflectionInfo stream.
type reflStream struct {
	stream grpc.ClientStream
}

var reflectionDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// openReflection opens a stream and makes sure the server answers on
// it: v1 first, v1alpha when v1 is unimplemented.
func openReflection(ctx context.Context, conn grpc.ClientConnInterface) (*reflStream, error) {
	for _, name := range []string{reflectionV1, reflectionV1alpha} {
		s, err := conn.NewStream(ctx, reflectionDesc, name)
		if err != nil {
			if err = callErr(err); errors.Is(err, ErrNoReflection) {
				continue
			}
			return nil, err
		}
		r := &reflStream{stream: s}
		// A request every server answers, to learn whether this one
		// speaks this version.
		_, err = r.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{ListServices: "*"}})
		if err == nil {
			return r, nil
		}
		r.close()
		if !errors.Is(err, ErrNoReflection) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("grpcmsg: %w", ErrNoReflection)
}

func (r *reflStream) close() { _ = r.stream.CloseSend() }

// ask sends one request and reads its answer.
func (r *reflStream) ask(req *rpb.ServerReflectionRequest) (*rpb.ServerReflectionResponse, error) {
	if err := r.stream.SendMsg(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, callErr(err)
	}
	resp := new(rpb.ServerReflectionResponse)
	if err := r.stream.RecvMsg(resp); err != nil {
		return nil, callErr(err)
	}
	return resp, nil
}

// listServices is ", which has ..." naming the server's services, or
// nothing when it cannot say.
func (r *reflStream) listServices() string {
	resp, err := r.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{ListServices: "*"}})
	if err != nil {
		return ""
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if len(names) == 0 {
		return ""
	}
	slices.Sort(names)
	return "; the server has " + strings.Join(names, ", ")
}

// fetchDependencies asks for every file files import and lacks, from
// the server, else from the descriptors linked into this program (the
// well-known types).
func (r *reflStream) fetchDependencies(files map[string]*descriptorpb.FileDescriptorProto) error {
	for {
		var missing []string
		for _, f := range files {
			for _, dep := range f.GetDependency() {
				if _, ok := files[dep]; !ok && !slices.Contains(missing, dep) {
					missing = append(missing, dep)
				}
			}
		}
		if len(missing) == 0 {
			return nil
		}
		for _, dep := range missing {
			resp, err := r.ask(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}})
			if err != nil {
				return err
			}
			if resp.GetErrorResponse() == nil {
				if err := addFiles(files, resp); err != nil {
					return err
				}
			}
			if _, ok := files[dep]; ok {
				continue
			}
			fd, err := protoregistry.GlobalFiles.FindFileByPath(dep)
			if err != nil {
				return fmt.Errorf("grpcmsg: the server does not describe %s, which its descriptors import", dep)
			}
			files[dep] = protodesc.ToFileDescriptorProto(fd)
		}
	}
}

// addFiles decodes the descriptors of a FileDescriptorResponse.
func addFiles(files map[string]*descriptorpb.FileDescriptorProto, resp *rpb.ServerReflectionResponse) error {
	fdr := resp.GetFileDescriptorResponse()
	if fdr == nil {
		return fmt.Errorf("grpcmsg: reflection answered %T, not file descriptors", resp.GetMessageResponse())
	}
	for _, b := range fdr.GetFileDescriptorProto() {
		fd := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(b, fd); err != nil {
			return fmt.Errorf("grpcmsg: the server sent a bad file descriptor: %s", protoErr(err))
		}
		if _, ok := files[fd.GetName()]; !ok {
			if len(files) >= MaxFiles {
				return fmt.Errorf("grpcmsg: the server describes more than %d files", MaxFiles)
			}
			files[fd.GetName()] = fd
		}
	}
	return nil
}

// callErr turns a failed reflection call into one of the package's
// errors, with grpc-go's wording of connection errors trimmed.
func callErr(err error) error {
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.Unimplemented:
		return fmt.Errorf("grpcmsg: %w", ErrNoReflection)
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("grpcmsg: %w: %s", ErrUnreachable, connMessage(st))
	}
	return fmt.Errorf("grpcmsg: reflection: %s: %s", st.Code(), st.Message())
}

// connMessage is the reason in a connection error, without the layers
// of grpc-go's wrapping around it.
func connMessage(st *status.Status) string {
	m := st.Message()
	if st.Code() == codes.DeadlineExceeded {
		if m == context.DeadlineExceeded.Error() {
			return "no answer before the deadline"
		}
		return "no answer before the deadline: " + m
	}
	for _, p := range []string{"last connection error: ", "connection error: desc = ", "\"", "transport: ", "Error while dialing: ", "error while dialing: "} {
		m = strings.ReplaceAll(m, p, "")
	}
	return m
}

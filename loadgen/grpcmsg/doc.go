// Package grpcmsg builds the request of a gRPC load run: it reads a
// method name, finds the method and its request type through the
// server's reflection service (grpc.reflection.v1, else v1alpha), and
// encodes a JSON message (protobuf's JSON mapping) into protobuf wire
// format.
//
// Nothing here is compiled from .proto files: the descriptors come from
// the server at run time (protodesc, dynamicpb), with the well-known
// types linked into the program as a fallback for imports the server
// does not describe. Every failure wraps one of the package's sentinel
// errors (ErrUnreachable, ErrNoReflection, ErrUnknownService,
// ErrUnknownMethod, ErrStreaming, ErrBadMessage, ErrBadMethod) and names
// the target, service, method or type at fault.
package grpcmsg

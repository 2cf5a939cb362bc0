// Package load implements `shoal load`: open-loop HTTP load to a URL, or
// unary gRPC calls of one method to a gRPC target (--grpc, the message
// from JSON through the server's reflection or as wire bytes), at a
// fixed or stepped rate, reported as latency percentiles, errors by kind,
// gRPC status codes and each replica's share of the requests (package
// loadgen does the work, loadgen/grpcmsg builds the gRPC message and
// grpcclient makes the channel).
package load

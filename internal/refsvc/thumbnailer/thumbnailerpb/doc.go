// Package thumbnailerpb is the generated Go of the thumbnailer's gRPC
// schema, proto/shoal/thumbnailer/v1/thumbnailer.proto: its messages and
// the Thumbnailer service's client and server. Regenerate it with `make
// proto`; `make proto-check` fails when it differs from what the pinned
// generators make. Everything else in it is generated.
package thumbnailerpb

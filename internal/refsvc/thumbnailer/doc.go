// Package thumbnailer is the thumbnailer reference service: its HTTP API,
// where POST /v1/thumbnails turns a PNG, JPEG or GIF body into a resized
// image, the same over gRPC (shoal.thumbnailer.v1.Thumbnailer/Resize,
// [API.RegisterGRPC]), both on one core with one cache and one set of
// memory budgets, and its wiring into a service.Service ([Bind], [Add]),
// which is all cmd/thumbnailer does beyond service.Main.
//
// The service is stateless and CPU-bound. Its only memory of past work is a
// small LRU keyed by the source's content digest, which is why callers
// balance it by consistent hashing on that digest.
package thumbnailer

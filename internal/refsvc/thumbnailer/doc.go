// Package thumbnailer is the HTTP API of the thumbnailer reference service:
// POST /v1/thumbnails turns a PNG, JPEG or GIF body into a resized image.
//
// The service is stateless and CPU-bound. Its only memory of past work is a
// small LRU keyed by the source's content digest, which is why callers
// balance it by consistent hashing on that digest.
package thumbnailer

// Package thumbnail resizes PNG, JPEG and GIF images within explicit
// limits, and caches recent results by content digest.
//
// It is the CPU-bound core of the thumbnailer service: [ReadHeader] reads
// what an image will cost before any pixel is decoded, [Need] turns that
// into the bytes decoding, resizing and encoding it take (so a service
// can hold that much of a memory budget while it works), [Decode] checks
// the declared pixel count, [Resize] resamples with a Catmull-Rom kernel a
// band of rows at a time, and [Cache] keeps a bounded LRU of encoded
// results so that a balancer hashing on the same digest sends repeat work
// where the answer already is. Decoding and resizing stop once their
// context ends.
package thumbnail

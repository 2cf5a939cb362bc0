// Package thumbnail resizes PNG, JPEG and GIF images within explicit
// limits, and caches recent results by content digest.
//
// It is the CPU-bound core of the thumbnailer service: [Decode] checks the
// declared pixel count before allocating any pixels, [Resize] resamples with
// a Catmull-Rom kernel, and [Cache] keeps a bounded LRU of encoded results so
// that a balancer hashing on the same digest sends repeat work where the
// answer already is.
package thumbnail

// Package image builds OCI container images of Go commands without Docker:
// it compiles a static binary with `go build` and lays it on an empty base
// as a single layer, the way ko does, then writes a tarball that
// `docker load`, `ctr images import` and `kind load image-archive` accept.
//
// The image runs the binary as the non-root user 65532 with no shell, no
// libc and nothing else in the filesystem, which is what a CGO_ENABLED=0
// Go binary needs and all a restricted Pod Security profile allows.
package image

package server

// http2StackReserve is the stack an HTTP/2 request's goroutine is grown
// to hold before the handlers run. net/http starts a goroutine for every
// HTTP/2 stream, with the runtime's smallest stack (2 KiB, or the average
// the runtime has seen), and a handler behind a few layers of middleware
// outgrows it: the runtime then copies the stack while every layer's
// frame is on it, adjusting each, on every request. Growing it here, at
// the top, copies only net/http's few frames; the handlers below then run
// without another copy. HTTP/1 goroutines serve a connection's requests
// one after another and keep their grown stack, so they are left alone.
const http2StackReserve = 6 << 10

// growStack makes the goroutine's stack hold http2StackReserve more bytes
// than it holds now: its frame is that large, so the runtime grows the
// stack, if it must, on entry.
//
//go:noinline
func growStack() {
	var reserve [http2StackReserve]byte
	touch(reserve[:])
}

// touch keeps growStack's frame from being optimised away.
//
//go:noinline
func touch([]byte) {}

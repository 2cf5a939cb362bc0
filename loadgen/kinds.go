package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
)

// Error kinds, the keys of Report.Errors. Responses with a 4xx or 5xx
// status are counted under HTTPKind(code), e.g. "http_503".
const (
	KindRefused  = "connection_refused" // nothing listening at the target
	KindTimeout  = "timeout"            // Config.Timeout ran out, or the dial timed out
	KindReset    = "connection_reset"   // the peer reset the connection
	KindClosed   = "connection_closed"  // the peer closed the connection before a full response
	KindDNS      = "dns"                // the target's name did not resolve
	KindDropped  = "dropped"            // due while MaxInFlight requests were in flight; never sent
	KindCanceled = "canceled"           // the run's context ended while the request was in flight
	KindOther    = "other"              // any other transport error
)

// HTTPKind is the error kind of a response with status code.
func HTTPKind(code int) string { return "http_" + strconv.Itoa(code) }

// httpKinds holds HTTPKind for every status code so that recording one
// does not allocate.
var httpKinds = func() [600]string {
	var k [600]string
	for c := range k {
		k[c] = HTTPKind(c)
	}
	return k
}()

func statusKind(code int) string {
	if code >= 0 && code < len(httpKinds) {
		return httpKinds[code]
	}
	return HTTPKind(code)
}

// Sample messages of the kinds that have no error of their own.
const (
	msgDropped  = "not sent: MaxInFlight requests were in flight when it was due"
	msgCanceled = "the run ended while the request was in flight"
)

// maxSampleLen bounds a sample message, response body excerpt included.
const maxSampleLen = 160

// sample makes msg one line of at most maxSampleLen bytes.
func sample(msg string) string {
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > maxSampleLen {
		msg = strings.ToValidUTF8(msg[:maxSampleLen-3], "") + "..."
	}
	return msg
}

// statusSample is the sample of an error response: its status line and
// the start of its body, which usually says why.
func statusSample(code int, body []byte) string {
	msg := strconv.Itoa(code) + " " + http.StatusText(code)
	if b := strings.TrimSpace(string(body)); b != "" {
		msg += ": " + b
	}
	return sample(msg)
}

// classify names the kind of a transport error.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return KindClosed
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.As(err, new(*net.DNSError)):
		return KindDNS
	}
	return KindOther
}

package blackhole_test

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/internal/testkit/blackhole"
)

func TestListenAcceptsAndNeverAnswers(t *testing.T) {
	addr := blackhole.Listen(t, "127.0.0.1:0")
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatalf("write: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, err %v: want a timeout, no answer", n, err)
	}
}

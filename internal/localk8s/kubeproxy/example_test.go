package kubeproxy_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/shoal-dev/shoal/internal/localk8s/kubeproxy"
)

func ExampleProxy() {
	// A pod: a server on its own loopback address.
	pod, err := net.Listen("tcp", "127.0.3.1:0")
	if err != nil {
		panic(err)
	}
	defer pod.Close()
	go func() {
		for {
			c, err := pod.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from the pod\n")
			c.Close()
		}
	}()

	// The Service in front of it.
	p, err := kubeproxy.Listen(netip.MustParseAddrPort("127.0.0.1:0"), kubeproxy.Config{})
	if err != nil {
		panic(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Serve() }()
	p.SetEndpoints([]netip.AddrPort{pod.Addr().(*net.TCPAddr).AddrPort()})

	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		panic(err)
	}
	msg, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(msg))

	p.Close()
	fmt.Println(<-done)
	// Output:
	// hello from the pod
	// kubeproxy: proxy closed
}

// Command lookup resolves its argument with net.LookupHost, through the
// resolv.conf of the process, and prints the sorted addresses, one a line.
package main

import (
	"fmt"
	"net"
	"os"
	"slices"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: lookup NAME")
		os.Exit(2)
	}
	addrs, err := net.LookupHost(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "lookup:", err)
		os.Exit(1)
	}
	slices.Sort(addrs)
	for _, a := range addrs {
		fmt.Println(a)
	}
}

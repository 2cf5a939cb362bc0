// Command hello prints its user ID so tests can see how an image runs it.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("hello uid=%d\n", os.Getuid())
}

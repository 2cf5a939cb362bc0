// Command bare is the reference of the kit comparison: net/http alone, with
// no middleware, answering GET /trivial with "ok" on PORT.
package main

import (
	"io"
	"log"
	"net/http"
	"os"
)

func main() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /trivial", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok")
	})
	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), mux))
}

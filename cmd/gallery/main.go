// Command gallery is Shoal's edge reference service: sign-in with sessions
// in Redis, thumbnails made by the thumbnailer through the client-side
// balancer, and each user's history.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/service"
)

func main() {
	o := service.Options{Name: "gallery"}
	var g service.GalleryOptions
	cs := config.New(flag.NewFlagSet("gallery", flag.ContinueOnError), os.LookupEnv)
	service.Bind(cs, &o, 8080, 9090)
	service.BindGallery(cs, &g)
	if err := cs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the flag set has printed the usage
		}
		exit(err)
	}
	if err := service.RunGallery(context.Background(), o, g); err != nil {
		exit(err)
	}
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "gallery:", err)
	os.Exit(1)
}

// Command thumbnailer is Shoal's internal, stateless, CPU-bound reference
// service: POST /v1/thumbnails resizes a PNG, JPEG or GIF.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/service"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
)

func main() {
	o := service.Options{Name: "thumbnailer"}
	var cfg thumbnailer.Config
	cs := config.New(flag.NewFlagSet("thumbnailer", flag.ContinueOnError), os.LookupEnv)
	service.Bind(cs, &o, 8080, 9090)
	service.BindThumbnailer(cs, &cfg)
	if err := cs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // -h: the flag set has printed the usage
		}
		exit(err)
	}
	if err := service.RunThumbnailer(context.Background(), o, cfg); err != nil {
		exit(err)
	}
}

func exit(err error) {
	fmt.Fprintln(os.Stderr, "thumbnailer:", err)
	os.Exit(1)
}

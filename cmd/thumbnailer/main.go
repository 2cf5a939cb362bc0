// Command thumbnailer is Shoal's internal, stateless, CPU-bound reference
// service: POST /v1/thumbnails resizes a PNG, JPEG or GIF.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/internal/refsvc/config"
	"github.com/shoal-dev/shoal/internal/refsvc/service"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
)

func main() {
	err := service.Main(context.Background(), "thumbnailer", os.Args[1:], func(cs *config.Set) func(context.Context, *service.Service) error {
		var cfg thumbnailer.Config
		service.BindThumbnailer(cs, &cfg)
		return func(_ context.Context, s *service.Service) error { return service.AddThumbnailer(s, cfg) }
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "thumbnailer:", err)
		os.Exit(1)
	}
}

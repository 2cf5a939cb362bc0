// Command thumbnailer is Shoal's internal, stateless, CPU-bound reference
// service: POST /v1/thumbnails resizes a PNG, JPEG or GIF.
package main

import (
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/service"
)

func main() {
	var cfg thumbnailer.Config
	service.Main("thumbnailer",
		func(cs *config.Set) { thumbnailer.Bind(cs, &cfg) },
		func(svc *service.Service) error { return thumbnailer.Add(svc, cfg) })
}

// Command thumbnailer is Shoal's internal, stateless, CPU-bound reference
// service: POST /v1/thumbnails resizes a PNG, JPEG or GIF, and so does
// shoal.thumbnailer.v1.Thumbnailer/Resize on GRPC_PORT when it is set.
package main

import (
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/service"
	"github.com/shoal-dev/shoal/tracing"
)

func main() {
	var cfg thumbnailer.Config
	var tc tracing.Config
	service.Main("thumbnailer", func(cs *config.Set) {
		thumbnailer.Bind(cs, &cfg)
		tracing.Bind(cs, &tc)
	}, func(svc *service.Service) error {
		tc.ServiceName, tc.Logger = "thumbnailer", svc.Logger
		tracer, err := tracing.New(tc)
		if err != nil {
			return err
		}
		svc.Trace(tracer)
		return thumbnailer.Add(svc, cfg)
	})
}

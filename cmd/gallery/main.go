// Command gallery is Shoal's edge reference service: sign-in with sessions
// in Redis, thumbnails made by the thumbnailer through the client-side
// balancer (over gRPC with THUMBNAILER_GRPC), and each user's history.
package main

import (
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/service"
	"github.com/shoal-dev/shoal/tracing"
)

func main() {
	var s gallery.Settings
	var tc tracing.Config
	service.Main("gallery", func(cs *config.Set) {
		gallery.Bind(cs, &s)
		tracing.Bind(cs, &tc)
	}, func(svc *service.Service) error {
		tc.ServiceName, tc.Logger = "gallery", svc.Logger
		tracer, err := tracing.New(tc)
		if err != nil {
			return err
		}
		svc.Trace(tracer) // first, so it is flushed last
		return gallery.Add(svc, s)
	})
}

// Command gallery is Shoal's edge reference service: sign-in with sessions
// in Redis, thumbnails made by the thumbnailer through the client-side
// balancer, and each user's history.
package main

import (
	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/service"
)

func main() {
	var s gallery.Settings
	service.Main("gallery",
		func(cs *config.Set) { gallery.Bind(cs, &s) },
		func(svc *service.Service) error { return gallery.Add(svc, s) })
}

// Command gallery is Shoal's edge reference service: sign-in with sessions
// in Redis, thumbnails made by the thumbnailer through the client-side
// balancer, and each user's history.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/internal/refsvc/config"
	"github.com/shoal-dev/shoal/internal/refsvc/service"
)

func main() {
	err := service.Main(context.Background(), "gallery", os.Args[1:], func(cs *config.Set) func(context.Context, *service.Service) error {
		var g service.GalleryOptions
		service.BindGallery(cs, &g)
		return func(ctx context.Context, s *service.Service) error { return service.AddGallery(ctx, s, g) }
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "gallery:", err)
		os.Exit(1)
	}
}

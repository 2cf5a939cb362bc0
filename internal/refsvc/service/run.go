package service

import (
	"context"

	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
)

// RunGallery runs the gallery with the shared settings o and its own g
// until a stop signal or ctx ends; see [Service.Run].
func RunGallery(ctx context.Context, o Options, g GalleryOptions) error {
	return run(ctx, o, func(svc *Service) error { return AddGallery(ctx, svc, g) })
}

// RunThumbnailer runs the thumbnailer with the shared settings o and its
// own cfg until a stop signal or ctx ends; see [Service.Run].
func RunThumbnailer(ctx context.Context, o Options, cfg thumbnailer.Config) error {
	return run(ctx, o, func(svc *Service) error { return AddThumbnailer(svc, cfg) })
}

// run builds the Service of o with a JSON logger at o.LogLevel, lets add
// wire the service's own parts in, and runs it.
func run(ctx context.Context, o Options, add func(*Service) error) error {
	svc, err := New(o, nil)
	if err != nil {
		return err
	}
	if err := add(svc); err != nil {
		svc.Close()
		return err
	}
	if err := svc.Run(ctx); err != nil {
		svc.Logger.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}

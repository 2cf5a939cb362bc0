package service

import (
	"github.com/shoal-dev/shoal/internal/refsvc/config"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
)

// BindThumbnailer registers the thumbnailer's settings on cs.
func BindThumbnailer(cs *config.Set, cfg *thumbnailer.Config) {
	cs.Int64(&cfg.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", thumbnailer.DefaultMaxBodyBytes, "largest accepted image upload")
	cs.Int(&cfg.MaxPixels, "max-pixels", "MAX_PIXELS", thumbnail.DefaultMaxPixels, "largest accepted width×height")
	cs.Int(&cfg.CacheBytes, "cache-bytes", "CACHE_BYTES", thumbnailer.DefaultCacheBytes, "bound on the result cache (negative disables it)")
}

// AddThumbnailer registers the thumbnailer's routes and metrics on svc.
func AddThumbnailer(svc *Service, cfg thumbnailer.Config) error {
	cfg.Logger = svc.Logger
	api, err := thumbnailer.New(cfg, svc.Registry)
	if err != nil {
		return err
	}
	api.Register(svc.Mux)
	return nil
}

package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/refsvc/gallery"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	"github.com/shoal-dev/shoal/service"
)

// Options configure a demo run. Port 0 picks a free port.
type Options struct {
	Host            string
	GalleryPort     int
	GalleryAdmin    int
	ThumbnailerPort int
	ThumbnailerAdm  int
	DrainDelay      time.Duration
	RedisURL        string // empty keeps sessions in memory
}

// NewCommand returns the `demo` command.
func NewCommand() *cobra.Command {
	o := Options{}
	var logLevel string
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the reference system (gallery and thumbnailer) on loopback with embedded defaults",
		Long: `demo runs the gallery in front of the thumbnailer on loopback, in one process,
with sessions in memory (or in Redis with --redis-url), and prints their URLs.
Ctrl-C drains and stops both.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := service.NewLogger(logLevel, "")
			if err != nil {
				return err
			}
			return Run(cmd.Context(), cmd.OutOrStdout(), log, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Host, "host", "127.0.0.1", "address to bind")
	f.IntVar(&o.GalleryPort, "gallery-port", 8080, "gallery public port")
	f.IntVar(&o.GalleryAdmin, "gallery-admin-port", 9090, "gallery admin port")
	f.IntVar(&o.ThumbnailerPort, "thumbnailer-port", 8081, "thumbnailer public port")
	f.IntVar(&o.ThumbnailerAdm, "thumbnailer-admin-port", 9091, "thumbnailer admin port")
	f.DurationVar(&o.DrainDelay, "drain-delay", time.Second, "drain delay of both services on Ctrl-C")
	f.StringVar(&o.RedisURL, "redis-url", "", "Redis URL for sessions; empty keeps them in memory")
	f.StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn, error")
	return cmd
}

// Run starts both services, prints their URLs to out and serves until ctx
// ends or a stop signal arrives; then both drain and stop.
func Run(ctx context.Context, out io.Writer, log *slog.Logger, o Options) error {
	common := service.Options{Host: o.Host, DrainDelay: o.DrainDelay, ShutdownTimeout: 10 * time.Second, H2C: true}

	to := common
	to.Name, to.PodName, to.Port, to.AdminPort = "thumbnailer", "thumbnailer-0", o.ThumbnailerPort, o.ThumbnailerAdm
	to.Logger = log.With("service", "thumbnailer")
	thumb, err := service.New(to)
	if err != nil {
		return fmt.Errorf("demo: thumbnailer: %w", err)
	}
	if err := thumbnailer.Add(thumb, thumbnailer.Config{}); err != nil {
		thumb.Close()
		return fmt.Errorf("demo: thumbnailer: %w", err)
	}

	gopts := common
	gopts.Name, gopts.PodName, gopts.Port, gopts.AdminPort = "gallery", "gallery-0", o.GalleryPort, o.GalleryAdmin
	gopts.Logger = log.With("service", "gallery")
	gal, err := service.New(gopts)
	if err != nil {
		thumb.Close()
		return fmt.Errorf("demo: gallery: %w", err)
	}
	secret := strings.Repeat("d", 32) // one process, demo only: sessions need no secrecy across replicas
	err = gallery.Add(gal, gallery.Settings{
		RedisURL: o.RedisURL, SessionSecret: secret, SessionTTL: 30 * time.Minute,
		Thumbnailer: service.URL(thumb.Addr()), Timeout: 10 * time.Second,
	})
	if err != nil {
		thumb.Close()
		gal.Close()
		return fmt.Errorf("demo: gallery: %w", err)
	}

	g, t := service.URL(gal.Addr()), service.URL(thumb.Addr())
	fmt.Fprintf(out, "gallery      %s  (admin %s)\n", g, service.URL(gal.AdminAddr()))
	fmt.Fprintf(out, "thumbnailer  %s  (admin %s)\n", t, service.URL(thumb.AdminAddr()))
	fmt.Fprintf(out, "try:\n  curl -c /tmp/c -X POST %s/v1/login -d '{\"user\":\"ann\"}'\n", g)
	fmt.Fprintf(out, "  curl -b /tmp/c -X POST '%s/v1/thumbnails?width=64&height=64' --data-binary @image.png -o thumb.png\n", g)
	fmt.Fprintf(out, "  curl -b /tmp/c %s/v1/history\n", g)

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []*service.Service{gal, thumb} {
		wg.Go(func() { errs[i] = s.Run(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

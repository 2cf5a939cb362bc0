// Command gallery is Shoal's edge reference service: sign-in with sessions
// in Redis, thumbnails made by the thumbnailer through the client-side
// balancer, and each user's history.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/internal/config"
	"github.com/shoal-dev/shoal/internal/service"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gallery:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gallery", flag.ContinueOnError)
	cs := config.New(fs, os.LookupEnv)
	var o service.Options
	service.Bind(cs, &o, 8080, 9090)
	var g service.GalleryOptions
	service.BindGallery(cs, &g)
	if err := cs.Parse(args); err != nil {
		return err
	}
	log, err := service.NewLogger(o.LogLevel, "gallery")
	if err != nil {
		return err
	}
	if g.SessionSecret == "" {
		// Without a shared secret, cookies signed by one replica fail on
		// another: fine for one process on a laptop, wrong in a cluster.
		g.SessionSecret = rand.Text() + rand.Text()
		log.Warn("SESSION_SECRET is unset: using a random secret, so sessions do not survive a restart or span replicas")
	}
	svc, err := service.New(o, log)
	if err != nil {
		return err
	}
	if err := service.AddGallery(ctx, svc, g); err != nil {
		svc.Close()
		return err
	}
	if err := svc.Run(ctx); err != nil {
		svc.Logger.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}

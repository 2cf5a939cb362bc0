// Command thumbnailer is Shoal's internal, stateless, CPU-bound reference
// service: POST /v1/thumbnails resizes a PNG, JPEG or GIF.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/shoal-dev/shoal/internal/config"
	"github.com/shoal-dev/shoal/internal/service"
	"github.com/shoal-dev/shoal/internal/thumbnailer"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "thumbnailer:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("thumbnailer", flag.ContinueOnError)
	cs := config.New(fs, os.LookupEnv)
	var o service.Options
	service.Bind(cs, &o, 8080, 9090)
	var cfg thumbnailer.Config
	service.BindThumbnailer(cs, &cfg)
	if err := cs.Parse(args); err != nil {
		return err
	}
	log, err := service.NewLogger(o.LogLevel, "thumbnailer")
	if err != nil {
		return err
	}
	svc, err := service.New(o, log)
	if err != nil {
		return err
	}
	if err := service.AddThumbnailer(svc, cfg); err != nil {
		svc.Close()
		return err
	}
	if err := svc.Run(ctx); err != nil {
		svc.Logger.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}

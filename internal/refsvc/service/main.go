package service

import (
	"context"
	"flag"
	"os"

	"github.com/shoal-dev/shoal/internal/refsvc/config"
)

// Main is the body of a reference service's main: it binds the shared and
// the service's own settings, parses args and the environment, builds the
// Service, lets the service wire itself in, and runs until stopped.
// bind registers the service's own settings and returns the func that
// wires them into the Service once parsed.
func Main(ctx context.Context, name string, args []string, bind func(*config.Set) func(context.Context, *Service) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cs := config.New(fs, os.LookupEnv)
	var o Options
	Bind(cs, &o, 8080, 9090)
	o.Name = name
	add := bind(cs)
	if err := cs.Parse(args); err != nil {
		return err
	}
	log, err := NewLogger(o.LogLevel, name)
	if err != nil {
		return err
	}
	svc, err := New(o, log)
	if err != nil {
		return err
	}
	if err := add(ctx, svc); err != nil {
		svc.Close()
		return err
	}
	if err := svc.Run(ctx); err != nil {
		svc.Logger.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}

package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/shoal-dev/shoal/config"
)

// Program is a service's main: its name, its own settings and its
// wiring. [Main] is the usual way to run one.
type Program struct {
	// Name names the service in logs, -h and errors. Required.
	Name string
	// Bind registers the program's own settings on the same flag set as
	// [Options] (see package config); nil means none.
	Bind func(cs *config.Set)
	// Setup adds the program's routes, checks, upstreams and closers to
	// the Service before it serves; nil means none. An error stops the
	// program before anything was served.
	Setup func(svc *Service) error
	// Options are the defaults, and the fields that no flag sets (Logger).
	Options Options
}

// Run parses args and the variables lookup finds, sets the Go runtime's
// soft memory limit from MEMORY_LIMIT until it returns (see
// [Options.MemoryLimit]), builds the Service, calls Setup and serves
// until a stop signal or ctx ends. For -h it prints the usage to stderr
// and returns an error wrapping flag.ErrHelp.
func (p Program) Run(ctx context.Context, args []string, lookup func(string) (string, bool), stderr io.Writer) error {
	o := p.Options
	o.Name = p.Name
	fs := flag.NewFlagSet(p.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cs := config.New(fs, lookup)
	Bind(cs, &o)
	if p.Bind != nil {
		p.Bind(cs)
	}
	if err := cs.Parse(args); err != nil {
		return err
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if o.MemoryLimit == 0 {
		o.MemoryLimit = MemoryLimit() // before the soft limit changes what it reads
	}
	if _, set := lookup("GOMEMLIMIT"); !set && o.MemoryLimit > 0 {
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(softMemoryLimit(o.MemoryLimit, residentFileBytes())))
	}
	svc, err := New(o)
	if err != nil {
		return err
	}
	if p.Setup != nil {
		if err := p.Setup(svc); err != nil {
			svc.Close()
			return err
		}
	}
	if err := svc.Run(ctx); err != nil {
		svc.Logger.Error("stopped with an error", "error", err)
		return err
	}
	return nil
}

// Main runs the program named name from func main: settings from os.Args
// and the environment, the Service built from them, setup's wiring, then
// serving until SIGTERM or SIGINT and the drain. It exits 1 with the error
// on stderr if any step fails, 0 after -h or a clean stop.
func Main(name string, bind func(cs *config.Set), setup func(svc *Service) error) {
	p := Program{Name: name, Bind: bind, Setup: setup}
	if err := p.Run(context.Background(), os.Args[1:], os.LookupEnv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Command shoal runs, load-tests, lints and autoscales Shoal services
// with Kubernetes' semantics.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/democli"
	"github.com/shoal-dev/shoal/internal/getcli"
	"github.com/shoal-dev/shoal/internal/hpacli"
	"github.com/shoal-dev/shoal/internal/imagecli"
	"github.com/shoal-dev/shoal/internal/lintcli"
	"github.com/shoal-dev/shoal/internal/loadcli"
	"github.com/shoal-dev/shoal/internal/rolloutcli"
	"github.com/shoal-dev/shoal/internal/upcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCommand().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shoal:", err)
		os.Exit(exitCode(err))
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "shoal",
		Short:         "Balance and scale Go services the way Kubernetes does, and prove it",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	// Each subcommand lives in its own internal package; register it here.
	root.AddCommand(democli.NewCommand())
	root.AddCommand(hpacli.NewCommand())
	root.AddCommand(lintcli.NewCommand())
	root.AddCommand(imagecli.NewCommand())
	root.AddCommand(loadcli.NewCommand())
	root.AddCommand(getcli.NewCommand())
	root.AddCommand(rolloutcli.NewCommand())
	root.AddCommand(upcli.NewCommand())
	return root
}

// exitCoder lets a subcommand choose the process exit status, as
// `shoal lint` does with 1 for findings.
type exitCoder interface{ ExitCode() int }

func exitCode(err error) int {
	if ec, ok := err.(exitCoder); ok {
		return ec.ExitCode()
	}
	return 2
}

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

	"github.com/shoal-dev/shoal/internal/cli/demo"
	"github.com/shoal-dev/shoal/internal/cli/get"
	"github.com/shoal-dev/shoal/internal/cli/hpa"
	"github.com/shoal-dev/shoal/internal/cli/image"
	"github.com/shoal-dev/shoal/internal/cli/lint"
	"github.com/shoal-dev/shoal/internal/cli/load"
	"github.com/shoal-dev/shoal/internal/cli/rollout"
	"github.com/shoal-dev/shoal/internal/cli/up"
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
	root.AddCommand(demo.NewCommand())
	root.AddCommand(hpa.NewCommand())
	root.AddCommand(lint.NewCommand())
	root.AddCommand(image.NewCommand())
	root.AddCommand(load.NewCommand())
	root.AddCommand(get.NewCommand())
	root.AddCommand(rollout.NewCommand())
	root.AddCommand(up.NewCommand())
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

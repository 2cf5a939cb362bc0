// Package image is the `shoal image` command group; `shoal image build`
// turns a Go command into an image tarball without Docker.
package image

import (
	"fmt"
	"path"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/image"
)

// NewCommand returns the `shoal image` command.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Build container images of Go commands without Docker",
	}
	cmd.AddCommand(newBuildCommand())
	return cmd
}

func newBuildCommand() *cobra.Command {
	var (
		tag, out, arch string
	)
	cmd := &cobra.Command{
		Use:           "build [flags] PACKAGE",
		Short:         "Compile a static binary and write it as an image tarball",
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `Build compiles PACKAGE with CGO_ENABLED=0 and -trimpath for linux, puts the
binary at /ko-app/NAME on an empty base, runs it as 65532:65532, and writes
a tarball tagged --tag. Load it with docker load -i, kind load
image-archive, or ctr -n k8s.io images import.`,
		Example: `  shoal image build ./cmd/thumbnailer --tag docker.io/local/thumbnailer:dev -o thumbnailer.tar
  sudo ctr -n k8s.io images import thumbnailer.tar`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pkg := args[0]
			base := path.Base(strings.TrimSuffix(pkg, "/"))
			if tag == "" {
				tag = "docker.io/local/" + base + ":dev"
			}
			if out == "" {
				out = base + ".tar"
			}
			if _, err := name.NewTag(tag); err != nil {
				return fmt.Errorf("image: --tag %q: %w", tag, err)
			}
			b := &image.Builder{GOARCH: arch}
			img, err := b.Build(cmd.Context(), pkg)
			if err != nil {
				return err
			}
			if err := image.WriteTarball(out, tag, img); err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return fmt.Errorf("image: digest: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, %s)\n", out, tag, d)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&tag, "tag", "t", "", "image reference to tag the tarball with (default docker.io/local/NAME:dev)")
	f.StringVarP(&out, "output", "o", "", "tarball to write (default NAME.tar)")
	f.StringVar(&arch, "arch", "", "target GOARCH (default the host's)")
	return cmd
}

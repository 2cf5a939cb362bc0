// Package lint is the `shoal lint` command: it runs package lint over
// files, folders and kustomizations and prints the report as text, JSON or
// SARIF.
package lint

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/lint"
)

// FindingsError reports that linting found problems at or above the
// failure threshold. Its exit status is 1, as distinct from 2 for usage and
// input errors.
type FindingsError struct {
	Count     int
	Threshold lint.Severity
}

func (e *FindingsError) Error() string {
	return fmt.Sprintf("lint: %d finding(s) at %s or above", e.Count, e.Threshold)
}

// ExitCode is 1: the input was read and has problems.
func (e *FindingsError) ExitCode() int { return 1 }

// NewCommand returns the `shoal lint` command.
func NewCommand() *cobra.Command {
	var (
		output  string
		failOn  string
		disable []string
		list    bool
		remote  bool
	)
	cmd := &cobra.Command{
		Use:   "lint [flags] PATH...",
		Short: "Check Kubernetes manifests for balancing and scaling mistakes",
		// Findings are the report, not a usage mistake.
		SilenceUsage:  true,
		SilenceErrors: true,
		Long: `Lint decodes every document of the given YAML files, folders or kustomization
directories strictly against k8s.io/api, then checks the rules listed by
--rules. A kustomization directory is built in-process first. A
kustomization that names a remote location (a resource, patch or file by
URL, a base in a git repository) is not built unless --allow-remote is
given: it is reported as an invalid document, and nothing is fetched.

Exit status: 0 when nothing at or above --fail-on was found, 1 when
something was, 2 on usage or input errors.`,
		Example: `  shoal lint deploy/overlays/production
  shoal lint -o sarif deploy/ > lint.sarif
  shoal lint --disable SH012 manifests/app.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if list {
				return writeRules(out)
			}
			if len(args) == 0 {
				return fmt.Errorf("lint: no paths given; try shoal lint deploy/overlays/lab")
			}
			threshold, err := lint.ParseSeverity(failOn)
			if err != nil {
				return fmt.Errorf("--fail-on: %w", err)
			}
			write, err := writer(output)
			if err != nil {
				return err
			}
			l := &lint.Linter{Disable: disable, AllowRemote: remote}
			rep, err := l.LintContext(cmd.Context(), args...)
			if err != nil {
				return err
			}
			if err := write(rep, out); err != nil {
				return err
			}
			n := 0
			for _, f := range rep.Findings {
				if f.Severity >= threshold {
					n++
				}
			}
			if n > 0 {
				return &FindingsError{Count: n, Threshold: threshold}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&output, "output", "o", "text", "report format: text, json or sarif")
	f.StringVar(&failOn, "fail-on", "error", "lowest severity that makes the exit status 1: note, warning or error")
	f.StringSliceVar(&disable, "disable", nil, "rule IDs not to run, comma-separated (e.g. SH012)")
	f.BoolVar(&list, "rules", false, "list the rules and exit")
	f.BoolVar(&remote, "allow-remote", false, "let kustomize fetch the remote resources, patches, files and git bases that kustomizations name")
	return cmd
}

func writer(format string) (func(*lint.Report, io.Writer) error, error) {
	switch strings.ToLower(format) {
	case "text":
		return (*lint.Report).WriteText, nil
	case "json":
		return (*lint.Report).WriteJSON, nil
	case "sarif":
		return (*lint.Report).WriteSARIF, nil
	}
	return nil, fmt.Errorf("lint: --output %q: want text, json or sarif", format)
}

func writeRules(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSEVERITY\tNAME\tWHY")
	for _, r := range lint.Rules() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.ID, r.Severity, r.Name, r.Why)
	}
	return tw.Flush()
}

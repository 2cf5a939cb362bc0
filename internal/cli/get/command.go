package get

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// ErrUsage marks an error in the command line: an unknown resource type or
// output format, or flags that exclude each other.
var ErrUsage = errors.New("usage")

// NewCommand returns the `get` command.
func NewCommand() *cobra.Command {
	var (
		namespace string
		all       bool
		output    string
		server    string
	)
	cmd := &cobra.Command{
		Use:   "get pods|svc|hpa|deploy|ingress|events [-n NS | -A] [-o wide|json]",
		Short: "List the objects of a running shoal up as kubectl does",
		Long: `Get prints the pods, services, autoscalers, deployments, ingresses or
events of a running shoal up as kubectl tables, read from its API.

Without -n or -A it shows the namespace all objects share when there is one,
else "default". Events carry no namespace and are always all listed.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("get: %w: want one resource type (%s), got %d arguments", ErrUsage, kindList, len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			k, ok := lookupKind(args[0])
			if !ok {
				return fmt.Errorf("get: %w: unknown resource type %q; want one of %s", ErrUsage, args[0], kindList)
			}
			if output != "" && output != "wide" && output != "json" {
				return fmt.Errorf("get: %w: -o %q: want wide or json", ErrUsage, output)
			}
			if all && cmd.Flags().Changed("namespace") {
				return fmt.Errorf("get: %w: -n and -A exclude each other", ErrUsage)
			}
			c := api.Client{Server: server}
			snap, err := c.Snapshot(cmd.Context())
			if err != nil {
				return fmt.Errorf("get: %w", err)
			}
			v := view{wide: output == "wide"}
			switch {
			case all:
				v.all = true
			case namespace != "":
				v.namespace = namespace
			default:
				v.namespace = DefaultNamespace(snap)
			}
			return write(cmd.OutOrStdout(), cmd.ErrOrStderr(), k, snap, v, output == "json")
		},
	}
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "", `namespace to list (default: the only namespace in use, else "default")`)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the objects of every namespace")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide or json")
	cmd.Flags().StringVar(&server, "server", api.DefaultAddr, "address of shoal up's API (its --addr)")
	return cmd
}

// DefaultNamespace is the namespace get and rollout use without -n: the
// one namespace that all of the snapshot's objects share, else "default".
func DefaultNamespace(s *api.Snapshot) string {
	seen := map[string]bool{}
	for _, d := range s.Deployments {
		seen[d.Namespace] = true
	}
	for _, p := range s.Pods {
		seen[p.Namespace] = true
	}
	for _, sv := range s.Services {
		seen[sv.Namespace] = true
	}
	for _, in := range s.Ingresses {
		seen[in.Namespace] = true
	}
	for _, a := range s.Autoscalers {
		seen[a.Namespace] = true
	}
	if len(seen) == 1 {
		for ns := range seen {
			if ns != "" {
				return ns
			}
		}
	}
	return "default"
}

// view is what the flags select: a namespace (or all) and the columns.
type view struct {
	namespace string
	all       bool
	wide      bool
}

func (v view) shows(ns string) bool { return v.all || ns == v.namespace }

// table is a kind's rows before the NAMESPACE column is decided.
type table struct {
	header []string
	rows   []row
}

type row struct {
	namespace string
	cells     []string
}

// write prints the objects of kind k in snap that v selects, as a table or
// as a JSON list.
func write(stdout, stderr io.Writer, k kind, snap *api.Snapshot, v view, asJSON bool) error {
	t, items := k.list(snap, v)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "    ")
		if err := enc.Encode(struct {
			Kind  string `json:"kind"`
			Items any    `json:"items"`
		}{"List", items}); err != nil {
			return fmt.Errorf("get: write json: %w", err)
		}
		return nil
	}
	if len(t.rows) == 0 {
		if v.all || !k.namespaced {
			fmt.Fprintln(stderr, "No resources found")
		} else {
			fmt.Fprintf(stderr, "No resources found in %s namespace.\n", v.namespace)
		}
		return nil
	}
	// The column layout of kubectl's printers.
	tw := tabwriter.NewWriter(stdout, 6, 4, 3, ' ', 0)
	nsCol := v.all && k.namespaced
	if nsCol {
		fmt.Fprint(tw, "NAMESPACE\t")
	}
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		if nsCol {
			fmt.Fprint(tw, r.namespace+"\t")
		}
		fmt.Fprintln(tw, strings.Join(r.cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("get: write table: %w", err)
	}
	return nil
}

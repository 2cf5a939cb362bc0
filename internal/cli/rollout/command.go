package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// ErrNotFound reports that the snapshot has no such deployment.
var ErrNotFound = errors.New("not found")

// ErrTimeout reports that a rollout did not complete within --timeout.
var ErrTimeout = errors.New("timed out waiting for the rollout")

// NewCommand returns the `rollout` command with its subcommands.
func NewCommand() *cobra.Command {
	return newCommand(time.Second)
}

// newCommand takes the interval at which status polls the snapshot.
func newCommand(poll time.Duration) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Restart a deployment of shoal up, or follow its rollout",
	}
	cmd.AddCommand(newRestartCommand(), newStatusCommand(poll))
	return cmd
}

// flags are the ones both subcommands share.
type flags struct {
	namespace string
	server    string
}

func (f *flags) register(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "", `namespace of the deployment (default: the deployment's namespace when only one has its name, else "default")`)
	cmd.Flags().StringVar(&f.server, "server", api.DefaultAddr, "address of shoal up's API (its --addr)")
}

// resolve returns the deployment's namespace: -n when given, else the only
// namespace with a deployment of that name, else "default". It returns the
// snapshot it read to decide, nil with -n.
func (f *flags) resolve(ctx context.Context, c api.Client, name string) (string, *api.Snapshot, error) {
	if f.namespace != "" {
		return f.namespace, nil, nil
	}
	snap, err := c.Snapshot(ctx)
	if err != nil {
		return "", nil, err
	}
	var in []string
	for _, d := range snap.Deployments {
		if d.Name == name {
			in = append(in, d.Namespace)
		}
	}
	switch {
	case len(in) == 1:
		return in[0], snap, nil
	case len(in) > 1 && !slices.Contains(in, "default"):
		slices.Sort(in)
		return "", nil, fmt.Errorf("deployment %q is in namespaces %s; choose one with -n", name, strings.Join(in, ", "))
	}
	return "default", snap, nil
}

func newRestartCommand() *cobra.Command {
	var f flags
	cmd := &cobra.Command{
		Use:   "restart deployment/NAME [-n NS]",
		Short: "Roll out a deployment's pods again, one surge at a time",
		Args:  cobra.ArbitraryArgs, // parseTarget gives the clearer message
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseTarget(args)
			if err != nil {
				return fmt.Errorf("rollout restart: %w", err)
			}
			c := api.Client{Server: f.server}
			ns, _, err := f.resolve(cmd.Context(), c, name)
			if err != nil {
				return fmt.Errorf("rollout restart: %w", err)
			}
			if err := c.Restart(cmd.Context(), ns, name); err != nil {
				return fmt.Errorf("rollout restart: deployment %s/%s: %w", ns, name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deployment.apps/%s restarted\n", name)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func newStatusCommand(poll time.Duration) *cobra.Command {
	var (
		f       flags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status deployment/NAME [-n NS] [--timeout 5m]",
		Short: "Wait until a deployment's rollout is complete, printing its progress",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			name, err := parseTarget(args)
			if err != nil {
				return fmt.Errorf("rollout status: %w", err)
			}
			if timeout < 0 {
				return fmt.Errorf("rollout status: --timeout %v: must not be negative", timeout)
			}
			ctx := cmd.Context()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			c := api.Client{Server: f.server}
			ns, snap, err := f.resolve(ctx, c, name)
			if err == nil {
				err = watch(ctx, cmd.OutOrStdout(), c, ns, name, snap, poll)
			}
			switch {
			case err == nil:
				return nil
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				return fmt.Errorf("rollout status: deployment %q: %w after %v: %w", name, ErrTimeout, timeout, err)
			case ctx.Err() != nil:
				return fmt.Errorf("rollout status: deployment %q: %w", name, ctx.Err())
			}
			return fmt.Errorf("rollout status: %w", err)
		},
	}
	f.register(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the rollout (0: no limit)")
	return cmd
}

// watch polls the snapshot and prints each new progress line until the
// rollout of ns/name is complete or ctx ends. It starts from snap when
// that is not nil.
func watch(ctx context.Context, w io.Writer, c api.Client, ns, name string, snap *api.Snapshot, poll time.Duration) error {
	t := time.NewTicker(poll)
	defer t.Stop()
	last := ""
	for {
		if snap == nil {
			var err error
			if snap, err = c.Snapshot(ctx); err != nil {
				if ctx.Err() != nil {
					return lastState(last)
				}
				return err
			}
		}
		d, ok := findDeployment(snap, ns, name)
		if !ok {
			return fmt.Errorf("deployment %s/%s: %w", ns, name, ErrNotFound)
		}
		msg, done := progress(d, oldPods(snap, d))
		if msg != last {
			fmt.Fprintln(w, msg)
			last = msg
		}
		if done {
			return nil
		}
		snap = nil
		select {
		case <-ctx.Done():
			return lastState(last)
		case <-t.C:
		}
	}
}

// lastState is the error of a watch that ends before the rollout does: the
// last progress line seen, for the caller to wrap.
func lastState(last string) error {
	if last == "" {
		return errors.New("no snapshot read yet")
	}
	_, state, _ := strings.Cut(strings.TrimSuffix(last, "..."), "rollout to finish: ")
	return errors.New(state)
}

func findDeployment(s *api.Snapshot, ns, name string) (api.DeploymentInfo, bool) {
	for _, d := range s.Deployments {
		if d.Namespace == ns && d.Name == name {
			return d, true
		}
	}
	return api.DeploymentInfo{}, false
}

// oldPods counts the deployment's pods of an older template that are not
// terminating yet.
func oldPods(s *api.Snapshot, d api.DeploymentInfo) int32 {
	var n int32
	for _, p := range s.Pods {
		if p.Namespace == d.Namespace && p.Deployment == d.Name && p.Revision != d.Revision && !p.Terminating {
			n++
		}
	}
	return n
}

// progress is kubectl's rollout status line for d, and whether the rollout
// is complete.
func progress(d api.DeploymentInfo, old int32) (string, bool) {
	old = max(old, d.Current-d.Updated)
	prefix := fmt.Sprintf("Waiting for deployment %q rollout to finish: ", d.Name)
	switch {
	case d.Updated < d.Replicas:
		return prefix + fmt.Sprintf("%d out of %d new replicas have been updated...", d.Updated, d.Replicas), false
	case old > 0:
		return prefix + fmt.Sprintf("%d old replicas are pending termination...", old), false
	case d.Ready < d.Replicas || d.Available < d.Replicas:
		return prefix + fmt.Sprintf("%d of %d updated replicas are available...", min(d.Ready, d.Available), d.Replicas), false
	}
	return fmt.Sprintf("deployment %q successfully rolled out", d.Name), true
}

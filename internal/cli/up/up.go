package up

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/shoal-dev/shoal/internal/localk8s"
)

// Run runs cfg with localk8s.Run and tells the user about it on out: a
// summary of where everything answers once it runs, a line when the stop
// begins and one when it is done.
func Run(ctx context.Context, cfg localk8s.Config, out io.Writer) error {
	onReady, onStop := cfg.OnReady, cfg.OnStop
	cfg.OnReady = func(info localk8s.Info) {
		writeSummary(out, info)
		if onReady != nil {
			onReady(info)
		}
	}
	stopping := false
	cfg.OnStop = func() {
		stopping = true
		fmt.Fprintln(out, "stopping: autoscalers, pods, front doors, API")
		if onStop != nil {
			onStop()
		}
	}
	err := localk8s.Run(ctx, cfg)
	if stopping {
		fmt.Fprintln(out, "stopped")
	}
	return err
}

func writeSummary(w io.Writer, info localk8s.Info) {
	s := info.Snapshot
	fmt.Fprintf(w, "shoal up: %d deployments, %d pods, %d services\n", len(s.Deployments), len(s.Pods), len(s.Services))
	fmt.Fprintf(w, "  dashboard  http://%s/\n", info.API)
	ings := s.Ingresses
	sort.Slice(ings, func(i, j int) bool { return ings[i].URL < ings[j].URL })
	for _, ing := range ings {
		fmt.Fprintf(w, "  ingress    %s -> %s\n", ing.URL, ing.Backend)
	}
	routes := slices.Clone(s.HTTPRoutes)
	sort.SliceStable(routes, func(i, j int) bool { return routes[i].URL < routes[j].URL })
	for _, r := range routes {
		where := r.URL
		if where == "" {
			where = cmp.Or(r.Hostname, "*") + " " + r.Match
		}
		fmt.Fprintf(w, "  httproute  %s -> %s\n", where, strings.Join(r.Backends, ", "))
	}
	for _, svc := range s.Services {
		if svc.Type == "ClusterIP" {
			fmt.Fprintf(w, "  service    %s/%s %s %v\n", svc.Namespace, svc.Name, svc.ClusterIP, svc.Ports)
		}
	}
	fmt.Fprintf(w, "  logs       %s\n", filepath.Join(info.RunDir, "logs"))
	fmt.Fprintln(w, "Ctrl-C stops everything.")
}

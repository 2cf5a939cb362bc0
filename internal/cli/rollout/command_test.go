package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeAPI is a shoal up whose snapshots advance one state per read; the
// last state repeats. It is served by the API's own handler.
type fakeAPI struct {
	mu       sync.Mutex
	states   []*api.Snapshot
	gets     int
	restarts []string
}

var _ api.Source = (*fakeAPI)(nil)

func (a *fakeAPI) Snapshot() api.Snapshot {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.states[min(a.gets, len(a.states)-1)]
	a.gets++
	return *s
}

func (a *fakeAPI) Restart(ns, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.restarts = append(a.restarts, ns+"/"+name)
	if _, ok := findDeployment(a.states[len(a.states)-1], ns, name); !ok {
		return fmt.Errorf("cluster: deployment %s/%s %w", ns, name, api.ErrNotFound)
	}
	return nil
}

func (a *fakeAPI) start(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(api.Handler(a))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// execute runs `rollout args...` polling every 5ms and returns stdout and
// the error.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := newCommand(5 * time.Millisecond)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// state is one moment of a rollout of deployment ns/gallery from revision
// "old" to "new": the deployment's counts and its pods.
func state(ns string, d api.DeploymentInfo, pods ...api.PodInfo) *api.Snapshot {
	d.Namespace, d.Name, d.Revision = ns, "gallery", "new"
	for i := range pods {
		pods[i].Namespace, pods[i].Deployment = ns, "gallery"
		pods[i].Name = "gallery-" + pods[i].Revision + "-" + string(rune('a'+i))
	}
	return &api.Snapshot{Time: time.Now(), Deployments: []api.DeploymentInfo{d}, Pods: pods}
}

func pod(rev string, ready, terminating bool) api.PodInfo {
	return api.PodInfo{Revision: rev, Ready: ready, Terminating: terminating}
}

// rollout is a restart of two replicas with a surge of one, as the
// deployment controller runs it.
func rollout(ns string) []*api.Snapshot {
	return []*api.Snapshot{
		state(ns, api.DeploymentInfo{Replicas: 2, Current: 2, Ready: 2, Available: 2},
			pod("old", true, false), pod("old", true, false)),
		state(ns, api.DeploymentInfo{Replicas: 2, Current: 3, Ready: 2, Available: 2, Updated: 1},
			pod("old", true, false), pod("old", true, false), pod("new", false, false)),
		state(ns, api.DeploymentInfo{Replicas: 2, Current: 3, Ready: 3, Available: 3, Updated: 2},
			pod("old", false, true), pod("old", true, false), pod("new", true, false), pod("new", false, false)),
		state(ns, api.DeploymentInfo{Replicas: 2, Current: 2, Ready: 1, Available: 1, Updated: 2},
			pod("old", false, true), pod("new", true, false), pod("new", false, false)),
		state(ns, api.DeploymentInfo{Replicas: 2, Current: 2, Ready: 2, Available: 2, Updated: 2},
			pod("new", true, false), pod("new", true, false)),
	}
}

const rolloutLines = `Waiting for deployment "gallery" rollout to finish: 0 out of 2 new replicas have been updated...
Waiting for deployment "gallery" rollout to finish: 1 out of 2 new replicas have been updated...
Waiting for deployment "gallery" rollout to finish: 1 old replicas are pending termination...
Waiting for deployment "gallery" rollout to finish: 1 of 2 updated replicas are available...
deployment "gallery" successfully rolled out
`

func TestStatusFollowsRollout(t *testing.T) {
	tests := []struct {
		name string
		ns   string
		args []string
	}{
		{"namespace flag", "default", []string{"-n", "default"}},
		{"namespace of the only deployment", "shoal", nil},
		{"two-word form", "shoal", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &fakeAPI{states: rollout(tc.ns)}
			target := []string{"deployment/gallery"}
			if tc.name == "two-word form" {
				target = []string{"deploy", "gallery"}
			}
			args := append(append([]string{"status"}, target...), tc.args...)
			out, err := execute(t, append(args, "--server", a.start(t))...)
			if err != nil {
				t.Fatalf("status: %v\n%s", err, out)
			}
			if out != rolloutLines {
				t.Errorf("progress:\n%s\nwant:\n%s", out, rolloutLines)
			}
		})
	}
}

func TestStatusTimesOut(t *testing.T) {
	states := rollout("default")[:3] // stuck with an old pod left
	a := &fakeAPI{states: states}
	out, err := execute(t, "status", "deployment/gallery", "--timeout", "300ms", "--server", a.start(t))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	want := `rollout status: deployment "gallery": timed out waiting for the rollout after 300ms: 1 old replicas are pending termination`
	if err.Error() != want {
		t.Errorf("message\n%q\nwant\n%q", err, want)
	}
	if strings.Count(out, "pending termination") != 1 {
		t.Errorf("progress repeats or lacks the stuck line:\n%s", out)
	}
	if strings.Contains(out, "successfully") {
		t.Errorf("claims success:\n%s", out)
	}
}

func TestStatusUnknownDeployment(t *testing.T) {
	a := &fakeAPI{states: rollout("default")}
	_, err := execute(t, "status", "deployment/nope", "--server", a.start(t))
	if !errors.Is(err, ErrNotFound) || err.Error() != "rollout status: deployment default/nope: not found" {
		t.Errorf("err = %v, want ErrNotFound naming default/nope", err)
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name     string
		states   []*api.Snapshot
		args     []string
		wantPost string
	}{
		{"only namespace", rollout("shoal"), []string{"deployment/gallery"}, "shoal/gallery"},
		{"namespace flag", rollout("shoal"), []string{"deployment.apps/gallery", "-n", "shoal"}, "shoal/gallery"},
		{"default among several", []*api.Snapshot{{Deployments: []api.DeploymentInfo{
			{Namespace: "lab", Name: "gallery"}, {Namespace: "default", Name: "gallery"},
		}}}, []string{"deployments", "gallery"}, "default/gallery"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &fakeAPI{states: tc.states}
			out, err := execute(t, append(append([]string{"restart"}, tc.args...), "--server", a.start(t))...)
			if err != nil {
				t.Fatal(err)
			}
			if out != "deployment.apps/gallery restarted\n" {
				t.Errorf("printed %q", out)
			}
			if len(a.restarts) != 1 || a.restarts[0] != tc.wantPost {
				t.Errorf("server saw restarts %v, want [%s]", a.restarts, tc.wantPost)
			}
		})
	}
}

func TestRestartErrors(t *testing.T) {
	two := []*api.Snapshot{{Deployments: []api.DeploymentInfo{
		{Namespace: "lab", Name: "gallery"}, {Namespace: "shoal", Name: "gallery"},
	}}}
	t.Run("unknown deployment", func(t *testing.T) {
		a := &fakeAPI{states: rollout("default")}
		out, err := execute(t, "restart", "deployment/nope", "--server", a.start(t))
		var ae *api.APIError
		if !errors.As(err, &ae) || ae.StatusCode != http.StatusNotFound {
			t.Fatalf("err = %v, want the API's 404", err)
		}
		if want := "rollout restart: deployment default/nope: cluster: deployment default/nope not found (HTTP 404)"; err.Error() != want {
			t.Errorf("message %q, want %q", err, want)
		}
		if out != "" {
			t.Errorf("printed %q", out)
		}
	})
	t.Run("ambiguous namespace", func(t *testing.T) {
		a := &fakeAPI{states: two}
		_, err := execute(t, "restart", "deployment/gallery", "--server", a.start(t))
		if err == nil || err.Error() != `rollout restart: deployment "gallery" is in namespaces lab, shoal; choose one with -n` {
			t.Fatalf("err = %v", err)
		}
		if len(a.restarts) != 0 {
			t.Errorf("restarted %v", a.restarts)
		}
	})
	t.Run("not running", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		for _, sub := range []string{"restart", "status"} {
			_, err = execute(t, sub, "deployment/gallery", "--server", addr)
			if !errors.Is(err, api.ErrNotRunning) || !strings.HasPrefix(err.Error(), "rollout "+sub+": no shoal up answering at "+addr+": ") {
				t.Errorf("%s: err = %v, want ErrNotRunning naming %s", sub, err, addr)
			}
		}
	})
}

func TestBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"none", nil, "want deployment/NAME, got no arguments"},
		{"bare name", []string{"gallery"}, `want deployment/NAME, got "gallery"`},
		{"other kind", []string{"statefulset/redis"}, `want deployment/NAME: only deployments roll out here, got "statefulset/redis"`},
		{"empty name", []string{"deployment/"}, "want deployment/NAME: the name is empty"},
		{"bad name", []string{"deployment/Gallery_1"}, `want deployment/NAME: name "Gallery_1": a lowercase RFC 1123 subdomain`},
		{"slash in name", []string{"deployment/a/b"}, `name "a/b"`},
		{"three words", []string{"deployment", "a", "b"}, "want deployment/NAME, got 3 arguments"},
	}
	for _, tc := range tests {
		for _, sub := range []string{"restart", "status"} {
			t.Run(sub+" "+tc.name, func(t *testing.T) {
				// No server: argument errors come before any request.
				out, err := execute(t, append([]string{sub}, tc.args...)...)
				if !errors.Is(err, ErrTarget) {
					t.Fatalf("err = %v, want ErrTarget", err)
				}
				if !strings.HasPrefix(err.Error(), "rollout "+sub+": ") || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %q, want it to contain %q", err, tc.want)
				}
				if out != "" {
					t.Errorf("printed %q", out)
				}
			})
		}
	}
	t.Run("negative timeout", func(t *testing.T) {
		_, err := execute(t, "status", "deployment/gallery", "--timeout", "-1s")
		if err == nil || err.Error() != "rollout status: --timeout -1s: must not be negative" {
			t.Errorf("err = %v", err)
		}
	})
}

func TestProgress(t *testing.T) {
	tests := []struct {
		name string
		d    api.DeploymentInfo
		old  int32
		want string
		done bool
	}{
		{"scaled to zero", api.DeploymentInfo{Name: "g"}, 0, `deployment "g" successfully rolled out`, true},
		{"all new and ready", api.DeploymentInfo{Name: "g", Replicas: 3, Current: 3, Updated: 3, Ready: 3, Available: 3}, 0, `deployment "g" successfully rolled out`, true},
		{"updating", api.DeploymentInfo{Name: "g", Replicas: 3, Current: 4, Updated: 1, Ready: 3, Available: 3}, 3, `1 out of 3 new replicas have been updated...`, false},
		{"old pod the counts miss", api.DeploymentInfo{Name: "g", Replicas: 1, Current: 1, Updated: 1, Ready: 1, Available: 1}, 1, `1 old replicas are pending termination...`, false},
		{"surplus the pods miss", api.DeploymentInfo{Name: "g", Replicas: 1, Current: 3, Updated: 1, Ready: 1, Available: 1}, 0, `2 old replicas are pending termination...`, false},
		{"ready, not available", api.DeploymentInfo{Name: "g", Replicas: 2, Current: 2, Updated: 2, Ready: 2, Available: 1}, 0, `1 of 2 updated replicas are available...`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, done := progress(tc.d, tc.old)
			if !strings.HasSuffix(got, tc.want) || done != tc.done {
				t.Errorf("progress = %q, %v; want …%q, %v", got, done, tc.want, tc.done)
			}
		})
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"deployment/gallery", "deploy/a-b.c", "gallery", "deployment/", "/x", "svc/x", "deployment/a/b"} {
		f.Add(s, "")
	}
	f.Add("deployment", "gallery")
	f.Fuzz(func(t *testing.T, a, b string) {
		args := []string{a}
		if b != "" {
			args = append(args, b)
		}
		name, err := parseTarget(args)
		if err != nil {
			if !errors.Is(err, ErrTarget) {
				t.Fatalf("error %v is not ErrTarget", err)
			}
			return
		}
		if name == "" || strings.ContainsAny(name, "/?#% ") {
			t.Fatalf("accepted name %q from %q", name, args)
		}
	})
}

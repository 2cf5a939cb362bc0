package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/cli/get"
	"github.com/shoal-dev/shoal/internal/localk8s/cluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// api is a shoal up API whose snapshots advance one state per GET; the
// last state repeats.
type api struct {
	mu       sync.Mutex
	states   []*cluster.Snapshot
	gets     int
	restarts []string
}

func (a *api) start(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/snapshot", func(w http.ResponseWriter, _ *http.Request) {
		a.mu.Lock()
		s := a.states[min(a.gets, len(a.states)-1)]
		a.gets++
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(s)
	})
	mux.HandleFunc("POST /api/v1/namespaces/{ns}/deployments/{name}/restart", func(w http.ResponseWriter, r *http.Request) {
		ns, name := r.PathValue("ns"), r.PathValue("name")
		a.mu.Lock()
		a.restarts = append(a.restarts, ns+"/"+name)
		_, ok := findDeployment(a.states[len(a.states)-1], ns, name)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "cluster: deployment " + ns + "/" + name + " not found"})
			return
		}
		w.WriteHeader(http.StatusAccepted)
		json.NewEncoder(w).Encode(map[string]string{"message": "deployment.apps/" + name + " restarted"})
	})
	srv := httptest.NewServer(mux)
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
func state(ns string, d cluster.DeploymentInfo, pods ...cluster.PodInfo) *cluster.Snapshot {
	d.Namespace, d.Name, d.Revision = ns, "gallery", "new"
	for i := range pods {
		pods[i].Namespace, pods[i].Deployment = ns, "gallery"
		pods[i].Name = "gallery-" + pods[i].Revision + "-" + string(rune('a'+i))
	}
	return &cluster.Snapshot{Time: time.Now(), Deployments: []cluster.DeploymentInfo{d}, Pods: pods}
}

func pod(rev string, ready, terminating bool) cluster.PodInfo {
	return cluster.PodInfo{Revision: rev, Ready: ready, Terminating: terminating}
}

// rollout is a restart of two replicas with a surge of one, as the
// deployment controller runs it.
func rollout(ns string) []*cluster.Snapshot {
	return []*cluster.Snapshot{
		state(ns, cluster.DeploymentInfo{Replicas: 2, Current: 2, Ready: 2, Available: 2},
			pod("old", true, false), pod("old", true, false)),
		state(ns, cluster.DeploymentInfo{Replicas: 2, Current: 3, Ready: 2, Available: 2, Updated: 1},
			pod("old", true, false), pod("old", true, false), pod("new", false, false)),
		state(ns, cluster.DeploymentInfo{Replicas: 2, Current: 3, Ready: 3, Available: 3, Updated: 2},
			pod("old", false, true), pod("old", true, false), pod("new", true, false), pod("new", false, false)),
		state(ns, cluster.DeploymentInfo{Replicas: 2, Current: 2, Ready: 1, Available: 1, Updated: 2},
			pod("old", false, true), pod("new", true, false), pod("new", false, false)),
		state(ns, cluster.DeploymentInfo{Replicas: 2, Current: 2, Ready: 2, Available: 2, Updated: 2},
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
			a := &api{states: rollout(tc.ns)}
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
	a := &api{states: states}
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
	a := &api{states: rollout("default")}
	_, err := execute(t, "status", "deployment/nope", "--server", a.start(t))
	if !errors.Is(err, ErrNotFound) || err.Error() != "rollout status: deployment default/nope: not found" {
		t.Errorf("err = %v, want ErrNotFound naming default/nope", err)
	}
}

func TestRestart(t *testing.T) {
	tests := []struct {
		name     string
		states   []*cluster.Snapshot
		args     []string
		wantPost string
	}{
		{"only namespace", rollout("shoal"), []string{"deployment/gallery"}, "shoal/gallery"},
		{"namespace flag", rollout("shoal"), []string{"deployment.apps/gallery", "-n", "shoal"}, "shoal/gallery"},
		{"default among several", []*cluster.Snapshot{{Deployments: []cluster.DeploymentInfo{
			{Namespace: "lab", Name: "gallery"}, {Namespace: "default", Name: "gallery"},
		}}}, []string{"deployments", "gallery"}, "default/gallery"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := &api{states: tc.states}
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
	two := []*cluster.Snapshot{{Deployments: []cluster.DeploymentInfo{
		{Namespace: "lab", Name: "gallery"}, {Namespace: "shoal", Name: "gallery"},
	}}}
	t.Run("unknown deployment", func(t *testing.T) {
		a := &api{states: rollout("default")}
		out, err := execute(t, "restart", "deployment/nope", "--server", a.start(t))
		var ae *get.APIError
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
		a := &api{states: two}
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
			if !errors.Is(err, get.ErrNotRunning) || !strings.HasPrefix(err.Error(), "rollout "+sub+": no shoal up answering at "+addr+": ") {
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
		d    cluster.DeploymentInfo
		old  int32
		want string
		done bool
	}{
		{"scaled to zero", cluster.DeploymentInfo{Name: "g"}, 0, `deployment "g" successfully rolled out`, true},
		{"all new and ready", cluster.DeploymentInfo{Name: "g", Replicas: 3, Current: 3, Updated: 3, Ready: 3, Available: 3}, 0, `deployment "g" successfully rolled out`, true},
		{"updating", cluster.DeploymentInfo{Name: "g", Replicas: 3, Current: 4, Updated: 1, Ready: 3, Available: 3}, 3, `1 out of 3 new replicas have been updated...`, false},
		{"old pod the counts miss", cluster.DeploymentInfo{Name: "g", Replicas: 1, Current: 1, Updated: 1, Ready: 1, Available: 1}, 1, `1 old replicas are pending termination...`, false},
		{"surplus the pods miss", cluster.DeploymentInfo{Name: "g", Replicas: 1, Current: 3, Updated: 1, Ready: 1, Available: 1}, 0, `2 old replicas are pending termination...`, false},
		{"ready, not available", cluster.DeploymentInfo{Name: "g", Replicas: 2, Current: 2, Updated: 2, Ready: 2, Available: 1}, 0, `1 of 2 updated replicas are available...`, false},
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

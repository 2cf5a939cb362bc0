package kubelet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/internal/testkit/podtest"
)

// testpodBin is the test container program, built once by TestMain
// (package podtest).
var testpodBin string

func TestMain(m *testing.M) { podtest.Main(m, &testpodBin) }

const waitTimeout = 30 * time.Second

// harness runs one pod of testpod containers and records what it reports.
type harness struct {
	t    *testing.T
	ip   netip.Addr
	port int
	dir  string
	pod  *Pod

	mu     sync.Mutex
	events []Event
}

// newHarness picks a free port on a test-only loopback IP.
func newHarness(t *testing.T, ip string) *harness {
	t.Helper()
	h := &harness{t: t, ip: netip.MustParseAddr(ip), dir: t.TempDir()}
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	h.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	return h
}

func (h *harness) mark() string { return filepath.Join(h.dir, "mark") }

// container is a testpod container serving on the harness port, named
// "http", with MARK set.
func (h *harness) container(env ...corev1.EnvVar) corev1.Container {
	return corev1.Container{
		Name:  "app",
		Image: "ghcr.io/test/testpod:v1",
		Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(h.port)}},
		Env: append([]corev1.EnvVar{
			{Name: "PORT", Value: strconv.Itoa(h.port)},
			{Name: "MARK", Value: h.mark()},
		}, env...),
	}
}

func (h *harness) config(spec corev1.PodSpec) Config {
	return Config{
		Name: "testpod-1", Namespace: "test", UID: "u1", IP: h.ip, Spec: spec,
		Binary: func(image string) (string, error) {
			if imageName(image) == "testpod" {
				return testpodBin, nil
			}
			return "", fmt.Errorf("unknown image %q", image)
		},
		LogDir:     h.dir,
		BackOff:    200 * time.Millisecond,
		MaxBackOff: 400 * time.Millisecond,
		OnEvent: func(e Event) {
			h.mu.Lock()
			h.events = append(h.events, e)
			h.mu.Unlock()
		},
	}
}

// start starts the pod and makes sure it is terminated by the end of the test.
func (h *harness) start(cfg Config) *Pod {
	h.t.Helper()
	p, err := Start(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	h.pod = p
	h.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := p.Terminate(ctx); err != nil {
			h.t.Errorf("Terminate: %v", err)
		}
	})
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func (h *harness) waitFor(what string, cond func(Status) bool) Status {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st := h.pod.Status()
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; status %+v; events %v", what, st, h.eventList())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) eventList() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

func (h *harness) eventsWith(reason string) []Event {
	var out []Event
	for _, e := range h.eventList() {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// get requests a testpod endpoint and returns the body.
func (h *harness) get(path string) (string, error) {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort(h.ip.String(), strconv.Itoa(h.port)) + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func (h *harness) mustGet(path string) string {
	h.t.Helper()
	b, err := h.get(path)
	if err != nil {
		h.t.Fatal(err)
	}
	return b
}

// marks returns the lines testpod processes appended to the mark file.
func (h *harness) marks() []string {
	b, err := os.ReadFile(h.mark())
	if err != nil && !os.IsNotExist(err) {
		h.t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "_"))
}

func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("http")}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   5,
	}
}

func grace(s int64) *int64 { return &s }

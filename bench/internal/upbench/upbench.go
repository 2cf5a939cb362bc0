package upbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

const (
	// PollEvery is how often the API's snapshot is read during a run.
	PollEvery = 500 * time.Millisecond
	// StartTimeout bounds `shoal up` from start to its pods serving.
	StartTimeout = 2 * time.Minute
	// StopTimeout bounds the termination of everything after a run.
	StopTimeout = 90 * time.Second
)

// Thumbnailer returns the thumbnailer program to run: bin made absolute,
// or when bin is empty one built with `go build` into a temporary folder,
// which cleanup removes. cleanup is never nil.
func Thumbnailer(ctx context.Context, bin string, stderr io.Writer) (path string, cleanup func(), err error) {
	cleanup = func() {}
	if bin != "" {
		path, err = filepath.Abs(bin)
		return path, cleanup, err
	}
	dir, err := os.MkdirTemp("", "shoal-upbench-bin-")
	if err != nil {
		return "", cleanup, fmt.Errorf("upbench: %w", err)
	}
	cleanup = func() { os.RemoveAll(dir) }
	path = filepath.Join(dir, "thumbnailer")
	fmt.Fprintln(stderr, "building the thumbnailer")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", path, "github.com/shoal-dev/shoal/cmd/thumbnailer")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		cleanup()
		return "", func() {}, fmt.Errorf("go build thumbnailer: %w\n%s", err, out)
	}
	return path, cleanup, nil
}

// LoopbackNets picks pod and Service networks on loopback that no default
// `shoal up` uses (127.N.1.0/24 and 127.N.2.0/24 with a random N), and a
// free port for the DNS server.
func LoopbackNets() (pods, services netip.Prefix, dnsPort uint16, err error) {
	n := 64 + rand.IntN(180)
	pods = netip.MustParsePrefix(fmt.Sprintf("127.%d.1.0/24", n))
	services = netip.MustParsePrefix(fmt.Sprintf("127.%d.2.0/24", n))
	pc, err := net.ListenPacket("udp", fmt.Sprintf("127.%d.2.10:0", n))
	if err != nil {
		return pods, services, 0, fmt.Errorf("DNS port: %w", err)
	}
	dnsPort = uint16(pc.LocalAddr().(*net.UDPAddr).Port)
	pc.Close()
	return pods, services, dnsPort, nil
}

// Up is a running `shoal up`. Stop it once.
type Up struct {
	Info   localk8s.Info
	Client api.Client // the API's, with a 3s timeout per request
	Config localk8s.Config

	stop context.CancelFunc
	done chan error
}

// Start runs `shoal up` with cfg on fresh loopback networks (cfg's PodNet,
// ServiceNet, DNSPort and OnReady are set here; its RunDir is created) and
// waits until it is ready, at most StartTimeout. On an error everything it
// started has stopped.
func Start(ctx context.Context, cfg localk8s.Config) (*Up, error) {
	var err error
	cfg.PodNet, cfg.ServiceNet, cfg.DNSPort, err = LoopbackNets()
	if err != nil {
		return nil, err
	}
	ready := make(chan localk8s.Info, 1)
	cfg.OnReady = func(i localk8s.Info) { ready <- i }
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return nil, err
	}
	upCtx, stop := context.WithCancel(ctx)
	u := &Up{Config: cfg, stop: stop, done: make(chan error, 1)}
	go func() { u.done <- localk8s.Run(upCtx, cfg) }()

	select {
	case u.Info = <-ready:
	case e := <-u.done:
		u.done <- e // for Stop's wait
		err = fmt.Errorf("shoal up: %w", e)
	case <-time.After(StartTimeout):
		err = fmt.Errorf("shoal up not ready within %v", StartTimeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		return nil, u.Stop(err)
	}
	u.Client = api.Client{Server: u.Info.API, HTTP: &http.Client{Timeout: 3 * time.Second}}
	return u, nil
}

// Stop ends `shoal up` and waits for it, at most StopTimeout. It
// returns err, the run's own error, when there is one, or else the error
// `shoal up` ended with; not stopping within StopTimeout is joined to
// either. Call it once, as
//
//	defer func() { err = up.Stop(err) }()
func (u *Up) Stop(err error) error {
	u.stop()
	select {
	case e := <-u.done:
		if e != nil && err == nil {
			err = fmt.Errorf("shoal up: %w", e)
		}
	case <-time.After(StopTimeout):
		err = errors.Join(err, fmt.Errorf("shoal up did not stop within %v", StopTimeout))
	}
	return err
}

// WaitServing waits, at most StartTimeout, until the Deployment
// namespace/name has want ready pods and its ClusterIP Service of the same
// name lists as many endpoints, and returns the Service's address on port
// 80.
func (u *Up) WaitServing(ctx context.Context, namespace, name string, want int32) (string, error) {
	deadline := time.Now().Add(StartTimeout)
	var last string
	for time.Now().Before(deadline) {
		s, err := u.Client.Snapshot(ctx)
		if err == nil {
			d, svc := FindDeployment(s, namespace, name), FindService(s, namespace, name)
			if d != nil && svc != nil && d.Ready >= want && len(svc.Endpoints) >= int(want) {
				return net.JoinHostPort(svc.ClusterIP, "80"), nil
			}
			if d != nil {
				last = fmt.Sprintf("%d/%d ready", d.Ready, want)
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(PollEvery):
		}
	}
	return "", fmt.Errorf("deployment %s not serving within %v (%s)", name, StartTimeout, last)
}

// PollSnapshots calls f with the API's snapshot every PollEvery (skipping
// a read that failed) until ctx ends.
func (u *Up) PollSnapshots(ctx context.Context, f func(*api.Snapshot)) {
	t := time.NewTicker(PollEvery)
	defer t.Stop()
	for {
		if s, err := u.Client.Snapshot(ctx); err == nil {
			f(s)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// FindDeployment returns the Deployment namespace/name in s, or nil.
func FindDeployment(s *api.Snapshot, namespace, name string) *api.DeploymentInfo {
	for i := range s.Deployments {
		if d := &s.Deployments[i]; d.Namespace == namespace && d.Name == name {
			return d
		}
	}
	return nil
}

// FindService returns the ClusterIP Service namespace/name in s, or nil.
func FindService(s *api.Snapshot, namespace, name string) *api.ServiceInfo {
	for i := range s.Services {
		if v := &s.Services[i]; v.Namespace == namespace && v.Name == name && v.Type == "ClusterIP" {
			return v
		}
	}
	return nil
}

// FindAutoscaler returns the last autoscaler named name in namespace (or
// in no namespace) in s, or nil.
func FindAutoscaler(s *api.Snapshot, namespace, name string) *api.AutoscalerInfo {
	var found *api.AutoscalerInfo
	for i := range s.Autoscalers {
		if a := &s.Autoscalers[i]; (a.Namespace == namespace || a.Namespace == "") && a.Name == name {
			found = a
		}
	}
	return found
}

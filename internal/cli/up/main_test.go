package up_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/internal/cli/up"
	"github.com/shoal-dev/shoal/internal/localk8s"
	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// binaries are the programs built once for every test of the package.
type binaries struct {
	gallery, thumbnailer, shoal string
}

// bins is set by TestMain before any test runs and only read afterwards.
var bins binaries

const (
	galleryImage     = "ko://github.com/shoal-dev/shoal/cmd/gallery"
	thumbnailerImage = "ko://github.com/shoal-dev/shoal/cmd/thumbnailer"
	localOverlay     = "../../../deploy/overlays/local"
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "up-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	// One go build for the three programs: the services the overlay's ko://
	// images name, and the shoal command the interrupt test runs.
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"github.com/shoal-dev/shoal/cmd/gallery",
		"github.com/shoal-dev/shoal/cmd/thumbnailer",
		"github.com/shoal-dev/shoal/cmd/shoal")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		return 1
	}
	bins = binaries{
		gallery:     filepath.Join(dir, "gallery"),
		thumbnailer: filepath.Join(dir, "thumbnailer"),
		shoal:       filepath.Join(dir, "shoal"),
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			return 1
		}
	}
	return code
}

// nets are the loopback prefixes one test's cluster runs on. Every test
// has its own, so that tests and packages running at once never share an
// address, and the DNS server (the ServiceNet's .10, port 53) is its own.
type nets struct {
	pod, service netip.Prefix
}

func netsOf(pod, service string) nets {
	return nets{pod: netip.MustParsePrefix(pod), service: netip.MustParsePrefix(service)}
}

// contains reports whether a is in either prefix.
func (n nets) contains(a netip.Addr) bool { return n.pod.Contains(a) || n.service.Contains(a) }

// localOptions runs the deploy kit's local overlay with the prebuilt
// service binaries and the machine's redis-server.
func localOptions(t *testing.T, n nets) localk8s.Config {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redis-server not found (scripts/deps.sh installs it): %v", err)
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Fatalf("unshare not found (util-linux): %v", err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the local overlay needs the cluster DNS on port 53, which needs root")
	}
	return localk8s.Config{
		Paths: []string{localOverlay},
		Images: []string{
			galleryImage + "=" + bins.gallery,
			thumbnailerImage + "=" + bins.thumbnailer,
			"redis=redis-server",
		},
		Addr:        "127.0.0.1:0",
		IngressAddr: "127.0.0.1:0",
		PodNet:      n.pod,
		ServiceNet:  n.service,
		SyncPeriod:  2 * time.Second,
		RunDir:      t.TempDir(),
		Logger:      slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in
// different goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// upRun is one in-process `shoal up`.
type upRun struct {
	info localk8s.Info
	out  *syncBuffer
	api  *apiClient
}

// startUp runs o in the background until the test ends, and returns once
// OnReady has reported the addresses. The cleanup stops it and checks
// that Run returned nil.
func startUp(t *testing.T, o localk8s.Config) *upRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan localk8s.Info, 1)
	o.OnReady = func(i localk8s.Info) { ready <- i }
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- up.Run(ctx, o, out) }()
	t.Cleanup(func() {
		cancel()
		// Terminating pods takes their preStop hooks and drain delays
		// (40s for the thumbnailer, 10s for the gallery); 90s covers a
		// loaded machine.
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run after stop: %v", err)
			}
		case <-time.After(90 * time.Second):
			t.Errorf("Run did not return within 90s of its context ending")
		}
	})
	select {
	case info := <-ready:
		r := &upRun{info: info, out: out, api: newAPIClient(info.API)}
		t.Cleanup(r.api.close)
		return r
	case err := <-done:
		done <- nil // Run has returned: the cleanup has nothing to wait for
		t.Fatalf("Run returned before ready: %v\n%s", err, out.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("Run not ready after 3m\n%s", out.String())
	}
	return nil
}

// apiClient talks to the API of a running shoal up.
type apiClient struct {
	c  api.Client
	tr *http.Transport
}

func newAPIClient(addr string) *apiClient {
	tr := &http.Transport{}
	return &apiClient{c: api.Client{Server: addr, HTTP: &http.Client{Transport: tr, Timeout: 10 * time.Second}}, tr: tr}
}

func (a *apiClient) close() { a.tr.CloseIdleConnections() }

func (a *apiClient) snapshot(ctx context.Context) (api.Snapshot, error) {
	s, err := a.c.Snapshot(ctx)
	if err != nil {
		return api.Snapshot{}, err
	}
	return *s, nil
}

func (a *apiClient) restart(ctx context.Context, deployment string) error {
	return a.c.Restart(ctx, "default", deployment)
}

// waitFor polls the snapshot until cond holds or ctx ends, and returns
// the snapshot that satisfied it.
func (a *apiClient) waitFor(ctx context.Context, what string, cond func(api.Snapshot) bool) (api.Snapshot, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last api.Snapshot
	var lastErr error
	for {
		s, err := a.snapshot(ctx)
		if err == nil {
			last = s
			if cond(s) {
				return s, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("waiting for %s: %w (last API error: %v)\n%s", what, ctx.Err(), lastErr, describe(last))
		case <-tick.C:
		}
	}
}

// allReady holds when every Deployment runs exactly its replicas, all
// ready and of the newest revision, and no pod is terminating.
func allReady(s api.Snapshot) bool {
	if len(s.Deployments) == 0 {
		return false
	}
	for _, d := range s.Deployments {
		if d.Replicas == 0 || d.Ready != d.Replicas || d.Current != d.Replicas || d.Updated != d.Replicas {
			return false
		}
	}
	for _, p := range s.Pods {
		if p.Terminating || !p.Ready {
			return false
		}
	}
	return true
}

func deploymentOf(s api.Snapshot, name string) (api.DeploymentInfo, bool) {
	for _, d := range s.Deployments {
		if d.Name == name {
			return d, true
		}
	}
	return api.DeploymentInfo{}, false
}

func podsOf(s api.Snapshot, deployment string) []api.PodInfo {
	var out []api.PodInfo
	for _, p := range s.Pods {
		if p.Deployment == deployment {
			out = append(out, p)
		}
	}
	return out
}

func podNamed(s api.Snapshot, name string) (api.PodInfo, bool) {
	for _, p := range s.Pods {
		if p.Name == name {
			return p, true
		}
	}
	return api.PodInfo{}, false
}

// describe prints a snapshot's pods and recent events for a failure message.
func describe(s api.Snapshot) string {
	var b strings.Builder
	for _, d := range s.Deployments {
		fmt.Fprintf(&b, "deployment %s: replicas %d current %d ready %d updated %d revision %s\n",
			d.Name, d.Replicas, d.Current, d.Ready, d.Updated, d.Revision)
	}
	for _, p := range s.Pods {
		fmt.Fprintf(&b, "pod %s ip %s status %s ready %v terminating %v restarts %d pids %v\n",
			p.Name, p.IP, p.Status, p.Ready, p.Terminating, p.Restarts, p.PIDs)
	}
	events := s.Events
	if len(events) > 30 {
		events = events[len(events)-30:]
	}
	for _, e := range events {
		fmt.Fprintf(&b, "event %s %s %s %s: %s\n", e.Time.Format("15:04:05.000"), e.Type, e.Reason, e.Object, e.Message)
	}
	return b.String()
}

// testPNGs returns n small PNGs that differ in content, so that the
// gallery's consistent hashing over the image digest spreads them over
// the thumbnailers.
func testPNGs(t *testing.T, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for y := range 48 {
			for x := range 64 {
				img.Set(x, y, color.RGBA{uint8(x * 4), uint8(y * 5), uint8(i * 13), 255})
			}
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Fatal(err)
		}
		out[i] = buf.Bytes()
	}
	return out
}

// processesUnder returns the PIDs of processes whose command line or
// environment mentions marker (a test's temporary folder).
func processesUnder(t *testing.T, marker string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	self := strconv.Itoa(os.Getpid())
	var out []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil || e.Name() == self {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join("/proc", e.Name(), f))
			if err != nil {
				continue // gone, or a kernel thread
			}
			if bytes.Contains(b, []byte(marker)) {
				cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
				out = append(out, e.Name()+" "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
				break
			}
		}
	}
	return out
}

// socketsIn returns the listening TCP sockets and the bound UDP sockets
// whose local address lies in n, from /proc/net.
func socketsIn(t *testing.T, n nets) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/udp"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if i == 0 || len(fields) < 4 {
				continue
			}
			if strings.HasSuffix(f, "tcp") && fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			ap, err := parseProcAddr(fields[1])
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if n.contains(ap.Addr()) {
				out = append(out, filepath.Base(f)+" "+ap.String())
			}
		}
	}
	return out
}

// parseProcAddr reads "0100007F:1F90": the IPv4 address as a host-order
// (little-endian here) word, the port big-endian, both in hex.
func parseProcAddr(s string) (netip.AddrPort, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok || len(ipHex) != 8 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	ip, err := strconv.ParseUint(ipHex, 16, 32)
	if err != nil {
		return netip.AddrPort{}, err
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	a := netip.AddrFrom4([4]byte{byte(ip), byte(ip >> 8), byte(ip >> 16), byte(ip >> 24)})
	return netip.AddrPortFrom(a, uint16(port)), nil
}

var errNoCookie = errors.New("login set no cookie")

// login signs user in through the Ingress and returns the session cookie
// header value.
func login(ctx context.Context, client *http.Client, ingress, host, user string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ingress+"/v1/login",
		strings.NewReader(`{"user":"`+user+`"}`))
	if err != nil {
		return "", err
	}
	req.Host = host
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("login: %s: %s", resp.Status, b)
	}
	var parts []string
	for _, c := range resp.Cookies() {
		parts = append(parts, c.Name+"="+c.Value)
	}
	if len(parts) == 0 {
		return "", errNoCookie
	}
	return strings.Join(parts, "; "), nil
}

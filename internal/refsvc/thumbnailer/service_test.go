package thumbnailer_test

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/shoal-dev/shoal/config"
	"github.com/shoal-dev/shoal/healthtest"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnail/thumbnailtest"
	"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer"
	pb "github.com/shoal-dev/shoal/internal/refsvc/thumbnailer/thumbnailerpb"
	"github.com/shoal-dev/shoal/service"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// program is the thumbnailer as its main runs it, logging to nowhere.
func program() service.Program {
	var cfg thumbnailer.Config
	return service.Program{
		Name:    "thumbnailer",
		Bind:    func(cs *config.Set) { thumbnailer.Bind(cs, &cfg) },
		Setup:   func(svc *service.Service) error { return thumbnailer.Add(svc, cfg) },
		Options: service.Options{Logger: slog.New(slog.DiscardHandler)},
	}
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// start runs the thumbnailer with env over loopback settings until the
// test ends, and returns it once it is ready.
func start(t *testing.T, env map[string]string) *service.Service {
	t.Helper()
	vars := map[string]string{"HOST": "127.0.0.1", "PORT": "0", "ADMIN_PORT": "0", "DRAIN_DELAY": "-1ns", "SHUTDOWN_TIMEOUT": "5s", "MEMORY_LIMIT": "1073741824"}
	maps.Copy(vars, env)
	p := program()
	started := make(chan *service.Service, 1)
	setup := p.Setup
	p.Setup = func(svc *service.Service) error {
		if err := setup(svc); err != nil {
			return err
		}
		started <- svc
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, nil, lookup(vars), io.Discard) }()
	var svc *service.Service
	select {
	case svc = <-started:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stopped with %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("did not stop")
		}
	})
	healthtest.Wait(t, service.URL(svc.AdminAddr())+"/readyz", http.StatusOK)
	return svc
}

// TestRunRejectsBadConfiguration runs the thumbnailer as its main does and
// checks that a bad setting stops it before it serves, with an error
// naming the setting.
func TestRunRejectsBadConfiguration(t *testing.T) {
	listen := []string{"-port", "0", "-admin-port", "0", "-host", "127.0.0.1"}
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string
	}{
		{"negative body bound", map[string]string{"MAX_BODY_BYTES": "-1"}, listen, "MaxBodyBytes -1 is negative"},
		{"malformed env", map[string]string{"MAX_PIXELS": "many"}, nil, "MAX_PIXELS"},
		{"unknown log level", map[string]string{"LOG_LEVEL": "loud"}, listen, "LOG_LEVEL"},
		{"memory too small", map[string]string{"MEMORY_LIMIT": "1000000"}, listen, "MemoryLimit"},
		{"unknown flag", nil, []string{"-no-such-flag"}, "no-such-flag"},
		{"gRPC with the kit's 4 MiB", map[string]string{"GRPC_PORT": "-1"}, listen, "set GRPC_MAX_RECV_MSG_SIZE=10485824"},
		{"gRPC below the upload limit", map[string]string{"GRPC_PORT": "-1", "MAX_BODY_BYTES": "1000", "GRPC_MAX_RECV_MSG_SIZE": "1063"}, listen, "GRPC_MAX_RECV_MSG_SIZE 1063 is below MAX_BODY_BYTES 1000"},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // a wrongly accepted configuration stops at once, with a nil error
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := program().Run(ctx, tt.args, lookup(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want it to name %s", err, tt.wantErr)
			}
		})
	}
}

// TestZeroConfigIsValid serves the thumbnailer from a zero Config.
func TestZeroConfigIsValid(t *testing.T) {
	svc, err := service.New(service.Options{Host: "127.0.0.1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := thumbnailer.Add(svc, thumbnailer.Config{}); err != nil {
		t.Fatal(err)
	}
}

// TestPortClash: a second replica on a taken port fails before serving,
// naming the port.
func TestPortClash(t *testing.T) {
	a := start(t, nil)
	port := strconv.Itoa(a.Addr().(*net.TCPAddr).Port)
	err := program().Run(context.Background(), nil, lookup(map[string]string{"HOST": "127.0.0.1", "PORT": port, "ADMIN_PORT": "0"}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "listening on port "+port) {
		t.Fatalf("Run on a taken port: %v", err)
	}
}

// TestPprofOnlyWhenAsked asks the admin port for the profiles and the
// command line, with and without PPROF.
func TestPprofOnlyWhenAsked(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantIndex int
	}{
		{"off by default", nil, http.StatusNotFound},
		{"PPROF=false", map[string]string{"PPROF": "false"}, http.StatusNotFound},
		{"PPROF=true", map[string]string{"PPROF": "true"}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			adm := service.URL(start(t, tt.env).AdminAddr())
			for path, want := range map[string]int{"/debug/pprof/": tt.wantIndex, "/debug/pprof/cmdline": http.StatusNotFound} {
				if code := get(t, adm+path); code != want {
					t.Errorf("GET %s: %d, want %d", path, code, want)
				}
			}
		})
	}
}

// TestMaxConnAge: connections are recycled after a minute unless
// MAX_CONN_AGE says otherwise; negative means never.
func TestMaxConnAge(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"default", nil, time.Minute},
		{"set", map[string]string{"MAX_CONN_AGE": "10s"}, 10 * time.Second},
		{"never", map[string]string{"MAX_CONN_AGE": "-1s"}, -time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := start(t, tt.env).Options.MaxConnAge; got != tt.want {
				t.Errorf("MaxConnAge = %v, want %v", got, tt.want)
			}
		})
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestResizeOverTheKitsGRPC: registered by Add, Resize is served on
// GRPC_PORT by the service kit, which names the replica in x-served-by,
// and takes an upload of MAX_BODY_BYTES as HTTP does.
func TestResizeOverTheKitsGRPC(t *testing.T) {
	svc := start(t, map[string]string{"GRPC_PORT": "-1", "MAX_BODY_BYTES": "100000", "GRPC_MAX_RECV_MSG_SIZE": "100064", "POD_NAME": "thumbnailer-7"})
	cc, err := grpc.NewClient(svc.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := pb.NewThumbnailerClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var header metadata.MD
	resp, err := c.Resize(ctx, &pb.ResizeRequest{Image: thumbnailtest.PNG(300, 200, false, false), Width: 30, Height: 30}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if resp.ContentType != "image/png" || len(resp.Thumbnail) == 0 || !slices.Equal(header.Get("x-served-by"), []string{"thumbnailer-7"}) {
		t.Fatalf("answer %s of %d bytes from %v", resp.ContentType, len(resp.Thumbnail), header.Get("x-served-by"))
	}
	_, err = c.Resize(ctx, &pb.ResizeRequest{Image: make([]byte, 100000), Width: 30, Height: 30})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("an upload of MAX_BODY_BYTES: %v, want it read and refused as no image", err)
	}
	_, err = c.Resize(ctx, &pb.ResizeRequest{Image: make([]byte, 100001), Width: 30, Height: 30})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("an upload past MAX_BODY_BYTES: %v, want RESOURCE_EXHAUSTED", err)
	}
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// rssProgram is one program idleRSS measures: a package of this module,
// or a bare net/http server whose source is written for the run.
type rssProgram struct {
	name string
	pkg  string   // a package of this module; "" for a generated bare server
	imps []string // the generated server's blank imports
	env  []string // added to the environment at each start
	tags string   // go build -tags
}

// rssPrograms are the peer, the services, and between them bare servers
// that only link what the services link: their RSS is what the imports'
// package initialisation and mapped code cost before any service code
// runs, a floor that laziness in the services cannot go below.
var rssPrograms = []rssProgram{
	{name: "bare net/http"},
	{name: "bare net/http linking gRPC", imps: []string{"google.golang.org/grpc"}},
	{name: "bare net/http linking the thumbnailer's packages", imps: []string{
		"github.com/shoal-dev/shoal/internal/refsvc/thumbnailer", "github.com/shoal-dev/shoal/service", "github.com/shoal-dev/shoal/tracing"}},
	{name: "thumbnailer", pkg: "./cmd/thumbnailer"},
	{name: "thumbnailer -tags grpcnotrace", pkg: "./cmd/thumbnailer", tags: "grpcnotrace"},
	{name: "bare net/http linking the gallery's packages", imps: []string{
		"github.com/shoal-dev/shoal/internal/refsvc/gallery", "github.com/shoal-dev/shoal/service", "github.com/shoal-dev/shoal/tracing"}},
	// REDIS_URL unset: sessions in memory, the gallery's default.
	{name: "gallery (memory sessions)", pkg: "./cmd/gallery", env: []string{"REDIS_URL="}},
	{name: "gallery (memory sessions) -tags grpcnotrace", pkg: "./cmd/gallery", env: []string{"REDIS_URL="}, tags: "grpcnotrace"},
}

// staticFlags are the Dockerfile's build flags, with CGO_ENABLED=0.
var staticFlags = []string{"-trimpath", "-ldflags=-s -w"}

// idleRSS builds rssPrograms (as the Dockerfile does when static is set:
// no cgo, -trimpath, no symbol table), starts each starts times on
// loopback with its default settings (in turns, so a burst of load on the machine touches
// every program alike), waits until it answers and settles, and reads its
// memory from /proc. It prints the medians.
func idleRSS(log *slog.Logger, starts int, static bool) error {
	if starts < 1 {
		return fmt.Errorf("-rss-starts %d: want at least 1", starts)
	}
	dir, err := os.MkdirTemp("", "shoal-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	// The generated servers are built as packages of this module through
	// an overlay, so they link the same versions as the services.
	overlay := map[string]string{}
	bins := make([]string, len(rssPrograms))
	for i, p := range rssPrograms {
		bins[i] = filepath.Join(dir, fmt.Sprintf("prog%d", i))
		if p.pkg != "" {
			continue
		}
		src := filepath.Join(dir, fmt.Sprintf("prog%d.go", i))
		if err := os.WriteFile(src, []byte(bareServer(p.imps)), 0o600); err != nil {
			return err
		}
		overlay[filepath.Join(root, "bench", "stack", "rssbare", strconv.Itoa(i), "main.go")] = src
	}
	ov, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		return err
	}
	ovFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(ovFile, ov, 0o600); err != nil {
		return err
	}
	for i, p := range rssPrograms {
		pkg := p.pkg
		if pkg == "" {
			pkg = "./bench/stack/rssbare/" + strconv.Itoa(i)
		}
		log.Info("building", "program", p.name)
		args := []string{"build", "-overlay", ovFile, "-o", bins[i]}
		if p.tags != "" {
			args = append(args, "-tags", p.tags)
		}
		cmd := exec.Command("go", args...)
		if static {
			cmd.Args = append(cmd.Args, staticFlags...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		cmd.Args = append(cmd.Args, pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w: %s", p.name, err, out)
		}
	}
	samples := make([][]idleMemory, len(rssPrograms))
	for n := range starts {
		log.Info("measuring", "start", n+1, "of", starts)
		for i, p := range rssPrograms {
			m, err := measure(bins[i], p.env)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			samples[i] = append(samples[i], m)
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	build := "go build"
	if static {
		build = "CGO_ENABLED=0 go build " + strings.Join(staticFlags, " ")
	}
	fmt.Printf("\nIdle memory, median of %d starts each (MiB; %s; %s, load average %s):\n\n",
		starts, build, time.Now().UTC().Format("2006-01-02"), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("| process | RSS | PSS | anonymous | file-backed | RSS ratio to bare net/http |\n|---|---|---|---|---|---|\n")
	var base float64
	for i, p := range rssPrograms {
		med := func(f func(idleMemory) int) float64 {
			v := make([]int, 0, len(samples[i]))
			for _, m := range samples[i] {
				v = append(v, f(m))
			}
			slices.Sort(v)
			return float64(v[len(v)/2]) / 1024
		}
		rss := med(func(m idleMemory) int { return m.rss })
		if base == 0 {
			base = rss
		}
		fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f | %.2f |\n", p.name, rss,
			med(func(m idleMemory) int { return m.pss }), med(func(m idleMemory) int { return m.anon }),
			med(func(m idleMemory) int { return m.file }), rss/base)
	}
	return nil
}

// idleMemory is a process's memory in KiB as /proc reports it: resident
// (VmRSS), proportional (Pss, shared pages divided among the processes
// mapping them), and the resident anonymous and file-backed parts.
type idleMemory struct{ rss, pss, anon, file int }

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the module (go env GOMOD is %q): run from the repository", mod)
	}
	return filepath.Dir(mod), nil
}

func measure(bin string, env []string) (idleMemory, error) {
	port, admin := freePort(), freePort()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "ADMIN_PORT="+strconv.Itoa(admin), "LOG_LEVEL=error", "DRAIN_DELAY=0s")
	cmd.Env = append(cmd.Env, env...)
	if err := cmd.Start(); err != nil {
		return idleMemory{}, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			c.Close()
			break
		}
		if ctx.Err() != nil {
			return idleMemory{}, fmt.Errorf("not listening on %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let start-up garbage be collected and checks run
	var m idleMemory
	pid := cmd.Process.Pid
	if err := readKB(fmt.Sprintf("/proc/%d/status", pid), map[string]*int{"VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file}); err != nil {
		return m, err
	}
	if err := readKB(fmt.Sprintf("/proc/%d/smaps_rollup", pid), map[string]*int{"Pss:": &m.pss}); err != nil {
		return m, err
	}
	return m, nil
}

// readKB sets each field of the /proc file to the value of the line that
// starts with its key, in kB.
func readKB(file string, fields map[string]*int) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		p, want := fields[f[0]]
		if !want {
			continue
		}
		kb, err := strconv.Atoi(f[1])
		if err != nil {
			return fmt.Errorf("%s: %s: %w", file, f[0], err)
		}
		*p = kb
		found++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if found != len(fields) {
		return fmt.Errorf("%s: found %d of the fields %v", file, found, fields)
	}
	return nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// bareServer is the peer's source: a net/http hello server, with imports
// linked in for their package initialisation only.
func bareServer(imports []string) string {
	var b strings.Builder
	b.WriteString("package main\n\nimport (\n\t\"io\"\n\t\"net/http\"\n\t\"os\"\n")
	for _, imp := range imports {
		fmt.Fprintf(&b, "\n\t_ %q\n", imp)
	}
	b.WriteString(`)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") })
	http.ListenAndServe(os.Getenv("HOST")+":"+os.Getenv("PORT"), nil)
}
`)
	return b.String()
}

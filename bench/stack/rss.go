package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// idleRSS builds the two reference services and a bare net/http server,
// starts each on loopback, waits until it answers, lets it settle and
// reads VmRSS from /proc.
func idleRSS(log *slog.Logger) error {
	dir, err := os.MkdirTemp("", "shoal-rss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bare := filepath.Join(dir, "bare.go")
	if err := os.WriteFile(bare, []byte(bareServer), 0o600); err != nil {
		return err
	}
	progs := []struct{ name, pkg string }{
		{"bare net/http", bare},
		{"thumbnailer", "./cmd/thumbnailer"},
		{"gallery", "./cmd/gallery"},
	}
	fmt.Printf("\n| process | idle RSS (MiB) | ratio to bare |\n|---|---|---|\n")
	var base float64
	for _, p := range progs {
		bin := filepath.Join(dir, strings.ReplaceAll(p.name, " ", "_"))
		log.Info("building", "program", p.pkg)
		if out, err := exec.Command("go", "build", "-o", bin, p.pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %w: %s", p.pkg, err, out)
		}
		rss, err := measure(bin)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		if base == 0 {
			base = rss
		}
		fmt.Printf("| %s | %.1f | %.2f |\n", p.name, rss, rss/base)
	}
	return nil
}

func measure(bin string) (float64, error) {
	port, admin := freePort(), freePort()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "HOST=127.0.0.1", "PORT="+strconv.Itoa(port), "ADMIN_PORT="+strconv.Itoa(admin), "LOG_LEVEL=error", "DRAIN_DELAY=0s")
	if err := cmd.Start(); err != nil {
		return 0, err
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
			return 0, fmt.Errorf("not listening on %d", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let start-up garbage be collected and checks run
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				return 0, err
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", cmd.Process.Pid)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

const bareServer = `package main

import (
	"io"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "pong\n") })
	http.ListenAndServe(os.Getenv("HOST")+":"+os.Getenv("PORT"), nil)
}
`

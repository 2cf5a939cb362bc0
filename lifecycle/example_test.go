package lifecycle_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/shoal-dev/shoal/health"
	"github.com/shoal-dev/shoal/lifecycle"
	"github.com/shoal-dev/shoal/server"
)

func Example() {
	checker := health.New(nil)
	lc := lifecycle.New(lifecycle.Config{
		DrainDelay:      100 * time.Millisecond, // zero means the 5s default
		ShutdownTimeout: 20 * time.Second,
		Health:          checker,
		Logger:          slog.New(slog.DiscardHandler),
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	lc.Serve("app", server.New(server.Config{}, http.NotFoundHandler()), ln)
	lc.Go("refresher", func(ctx context.Context) error {
		<-ctx.Done() // a background loop until the servers have stopped
		fmt.Println("refresher stopped")
		return nil
	})
	lc.OnClose("database", func(context.Context) error { fmt.Println("database closed"); return nil })
	lc.OnClose("cache", func(context.Context) error { fmt.Println("cache closed"); return nil })

	// main passes a background context and relies on SIGTERM; here the
	// context ends the run at once (the drain still takes its delay).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := lc.Run(ctx); err != nil {
		fmt.Println("exit 1:", err)
		return
	}
	fmt.Println("exit 0")
	// Output:
	// refresher stopped
	// cache closed
	// database closed
	// exit 0
}

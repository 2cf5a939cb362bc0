package api_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/shoal-dev/shoal/internal/localk8s/api"
)

// A server mounts Handler over its cluster; a Client reads it.
func ExampleHandler() {
	srv := httptest.NewServer(api.Handler(&source{}))
	defer srv.Close()

	c := api.Client{Server: srv.URL}
	s, err := c.Snapshot(context.Background())
	if err != nil {
		fmt.Println(err)
		return
	}
	d := s.Deployments[0]
	fmt.Printf("%s/%s %d/%d ready\n", d.Namespace, d.Name, d.Ready, d.Replicas)
	fmt.Println(c.Restart(context.Background(), "default", "nope"))
	// Output:
	// default/web 2/2 ready
	// fake: deployment default/nope: not found (HTTP 404)
}

func ExampleRestartPath() {
	fmt.Println(api.RestartPath("shop", "web"))
	// Output: /api/v1/namespaces/shop/deployments/web/restart
}

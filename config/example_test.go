package config_test

import (
	"flag"
	"fmt"
	"time"

	"github.com/shoal-dev/shoal/config"
)

// A setting is one flag and one environment variable; a flag on the
// command line beats the variable, which beats the default.
func Example() {
	env := map[string]string{"CACHE_TTL": "30s", "WORKERS": "4"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }

	var ttl time.Duration
	var workers int
	cs := config.New(flag.NewFlagSet("example", flag.ContinueOnError), lookup)
	cs.Duration(&ttl, "cache-ttl", "CACHE_TTL", time.Minute, "how long a cached answer is kept")
	cs.Int(&workers, "workers", "WORKERS", 1, "parallel workers")
	if err := cs.Parse([]string{"-workers", "8"}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ttl, workers)
	// Output: 30s 8
}

package cluster

import (
	"testing"

	"github.com/shoal-dev/shoal/internal/testkit/podtest"
)

// testpodBin is the container program of the process tests, built once by
// TestMain (package podtest).
var testpodBin string

func TestMain(m *testing.M) { podtest.Main(m, &testpodBin) }

//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

var errNoBox = errors.New("overload: cpu boxes need Linux cgroup v1")

type cpuBox struct{}

func newCPUBox(string, int, int) (*cpuBox, error)                  { return nil, errNoBox }
func cpuBoxAvailable() error                                       { return errNoBox }
func (*cpuBox) command(self, exe string, args ...string) *exec.Cmd { return nil }
func (*cpuBox) throttled() (int64, error)                          { return 0, errNoBox }
func (*cpuBox) join() error                                        { return errNoBox }
func (*cpuBox) leave() error                                       { return nil }
func (*cpuBox) remove() error                                      { return nil }

const boxPrefix = "shoal-overload-"

func removeStaleBoxes() {}

func enterBox(string, []string) error { return errNoBox }

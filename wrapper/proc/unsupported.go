//go:build !linux

package proc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"time"
)

// job exists elsewhere only so that packages importing proc still build;
// Start refuses, so no method below is ever reached.
type job struct{}

func start(opts Options) (*Job, error) {
	return nil, fmt.Errorf("start %q: %w", opts.Command, errors.ErrUnsupported)
}

func (*job) pid() int                { return 0 }
func (*job) stdout() io.ReadCloser   { return nil }
func (*job) stderr() io.ReadCloser   { return nil }
func (*job) exited() <-chan struct{} { return nil }
func (*job) status() ExitStatus      { return ExitStatus{} }
func (*job) signal(syscall.Signal) (int, error) {
	return 0, errors.ErrUnsupported
}
func (*job) terminate(context.Context, syscall.Signal, time.Duration) TerminateResult {
	return TerminateResult{}
}
func (*job) alive() []int      { return nil }
func (*job) mode() string      { return "" }
func (*job) cgroupDir() string { return "" }
func (*job) close() error      { return nil }

type prepared struct{}

func prepare(bool) *prepared { return &prepared{} }
func (*prepared) release()   {}

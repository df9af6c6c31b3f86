package proc

import (
	"context"
	"io"
	"syscall"
	"time"
)

// job is replaced by the real implementation.
type job struct{}

func start(Options) (*Job, error)               { panic("unimplemented") }
func (*job) pid() int                           { panic("unimplemented") }
func (*job) stdout() io.ReadCloser              { panic("unimplemented") }
func (*job) stderr() io.ReadCloser              { panic("unimplemented") }
func (*job) exited() <-chan struct{}            { panic("unimplemented") }
func (*job) status() ExitStatus                 { panic("unimplemented") }
func (*job) signal(syscall.Signal) (int, error) { panic("unimplemented") }
func (*job) terminate(context.Context, syscall.Signal, time.Duration) TerminateResult {
	panic("unimplemented")
}
func (*job) alive() []int { panic("unimplemented") }
func (*job) close() error { panic("unimplemented") }

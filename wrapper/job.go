package wrapper

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/wire"
	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// job is what the wrapper needs of a started job: *proc.Job, or a fake in
// tests, so the protocol logic is testable without processes.
type job interface {
	PID() int
	Stdout() io.ReadCloser
	Stderr() io.ReadCloser
	Exited() <-chan struct{}
	Status() proc.ExitStatus
	Signal(sig syscall.Signal) (int, error)
	Terminate(ctx context.Context, sig syscall.Signal, grace time.Duration) proc.TerminateResult
	Alive() []int
	Close() error
}

var _ job = (*proc.Job)(nil)

// startProc starts a real job.
func startProc(opts proc.Options) (job, error) {
	j, err := proc.Start(opts)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return j, nil
}

// pipes copies the job's stdout and stderr into the spool, one goroutine
// per pipe, and remembers when the job last wrote (for no_output_timeout).
type pipes struct {
	done     chan struct{} // closed when both pipes reached EOF
	lastByte atomicTime
	chatty   func() // called at each read of proc.FullRead or more
}

func readPipes(j job, s *spool, log hclog.Logger) *pipes {
	p := &pipes{done: make(chan struct{}), chatty: widen}
	p.lastByte.Store(time.Now())
	var wg sync.WaitGroup
	for _, src := range []struct {
		stream byte
		r      io.Reader
	}{{wire.BinaryStdout, j.Stdout()}, {wire.BinaryStderr, j.Stderr()}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.copy(src.stream, src.r, s, log)
		}()
	}
	go func() { wg.Wait(); close(p.done) }()
	return p
}

func (p *pipes) copy(stream byte, r io.Reader, s *spool, log hclog.Logger) {
	buf := make([]byte, chunkMax)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			p.lastByte.Store(time.Now())
			if n >= proc.FullRead {
				p.chatty()
			}
			s.Append(stream, buf[:n])
		}
		if err != nil {
			// EOF, or the read end closed at the wrapper's exit; either
			// way there is nothing more to read.
			if !errors.Is(err, io.EOF) && !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.ErrClosedPipe) {
				log.Warn("reading job output failed", "stream", stream, "error", err)
			}
			return
		}
	}
}

// atomicTime is a time.Time safe for concurrent use. Unlike UnixNano in an
// atomic.Int64 it keeps the monotonic reading, so a clock step does not
// fire or postpone no_output_timeout.
type atomicTime struct {
	mu sync.Mutex
	t  time.Time
}

func (a *atomicTime) Store(t time.Time) { a.mu.Lock(); a.t = t; a.mu.Unlock() }
func (a *atomicTime) Load() time.Time   { a.mu.Lock(); defer a.mu.Unlock(); return a.t }

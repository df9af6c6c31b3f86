package proc

import (
	"os"

	"golang.org/x/sys/unix"
)

// Pipe sizes. Linux gives a pipe 64 KiB; a job that writes faster than
// the wrapper reads then wakes it, and is woken, every 64 KiB, and each
// read is a quarter of what the wrapper sends as one chunk. A pipe that
// one read finds full is grown once to grownPipe, so a chatty job runs
// ahead by a whole chunk. Quiet jobs keep the default: a pipe's pages
// count against its user's pipe allowance (fs.pipe-user-pages-soft),
// and a user over it gets small pipes everywhere.
const (
	defaultPipe = FullRead
	// grownPipe is the wrapper's largest chunk (wire.MaxOutputChunk),
	// which it reads at a time.
	grownPipe = 256 << 10
)

// outPipe is the read end of a job's stdout or stderr. Read is called
// from one goroutine; Close may come from another.
type outPipe struct {
	*os.File
	grown bool
}

func (p *outPipe) Read(b []byte) (int, error) {
	n, err := p.File.Read(b)
	if n >= defaultPipe && !p.grown {
		p.grown = true
		p.grow()
	}
	return n, err
}

// grow asks for grownPipe. A refusal (the user is over its allowance, or
// fs.pipe-max-size is lower) leaves the pipe as it was, which works.
func (p *outPipe) grow() {
	rc, err := p.File.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _ = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, grownPipe)
	})
}

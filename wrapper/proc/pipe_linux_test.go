//go:build linux

package proc

import (
	"errors"
	"io"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestChattyPipeGrows(t *testing.T) {
	const chatty = 1 << 20
	for _, tc := range []struct {
		name    string
		command string
		pipe    func(j *job) *outPipe
		want    int // bytes the job writes
		size    int // the pipe's size once read
	}{
		{"quiet stdout", "printf hello", func(j *job) *outPipe { return j.out }, 5, defaultPipe},
		{"chatty stdout", "head -c 1048576 /dev/zero", func(j *job) *outPipe { return j.out }, chatty, grownPipe},
		{"chatty stderr", "head -c 1048576 /dev/zero >&2", func(j *job) *outPipe { return j.errR }, chatty, grownPipe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Start(Options{Command: tc.command, Env: []string{"PATH=/usr/bin:/bin"}})
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			defer j.Close()
			p := tc.pipe(j.impl)
			if tc.want >= defaultPipe {
				// The job outruns a reader that has not started: the
				// first read finds the pipe full.
				awaitPipeFull(t, p)
			}
			got := 0
			buf := make([]byte, grownPipe)
			for {
				n, err := p.Read(buf)
				got += n
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("read: %v", err)
				}
			}
			if got != tc.want {
				t.Errorf("read %d bytes, want %d", got, tc.want)
			}
			size, err := p.pipeSize()
			if err != nil {
				t.Fatalf("F_GETPIPE_SZ: %v", err)
			}
			if size != tc.size {
				t.Errorf("the pipe holds %d bytes after the job's output, want %d", size, tc.size)
			}
		})
	}
}

// awaitPipeFull waits until p holds what its default size allows.
func awaitPipeFull(t *testing.T, p *outPipe) {
	t.Helper()
	rc, err := p.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		var ierr error
		if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.TIOCINQ) }); err != nil || ierr != nil {
			t.Fatalf("TIOCINQ (FIONREAD): %v %v", err, ierr)
		}
		if n >= defaultPipe {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pipe holds %d bytes after 30 s, want %d", n, defaultPipe)
		}
		time.Sleep(time.Millisecond)
	}
}

// pipeSize reports the pipe's capacity.
func (p *outPipe) pipeSize() (int, error) {
	rc, err := p.File.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var ferr error
	if err := rc.Control(func(fd uintptr) { n, ferr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0) }); err != nil {
		return 0, err
	}
	return n, ferr
}

package proc

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// readProcFile reads a small pseudo-file of /proc or of a cgroup whole,
// in raw system calls: open, read until end of file, close. os.ReadFile
// also offers the file to the runtime's poller (refused), toggles its
// non-blocking flag twice and stats it for its size (always 0 here): six
// calls more per file, and a kill's scans read a score of these files, a
// system call costing tens of microseconds on a virtual machine.
func readProcFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 0, 512)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("read %s: %w", path, err)
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

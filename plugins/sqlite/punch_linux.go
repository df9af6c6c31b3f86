package sqlite

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// punchHole gives the file system back the blocks of n bytes at off in the
// file at path, keeping its size, so that output the cap dropped stops
// taking disk.
func punchHole(path string, off, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("punch hole: %w", err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return fmt.Errorf("punch hole in %s: %w", path, err)
	}
	return nil
}

package wrapper

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// freeSpill gives the file system back n bytes at off in the spill file,
// keeping its size: the chunks there are acked and never read again.
func freeSpill(f *os.File, off, n int64) error {
	if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return fmt.Errorf("punch hole in the spool file: %w", err)
	}
	return nil
}

package wrapper

import (
	"math"

	"golang.org/x/sys/unix"
)

// dupOnto makes newfd a copy of oldfd (dup2, which some Linux
// architectures only have as dup3).
func dupOnto(oldfd, newfd int) error { return unix.Dup3(oldfd, newfd, 0) }

// closeOnExecAll marks every descriptor above stderr close-on-exec: one
// close_range where the kernel has its CLOEXEC flag (Linux 5.11), which
// spares every wrapper's start a listing of /proc/self/fd and a call per
// descriptor.
func closeOnExecAll() error {
	if unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC) == nil {
		return nil
	}
	return markListedCloseOnExec()
}

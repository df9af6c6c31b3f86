package launch

import (
	"os"

	"golang.org/x/sys/unix"
)

// stderrFile is where a wrapper's standard error goes until it detaches:
// a memfd. A file in the temporary directory cost a file system inode
// per dispatch, made and freed at once: at 200 local dispatches a second,
// ext4's search for a free inode not recently freed took 40% of the local
// target's CPU. What a wrapper writes before it detaches is a few lines,
// so memory suits it; where memfds are refused (an old kernel, a seccomp
// filter), an unlinked temporary file does as before.
func stderrFile() (*os.File, error) {
	fd, err := unix.MemfdCreate("saltpeter-wrapper-stderr", unix.MFD_CLOEXEC)
	if err != nil {
		return unlinkedTemp()
	}
	return os.NewFile(uintptr(fd), "saltpeter-wrapper-stderr"), nil
}

package sqlite

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback has the kernel start writing n bytes at off of f back,
// without waiting for it. A variable for tests.
var startWriteback = func(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// dropCached drops n bytes at off of f from the page cache, those of them
// written back. A variable for tests.
var dropCached = func(f *os.File, off, n int64) {
	_ = unix.Fadvise(int(f.Fd()), off, n, unix.FADV_DONTNEED)
}

//go:build !linux

package sqlite

import "os"

// startWriteback and dropCached do nothing here: the page cache keeps
// output files as the system has it.
var (
	startWriteback = func(f *os.File, off, n int64) {}
	dropCached     = func(f *os.File, off, n int64) {}
)

package sysmon

import (
	"fmt"
	"os"
	"syscall"
)

// Awake re-executes the program in place with the monitor kept awake,
// unless this process is the re-executed one (it then puts GODEBUG back)
// or the monitor is to be left as it is. It returns only in the process
// that is to run: without an error, or with why the re-execution failed
// (the process then runs with the runtime's defaults). It must run
// before the process starts anything or holds anything it would not
// keep across an exec: as the first thing main does.
func Awake() error {
	if restore() {
		return nil
	}
	env := wanted(os.Environ())
	if env == nil {
		return nil
	}
	if err := syscall.Exec(program(), os.Args, env); err != nil {
		return fmt.Errorf("re-execute with the runtime's monitor kept awake: %w", err)
	}
	return nil // not reached
}

// program is the path to execute this process's program by. The kernel
// names a process (ps, top, pgrep, killall) after the last element of
// the path it was executed by, so /proc/self/exe itself would rename it
// "exe": the program's own path is used while it still is the program
// this process runs, and /proc/self/exe, which always is, once its file
// was replaced or removed.
func program() string {
	const self = "/proc/self/exe"
	path, err := os.Readlink(self)
	if err != nil {
		return self
	}
	running, err := os.Stat(self)
	if err != nil {
		return self
	}
	if onDisk, err := os.Stat(path); err != nil || !os.SameFile(running, onDisk) {
		return self
	}
	return path
}

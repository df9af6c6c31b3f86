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
	// /proc/self/exe is the program this process runs, even if its file
	// was replaced since.
	if err := syscall.Exec("/proc/self/exe", os.Args, env); err != nil {
		return fmt.Errorf("re-execute with the runtime's monitor kept awake: %w", err)
	}
	return nil // not reached
}

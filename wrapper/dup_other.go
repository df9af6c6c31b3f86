//go:build !linux

package wrapper

import "golang.org/x/sys/unix"

// dupOnto makes newfd a copy of oldfd.
func dupOnto(oldfd, newfd int) error { return unix.Dup2(oldfd, newfd) }

// closeOnExecAll marks every descriptor above stderr close-on-exec.
func closeOnExecAll() error { return markListedCloseOnExec() }

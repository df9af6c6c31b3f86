//go:build !linux

package wrapper

import "errors"

// Prefault is Linux's (see prefault_linux.go); elsewhere it does nothing.
func Prefault() (int, error) { return 0, errors.ErrUnsupported }

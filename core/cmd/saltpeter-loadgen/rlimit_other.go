//go:build !linux

package main

import "errors"

// raiseNoFile is Linux's; elsewhere the limit is left as it is.
func raiseNoFile() (soft, hard uint64, hardErr, err error) {
	return 0, 0, nil, errors.New("raising the open file limit is implemented for Linux only")
}

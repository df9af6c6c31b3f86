//go:build !linux

package wrapper

import (
	"errors"
	"os"
)

// freeSpill is Linux's (see spill_linux.go): elsewhere the spill file
// keeps its acked space until every spilled chunk is acked and it is
// truncated.
func freeSpill(*os.File, int64, int64) error { return errors.ErrUnsupported }

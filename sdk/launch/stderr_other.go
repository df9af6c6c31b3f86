//go:build !linux

package launch

import "os"

// stderrFile is where a wrapper's standard error goes until it detaches:
// an unlinked temporary file (Linux uses a memfd).
func stderrFile() (*os.File, error) { return unlinkedTemp() }

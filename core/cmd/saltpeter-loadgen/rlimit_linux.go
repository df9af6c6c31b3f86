package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// wantNoFile is the hard limit root asks for, when the kernel allows it.
const wantNoFile = 1 << 20

// raiseNoFile raises the soft open file limit to the hard one; as root,
// it first raises the hard one to wantNoFile, or fs.nr_open if lower.
// hardErr says why the hard limit stayed (root without CAP_SYS_RESOURCE,
// as in some containers); the soft one is raised regardless.
func raiseNoFile() (soft, hard uint64, hardErr, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, nil, fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	if os.Geteuid() == 0 {
		want := uint64(wantNoFile)
		if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
			if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
				want = min(want, n)
			}
		}
		if want > lim.Max {
			raised := syscall.Rlimit{Cur: want, Max: want}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
				hardErr = fmt.Errorf("raise the hard RLIMIT_NOFILE to %d: %w", want, err)
			} else {
				lim = raised
			}
		}
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Cur, lim.Max, hardErr, fmt.Errorf("set RLIMIT_NOFILE: %w", err)
		}
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, 0, hardErr, fmt.Errorf("get RLIMIT_NOFILE: %w", err)
	}
	return lim.Cur, lim.Max, hardErr, nil
}

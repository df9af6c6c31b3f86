package wrapper

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Prefault maps this program's own file into its page tables ahead of
// use: its code and read-only data read (MADV_POPULATE_READ), its data
// written (MADV_POPULATE_WRITE, so that a first write does not copy a
// page then). A wrapper started ahead of its job (a spare, with
// -env-stdin) calls it while it waits: the run path it takes once its
// dispatch comes is code it has not run yet, and on a virtual machine
// each page's first touch is a fault of 50 µs or more, some 200 of them
// in a short job's run, which is most of the wrapper's part of it. It
// reports how many bytes it populated. A kernel before 5.14, which lacks
// these advices, makes it fail having changed nothing.
func Prefault() (int, error) {
	var self unix.Stat_t
	if err := unix.Stat("/proc/self/exe", &self); err != nil {
		return 0, fmt.Errorf("prefault: stat /proc/self/exe: %w", err)
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("prefault: %w", err)
	}
	defer f.Close()
	var total int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m, ok := parseMapping(sc.Text())
		if !ok || !sameFile(m, &self) {
			continue
		}
		advice := uintptr(unix.MADV_POPULATE_READ)
		if m.perms[1] == 'w' {
			advice = unix.MADV_POPULATE_WRITE
		}
		// The raw call: these are the program's own mappings, which the
		// Go heap never moves or frees, given by address.
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, advice); errno != 0 {
			return total, fmt.Errorf("prefault %x-%x %s: %w", m.start, m.end, m.perms, errno)
		}
		total += int(m.end - m.start)
	}
	if err := sc.Err(); err != nil {
		return total, fmt.Errorf("prefault: read /proc/self/maps: %w", err)
	}
	return total, nil
}

// mapping is a line of /proc/self/maps.
type mapping struct {
	start, end   uintptr
	perms        string
	major, minor uint32 // the file's device
	inode        uint64
}

// parseMapping reads "start-end perms offset major:minor inode path".
func parseMapping(line string) (mapping, bool) {
	fields := strings.Fields(line)
	if len(fields) < 5 || len(fields[1]) < 4 {
		return mapping{}, false
	}
	lo, hi, ok1 := strings.Cut(fields[0], "-")
	maj, mnr, ok2 := strings.Cut(fields[3], ":")
	if !ok1 || !ok2 {
		return mapping{}, false
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	major, err3 := strconv.ParseUint(maj, 16, 32)
	minor, err4 := strconv.ParseUint(mnr, 16, 32)
	inode, err5 := strconv.ParseUint(fields[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil || end <= start {
		return mapping{}, false
	}
	return mapping{start: uintptr(start), end: uintptr(end), perms: fields[1],
		major: uint32(major), minor: uint32(minor), inode: inode}, true
}

// sameFile reports whether m maps the file st describes.
func sameFile(m mapping, st *unix.Stat_t) bool {
	return m.inode != 0 && m.inode == st.Ino &&
		m.major == unix.Major(st.Dev) && m.minor == unix.Minor(st.Dev)
}

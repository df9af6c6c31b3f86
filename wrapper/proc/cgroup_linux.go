//go:build linux

package proc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// cgroup is a cgroup v2 made for one job, below the wrapper's own.
type cgroup struct {
	dir     string
	fd      int  // the directory, for clone3's CLONE_INTO_CGROUP
	hasKill bool // cgroup.kill exists (Linux 5.14+)
}

var cgroupSeq atomic.Uint64

// newCgroup makes a child of the wrapper's own cgroup v2. Any failure means
// "no cgroup here", and the caller falls back to the /proc walk.
func newCgroup() (*cgroup, error) {
	base, err := cgroupBase()
	if err != nil {
		return nil, err
	}
	return newCgroupIn(base)
}

// cgroupBase is the directory of the wrapper's own cgroup v2, where a
// job's is made.
func cgroupBase() (string, error) {
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	return cgroup2Dir(own)
}

// newCgroupIn makes a job's cgroup in base (see cgroupBase).
func newCgroupIn(base string) (*cgroup, error) {
	var err error
	// A stale directory of an earlier wrapper with the same pid may exist
	// (and may still hold its leftovers), so never reuse one.
	var dir string
	for range 100 {
		dir = filepath.Join(base, fmt.Sprintf("saltpeter-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
		err = os.Mkdir(dir, 0o755)
		if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("make cgroup: %w", err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = unix.Rmdir(dir)
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	cg := &cgroup{dir: dir, fd: fd}
	if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err == nil {
		cg.hasKill = true
	}
	return cg, nil
}

// ownCgroup is the wrapper's cgroup v2 path, relative to the cgroup
// namespace's root, from the "0::" line of /proc/self/cgroup.
func ownCgroup() (string, error) {
	b, err := readProcFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			// Outside our cgroup namespace the path is not ours to use.
			if !strings.HasPrefix(p, "/") || strings.Contains(p, "/..") {
				return "", fmt.Errorf("own cgroup %q is out of reach", p)
			}
			return p, nil
		}
	}
	return "", errors.New("no cgroup v2 line in /proc/self/cgroup")
}

// cgroup2Dir maps a cgroup path to a directory under a cgroup2 mount, which
// in hybrid mode is not /sys/fs/cgroup, and may mount a subtree only. It
// and ownCgroup read their files in raw calls (readProcFile), since every
// job's start reads both.
func cgroup2Dir(cgPath string) (string, error) {
	b, err := readProcFile("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mountinfo: %w", err)
	}
	return cgroup2DirIn(string(b), cgPath)
}

func cgroup2DirIn(mountinfo, cgPath string) (string, error) {
	for line := range strings.SplitSeq(mountinfo, "\n") {
		// id parent maj:min root mountpoint options [optional...] - fstype source super
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) == 0 || fs[0] != "cgroup2" {
			continue
		}
		fs := strings.Fields(pre)
		if len(fs) < 5 {
			continue
		}
		root, mnt := unescapeMount(fs[3]), unescapeMount(fs[4])
		rel, ok := strings.CutPrefix(cgPath, root)
		if !ok || (root != "/" && rel != "" && !strings.HasPrefix(rel, "/")) {
			continue
		}
		return filepath.Join(mnt, rel), nil
	}
	return "", errors.New("no cgroup2 mount holds the wrapper's cgroup")
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// procs lists the cgroup's processes; zombies are not among them.
func (c *cgroup) procs() ([]int, error) {
	b, err := readProcFile(filepath.Join(c.dir, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("list cgroup %s: %w", c.dir, err)
	}
	var pids []int
	for f := range strings.FieldsSeq(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// kill SIGKILLs every process of the cgroup in one go, forks included.
func (c *cgroup) kill() error {
	if err := os.WriteFile(filepath.Join(c.dir, "cgroup.kill"), []byte("1"), 0); err != nil {
		return fmt.Errorf("kill cgroup %s: %w", c.dir, err)
	}
	return nil
}

// remove removes the directory, which the kernel allows only when empty;
// it may be tried again.
func (c *cgroup) remove() error {
	if c.fd >= 0 {
		_ = unix.Close(c.fd)
		c.fd = -1
	}
	if err := unix.Rmdir(c.dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove cgroup %s: %w", c.dir, err)
	}
	return nil
}

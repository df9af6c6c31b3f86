package launch

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// The test binary, run again with envFake set, is a fake wrapper: the
// tests start it as a target would, and it tells them what it found.
const (
	// envFake is the fake wrapper's kind (see fakeWrapper).
	envFake = "SALTPETER_LAUNCH_FAKE"
	// envReport names the file the fake wrapper writes its report to,
	// before it prints its detach line.
	envReport = "SALTPETER_LAUNCH_REPORT"
)

// leakedFD is a descriptor of this process without close-on-exec, as a
// plugin's parent may leak one into it: no wrapper may inherit it.
var leakedFD = -1

func TestMain(m *testing.M) {
	if kind := os.Getenv(envFake); kind != "" {
		os.Exit(fakeWrapper(kind))
	}
	fd, err := syscall.Open(os.DevNull, syscall.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	leakedFD = fd
	os.Exit(m.Run())
}

// report is what a fake wrapper found about itself.
type report struct {
	PID, PPID, SID, PGID int
	// ByTarget is wire.EnvDetachedByTarget as it found it, and
	// GOMAXPROCS and Narrowed the variable and wire.EnvNarrowedByTarget.
	ByTarget, GOMAXPROCS, Narrowed string
	// FDs are its descriptors beyond 0-2 (what they point at), but for
	// the Go runtime's own.
	FDs []string
	// Stdin is what it read on standard input (kind "env-stdin").
	Stdin string
	// Child is the process it started in its own process group (kind
	// "group").
	Child int
}

// fakeWrapper acts as a wrapper of kind:
//   - "wrapper" knows wire.EnvDetachedByTarget: told so, and leading its
//     session, it prints its detach line and runs on, as its job, until
//     SIGTERM; else it detaches a copy of itself as a wrapper does.
//   - "env-stdin" reads its standard input to its end first, and exits 2
//     when it was empty, as a spare does; then it is "wrapper".
//   - "old" does not know the variable: it always detaches a copy.
//   - "group" starts a copy in its own process group, prints its line,
//     and runs on until killed.
//   - "copy" is a detached copy: it runs until SIGTERM.
func fakeWrapper(kind string) int {
	fds := ownFDs()
	if kind == "copy" {
		awaitTerm()
		return 0
	}
	r := report{PID: os.Getpid(), PPID: os.Getppid(), ByTarget: os.Getenv(wire.EnvDetachedByTarget), FDs: fds,
		GOMAXPROCS: os.Getenv("GOMAXPROCS"), Narrowed: os.Getenv(wire.EnvNarrowedByTarget)}
	sid, _, _ := syscall.RawSyscall(syscall.SYS_GETSID, 0, 0, 0)
	r.SID = int(sid)
	r.PGID = syscall.Getpgrp()
	if kind == "env-stdin" {
		b, err := io.ReadAll(os.Stdin)
		if err != nil || len(b) == 0 {
			fmt.Fprintf(os.Stderr, "fake wrapper: no dispatch environment on stdin (%v)\n", err)
			return 2
		}
		r.Stdin = string(b)
		kind = "wrapper"
	}
	var copyPID int
	inPlace := kind == "wrapper" && r.ByTarget == "1" && r.SID == r.PID
	switch {
	case kind == "group":
		c, err := startCopy(false)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake wrapper:", err)
			return 1
		}
		r.Child = c.Process.Pid
	case !inPlace:
		c, err := startCopy(true)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fake wrapper:", err)
			return 1
		}
		copyPID = c.Process.Pid
	}
	if err := writeReport(r); err != nil {
		fmt.Fprintln(os.Stderr, "fake wrapper:", err)
		return 1
	}
	if copyPID != 0 {
		fmt.Printf("%s pid=%d\n", wire.DetachedLine, copyPID)
		return 0
	}
	// The job's side: SIGTERM ends it, once its line is out.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	fmt.Printf("%s pid=%d\n", wire.DetachedLine, r.PID)
	if devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0); err == nil {
		// As a wrapper detached in place: the target's pipe is let go.
		_ = syscall.Dup3(int(devnull.Fd()), 0, 0)
		_ = syscall.Dup3(int(devnull.Fd()), 1, 0)
		devnull.Close()
	}
	<-term
	return 0
}

// startCopy starts this program again as kind "copy", in a session of its
// own when setsid, and does not wait for it.
func startCopy(setsid bool) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	c := exec.Command(exe)
	c.Env = append(os.Environ(), envFake+"=copy")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: setsid}
	if err := c.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

func awaitTerm() {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	<-term
}

// ownFDs lists this process's descriptors beyond 0-2, but the Go
// runtime's own (anon_inode: its poller; its cgroup's CPU limit files,
// which it rereads) and the listing's.
func ownFDs() []string {
	dir := fmt.Sprintf("/proc/%d/fd", os.Getpid())
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []string{"cannot list: " + err.Error()}
	}
	var out []string
	for _, e := range ents {
		var fd int
		if _, err := fmt.Sscan(e.Name(), &fd); err != nil || fd <= 2 {
			continue
		}
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || link == dir || strings.HasPrefix(link, "anon_inode:") || strings.HasPrefix(link, "/sys/fs/cgroup/") {
			continue
		}
		out = append(out, fmt.Sprintf("%d -> %s", fd, link))
	}
	return out
}

func writeReport(r report) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := os.Getenv(envReport)
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// readReport reads what the fake wrapper reported in path.
func readReport(t *testing.T, path string) report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the fake wrapper's report: %v", err)
	}
	var r report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("the fake wrapper's report %q: %v", b, err)
	}
	return r
}

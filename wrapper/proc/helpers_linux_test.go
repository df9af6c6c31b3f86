//go:build linux

package proc_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// patience bounds every wait for an event: generous, because two cores are
// shared with other builds; a passing test never waits for it.
const patience = 30 * time.Second

type mode struct {
	name          string
	disableCgroup bool
}

var modes = []mode{
	{name: proc.ModeCgroup},
	{name: proc.ModeProc, disableCgroup: true},
}

// eachMode runs f once per tree-tracking mode.
func eachMode(t *testing.T, f func(t *testing.T, m mode)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// startJob starts opts in mode m and makes sure the tree is gone and the
// job closed when the test ends. The cgroup variant is skipped where no
// cgroup can be made, unless SALTPETER_REQUIRE=all.
func startJob(t *testing.T, m mode, opts proc.Options) *proc.Job {
	t.Helper()
	opts.DisableCgroup = m.disableCgroup
	if opts.Env == nil {
		opts.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	}
	j, err := proc.Start(opts)
	if err != nil {
		t.Fatalf("Start(%q): %v", opts.Command, err)
	}
	t.Cleanup(func() {
		res := j.Terminate(context.Background(), syscall.SIGKILL, 0)
		if len(res.Survivors) > 0 {
			t.Errorf("cleanup: survivors %+v", res.Survivors)
		}
		if err := j.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if got := j.Mode(); got != m.name {
		if m.name == proc.ModeCgroup && os.Getenv("SALTPETER_REQUIRE") != "all" {
			t.Skipf("no cgroup v2 of our own here (mode %q)", got)
		}
		t.Fatalf("Mode() = %q, want %q", got, m.name)
	}
	return j
}

// lines streams r's lines until EOF.
func lines(t *testing.T, r io.Reader) <-chan string {
	t.Helper()
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- sc.Text()
		}
	}()
	return ch
}

// readAll reads r to EOF in the background; the returned func waits.
func readAll(t *testing.T, r io.Reader) func() string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		ch <- string(b)
	}()
	return func() string {
		t.Helper()
		select {
		case s := <-ch:
			return s
		case <-time.After(patience):
			t.Fatal("timed out reading output to EOF")
			return ""
		}
	}
}

// awaitLine returns the next line that match accepts.
func awaitLine(t *testing.T, ch <-chan string, match func(string) bool) string {
	t.Helper()
	timeout := time.After(patience)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatal("stdout ended before the awaited line")
			}
			if match(l) {
				return l
			}
		case <-timeout:
			t.Fatal("timed out awaiting a line on stdout")
		}
	}
}

// awaitPIDs collects n lines "<prefix> <pid>" and returns the pids.
func awaitPIDs(t *testing.T, ch <-chan string, prefix string, n int) []int {
	t.Helper()
	var pids []int
	for range n {
		l := awaitLine(t, ch, func(l string) bool { return strings.HasPrefix(l, prefix+" ") })
		pid, err := strconv.Atoi(strings.TrimPrefix(l, prefix+" "))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func awaitExit(t *testing.T, j *proc.Job) proc.ExitStatus {
	t.Helper()
	select {
	case <-j.Exited():
		return j.Status()
	case <-time.After(patience):
		t.Fatal("timed out awaiting the main process's exit")
		return proc.ExitStatus{}
	}
}

// awaitState polls /proc/PID/stat until the process is in state: the
// kernel announces a stop to nobody but the parent.
func awaitState(t *testing.T, pid int, state string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if f[0] == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: state %s, want %s", pid, f[0], state)
		}
		<-tick.C
	}
}

// assertGone checks, right now, that no process has pid any more (not even
// a zombie).
func assertGone(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			state := "?"
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
				state = string(b)
			}
			t.Errorf("pid %d still exists (kill 0: %v): %s", pid, err, state)
		}
	}
}

func contains(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// inCgroup says whether pid's cgroup v2 is dir.
func inCgroup(t *testing.T, pid int, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatalf("cgroup of %d: %v", pid, err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p != "/" && strings.HasSuffix(dir, filepath.Clean(p))
		}
	}
	return false
}

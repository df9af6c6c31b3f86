//go:build linux

package proc

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	tests := []struct {
		name, stat string
		want       procInfo
		wantErr    bool
	}{
		{
			name: "plain",
			stat: "42 (sleep) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 98765 0 0",
			want: procInfo{pid: 42, ppid: 1, pgrp: 42, comm: "sleep", state: "S", start: 98765},
		},
		{
			name: "comm with spaces and parens",
			stat: "7 (a) (b c) Z 3 5 5 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 11 0 0",
			want: procInfo{pid: 7, ppid: 3, pgrp: 5, comm: "a) (b c", state: "Z", start: 11},
		},
		{name: "truncated", stat: "7 (x) S 1 2", wantErr: true},
		{name: "no comm", stat: "7 x S", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat(tt.want.pid, []byte(tt.stat))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestCgroup2Dir(t *testing.T) {
	const hybrid = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const subtree = `29 22 0:26 /system.slice/x.service /sys/fs/cg\040v2 rw shared:4 - cgroup2 cgroup2 rw
`
	tests := []struct {
		name, mountinfo, cgPath, want string
	}{
		{"hybrid root", hybrid, "/", "/sys/fs/cgroup/unified"},
		{"hybrid nested", hybrid, "/a/b", "/sys/fs/cgroup/unified/a/b"},
		{"subtree mount", subtree, "/system.slice/x.service/job", "/sys/fs/cg v2/job"},
		{"outside the subtree", subtree, "/system.slice/x.service2", ""},
		{"v1 only", "38 30 0:35 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n", "/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cgroup2DirIn(tt.mountinfo, tt.cgPath)
			if tt.want == "" {
				if err == nil {
					t.Errorf("got %q, want an error", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestCgroupRefused: a cgroup that clone3 will not use (here, a plain
// directory) sends the job to the /proc walk, silently.
func TestCgroupRefused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not-a-cgroup")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	orig := makeCgroup
	t.Cleanup(func() { makeCgroup = orig })
	makeCgroup = func() (*cgroup, error) {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		return &cgroup{dir: dir, fd: fd}, nil
	}

	j, err := Start(Options{Command: "exit 3", Env: []string{"PATH=/usr/bin:/bin"}})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		j.Terminate(context.Background(), syscall.SIGKILL, 0)
		j.Close()
	})
	if m := j.Mode(); m != ModeProc || j.CgroupDir() != "" {
		t.Errorf("Mode() = %q, CgroupDir() = %q; want the /proc walk", m, j.CgroupDir())
	}
	select {
	case <-j.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("timed out awaiting the exit")
	}
	if st := j.Status(); st.Code != 3 {
		t.Errorf("status %+v", st)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("refused cgroup %s not removed: %v", dir, err)
	}
}

// reaperHolds is how many holds keep the reaper running.
func reaperHolds() int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return reg.holds
}

// ownCgroups lists the cgroups this process made in base.
func ownCgroups(t *testing.T, base string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(base, fmt.Sprintf("saltpeter-%d-*", os.Getpid())))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestPrepare: Prepare holds the reaper and finds where the job's cgroup
// goes, and makes nothing outside the process; Start with it makes the
// job's cgroup there and takes the reaper's hold over (Release after that
// does nothing); a preparation no job takes, or one a failed Start took,
// gives its hold back.
func TestPrepare(t *testing.T) {
	base, err := cgroupBase()
	if err != nil {
		if os.Getenv("SALTPETER_REQUIRE") == "all" {
			t.Fatalf("no cgroup v2 of our own here: %v", err)
		}
		t.Skipf("no cgroup v2 of our own here: %v", err)
	}
	holds := reaperHolds()
	before := ownCgroups(t, base)

	p := Prepare(false)
	if p.impl.cgBase != base {
		t.Errorf("Prepare found %q for the job's cgroup, want %q", p.impl.cgBase, base)
	}
	if got := reaperHolds(); got != holds+1 {
		t.Errorf("reaper holds %d after Prepare, want %d", got, holds+1)
	}
	if got := ownCgroups(t, base); len(got) != len(before) {
		t.Errorf("Prepare made cgroups %v: a wrapper that dies now would leave them", got)
	}
	j, err := Start(Options{Command: "exit 0", Env: []string{"PATH=/usr/bin:/bin"}, Prepared: p})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if j.Mode() != ModeCgroup || filepath.Dir(j.CgroupDir()) != base {
		t.Errorf("the job runs in mode %s, cgroup %q; want a cgroup in %s", j.Mode(), j.CgroupDir(), base)
	}
	if got := reaperHolds(); got != holds+1 {
		t.Errorf("reaper holds %d after Start, want %d: the job's, taken over from Prepare", got, holds+1)
	}
	p.Release() // taken: nothing to undo
	if got := reaperHolds(); got != holds+1 {
		t.Errorf("reaper holds %d while the job is open, want %d (the job's)", got, holds+1)
	}
	select {
	case <-j.Exited():
	case <-time.After(30 * time.Second):
		t.Fatal("timed out awaiting the exit")
	}
	j.Terminate(context.Background(), syscall.SIGKILL, 0)
	if err := j.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := reaperHolds(); got != holds {
		t.Errorf("reaper holds %d after the job closed, want %d", got, holds)
	}

	unused := Prepare(false)
	unused.Release()
	unused.Release()
	if got := reaperHolds(); got != holds {
		t.Errorf("reaper holds %d after Release, want %d", got, holds)
	}

	failed := Prepare(false)
	if _, err := Start(Options{Command: "true", Cwd: "/no/such/dir", Prepared: failed}); err == nil {
		t.Fatal("Start in a missing directory succeeded")
	}
	if got := reaperHolds(); got != holds {
		t.Errorf("reaper holds %d after a failed Start, want %d", got, holds)
	}
	if got := ownCgroups(t, base); len(got) != len(before) {
		t.Errorf("cgroups %v left after the jobs, want %v", got, before)
	}
}

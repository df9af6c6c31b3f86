//go:build linux

package proc_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/saltpeter/saltpeter/wrapper/proc"
)

// helperEnv makes the test binary, re-run as another user, act as a
// wrapper that is not root (see TestStartNeedsRoot).
const helperEnv = "SALTPETER_PROC_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "needroot" {
		os.Exit(needRootHelper())
	}
	os.Exit(m.Run())
}

func needRootHelper() int {
	_, err := proc.Start(proc.Options{Command: "true", User: "root", Env: []string{"PATH=/usr/bin:/bin"}})
	if errors.Is(err, proc.ErrNeedRoot) && strings.Contains(err.Error(), `"root"`) {
		fmt.Printf("ok uid=%d: %v\n", os.Getuid(), err)
		return 0
	}
	fmt.Printf("uid=%d: Start as root: %v, want ErrNeedRoot naming the user\n", os.Getuid(), err)
	return 1
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name, command  string
		stdout, stderr string
		want           proc.ExitStatus
	}{
		{
			name:    "code",
			command: "echo out; echo err >&2; exit 7",
			stdout:  "out\n", stderr: "err\n",
			want: proc.ExitStatus{Code: 7},
		},
		{name: "zero", command: "true", want: proc.ExitStatus{Code: 0}},
		{
			name:    "signal",
			command: "kill -USR1 $$",
			want:    proc.ExitStatus{Code: 128 + 10, Signaled: true, Signal: syscall.SIGUSR1},
		},
	}
	eachMode(t, func(t *testing.T, m mode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				j := startJob(t, m, proc.Options{Command: tt.command})
				out, errOut := readAll(t, j.Stdout()), readAll(t, j.Stderr())
				if got := out(); got != tt.stdout {
					t.Errorf("stdout %q, want %q", got, tt.stdout)
				}
				if got := errOut(); got != tt.stderr {
					t.Errorf("stderr %q, want %q", got, tt.stderr)
				}
				if got := awaitExit(t, j); got != tt.want {
					t.Errorf("status %+v, want %+v", got, tt.want)
				}
			})
		}
	})
}

// TestStartEnvironment: exactly Env, in Cwd, with no descriptor but 0, 1
// and 2, even one the wrapper holds without close-on-exec.
func TestStartEnvironment(t *testing.T) {
	leak, err := unix.Open(os.DevNull, unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(leak) })
	if fl, err := unix.FcntlInt(uintptr(leak), unix.F_GETFD, 0); err != nil || fl&unix.FD_CLOEXEC != 0 {
		t.Fatalf("fd %d is not an inheritable descriptor (flags %d, %v)", leak, fl, err)
	}
	env := []string{"PATH=/usr/bin:/bin", "SP_A=1", "SP_B=two words", "HOME=/nowhere"}

	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		// $$'s fds and environ are the exec'd shell's own; "; true" keeps
		// dash from exec'ing ls in its place.
		j := startJob(t, m, proc.Options{
			Command: `ls /proc/$$/fd; pwd; tr '\0' '\n' </proc/$$/environ; true`,
			Cwd:     dir,
			Env:     env,
		})
		out := readAll(t, j.Stdout())
		want := "0\n1\n2\n" + dir + "\n" + strings.Join(env, "\n") + "\n"
		if got := out(); got != want {
			t.Errorf("stdout\n%s\nwant\n%s", got, want)
		}
		if st := awaitExit(t, j); st.Code != 0 {
			t.Errorf("status %+v", st)
		}
	})
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		opts proc.Options
		want string
	}{
		{"missing cwd", proc.Options{Command: "true", Cwd: "/nonexistent/saltpeter"}, "no such file"},
		{"unknown user", proc.Options{Command: "true", User: "saltpeter-no-such-user"}, `"saltpeter-no-such-user"`},
	}
	for _, m := range modes {
		for _, tt := range tests {
			t.Run(m.name+"/"+tt.name, func(t *testing.T) {
				tt.opts.DisableCgroup = m.disableCgroup
				j, err := proc.Start(tt.opts)
				if err == nil {
					j.Terminate(context.Background(), syscall.SIGKILL, 0)
					j.Close()
					t.Fatal("Start succeeded")
				}
				if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "start") {
					t.Errorf("error %q, want one naming %s", err, tt.want)
				}
				if errors.Is(err, proc.ErrNeedRoot) {
					t.Errorf("error %q is ErrNeedRoot", err)
				}
			})
		}
	}
}

// TestTreeTerminate: setsid'd, backgrounded and double-forked children all
// go, although only some of them are in the job's process group.
func TestTreeTerminate(t *testing.T) {
	const script = `
setsid sh -c 'sleep 1000 & echo pid $!; echo pid $$; wait' &
echo pid $!
sleep 1000 &
echo pid $!
(sh -c 'sleep 1000 & echo pid $!' &)
echo pid $$
wait`
	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{Command: script})
		pids := awaitPIDs(t, lines(t, j.Stdout()), "pid", 6)

		alive := j.Alive()
		for _, pid := range pids {
			if !contains(alive, pid) {
				t.Errorf("pid %d not in Alive() %v", pid, alive)
			}
			if m.name == proc.ModeCgroup && !inCgroup(t, pid, j.CgroupDir()) {
				t.Errorf("pid %d not in cgroup %s", pid, j.CgroupDir())
			}
		}

		res := j.Terminate(context.Background(), syscall.SIGTERM, 5*time.Second)
		t.Logf("%+v", res)
		if res.Signalled < 5 {
			t.Errorf("Signalled %d, want at least 5", res.Signalled)
		}
		if len(res.Survivors) > 0 {
			t.Errorf("survivors %+v", res.Survivors)
		}
		assertGone(t, pids...)
		if a := j.Alive(); len(a) > 0 {
			t.Errorf("Alive() = %v after Terminate", a)
		}
		if st := awaitExit(t, j); st.Code != 143 || st.Signal != syscall.SIGTERM {
			t.Errorf("status %+v, want SIGTERM", st)
		}
	})
}

func TestTerminatePolicy(t *testing.T) {
	tests := []struct {
		name    string
		command string
		// paused: SIGSTOP the tree before terminating it.
		paused     bool
		grace      time.Duration
		wantKilled bool
		want       proc.ExitStatus
	}{
		{
			name:       "ignores SIGTERM",
			command:    `trap '' TERM; echo ready $$; while :; do sleep 0.1; done`,
			grace:      time.Second,
			wantKilled: true,
			want:       proc.ExitStatus{Code: 137, Signaled: true, Signal: syscall.SIGKILL},
		},
		{
			name:    "honours SIGTERM",
			command: `sleep 1000 & echo ready $$; wait`,
			grace:   patience,
			want:    proc.ExitStatus{Code: 143, Signaled: true, Signal: syscall.SIGTERM},
		},
		{
			name:    "paused",
			command: `sleep 1000 & sleep 1000 & echo ready $$; wait`,
			paused:  true,
			grace:   patience,
			want:    proc.ExitStatus{Code: 143, Signaled: true, Signal: syscall.SIGTERM},
		},
	}
	eachMode(t, func(t *testing.T, m mode) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				j := startJob(t, m, proc.Options{Command: tt.command})
				awaitPIDs(t, lines(t, j.Stdout()), "ready", 1)
				if tt.paused {
					n, err := j.Signal(syscall.SIGSTOP)
					if err != nil || n < 3 {
						t.Fatalf("Signal(SIGSTOP) = %d, %v; want 3 processes", n, err)
					}
					for _, pid := range j.Alive() {
						awaitState(t, pid, "T")
					}
				}

				begin := time.Now()
				res := j.Terminate(context.Background(), syscall.SIGTERM, tt.grace)
				took := time.Since(begin)
				t.Logf("took %v: %+v", took, res)

				if res.Signalled == 0 {
					t.Error("Signalled 0")
				}
				if tt.wantKilled {
					if len(res.Killed) == 0 {
						t.Error("Killed is empty, want the SIGTERM-proof tree")
					}
					if took < tt.grace {
						t.Errorf("took %v: SIGKILL before the grace of %v", took, tt.grace)
					}
				} else {
					if len(res.Killed) > 0 {
						t.Errorf("Killed %v, want none", res.Killed)
					}
					if took > tt.grace/3 {
						t.Errorf("took %v, want well under the grace of %v", took, tt.grace)
					}
				}
				if len(res.Survivors) > 0 {
					t.Errorf("survivors %+v", res.Survivors)
				}
				if a := j.Alive(); len(a) > 0 {
					t.Errorf("Alive() = %v after Terminate", a)
				}
				if st := awaitExit(t, j); st != tt.want {
					t.Errorf("status %+v, want %+v", st, tt.want)
				}
			})
		}
	})
}

// TestTerminateContext: a cancelled ctx cuts the grace short, not the kill.
func TestTerminateContext(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{Command: `trap '' TERM; echo ready $$; while :; do sleep 0.1; done`})
		awaitPIDs(t, lines(t, j.Stdout()), "ready", 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		begin := time.Now()
		res := j.Terminate(ctx, syscall.SIGTERM, patience)
		if took := time.Since(begin); took > patience/3 {
			t.Errorf("took %v with a cancelled context", took)
		}
		if len(res.Killed) == 0 || len(res.Survivors) > 0 {
			t.Errorf("%+v, want the tree SIGKILLed", res)
		}
		if st := awaitExit(t, j); st.Signal != syscall.SIGKILL {
			t.Errorf("status %+v, want SIGKILL", st)
		}
	})
}

// TestLeftovers: the main process exits, a child lives on; Terminate is
// how the wrapper disposes of it.
func TestLeftovers(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{Command: `sleep 1000 & echo pid $!; exit 0`})
		pid := awaitPIDs(t, lines(t, j.Stdout()), "pid", 1)[0]
		if st := awaitExit(t, j); st != (proc.ExitStatus{}) {
			t.Errorf("status %+v, want code 0", st)
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("leftover %d: %v", pid, err)
		}
		if a := j.Alive(); !slices.Equal(a, []int{pid}) {
			t.Errorf("Alive() = %v, want [%d]", a, pid)
		}

		res := j.Terminate(context.Background(), syscall.SIGTERM, patience)
		if res.Signalled != 1 || len(res.Killed) > 0 || len(res.Survivors) > 0 {
			t.Errorf("%+v, want 1 signalled, none killed", res)
		}
		assertGone(t, pid)
		if a := j.Alive(); len(a) > 0 {
			t.Errorf("Alive() = %v after Terminate", a)
		}
	})
}

// TestClose: Close kills nothing, and removes the cgroup once empty.
func TestClose(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{Command: `sleep 1000 & echo pid $!; exit 0`})
		pid := awaitPIDs(t, lines(t, j.Stdout()), "pid", 1)[0]
		awaitExit(t, j)
		dir := j.CgroupDir()

		err := j.Close()
		if m.name == proc.ModeCgroup && err == nil {
			t.Error("Close removed a cgroup that still holds a process")
		}
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("Close killed %d: %v", pid, err)
		}
		res := j.Terminate(context.Background(), syscall.SIGTERM, patience)
		if res.Signalled != 1 {
			t.Errorf("Terminate after Close: %+v", res)
		}
		assertGone(t, pid)
		if err := j.Close(); err != nil {
			t.Errorf("Close again, once empty: %v", err)
		}
		if _, err := os.Stat(dir); dir != "" && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s still there: %v", dir, err)
		}
	})
	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{Command: "true"})
		awaitExit(t, j)
		j.Terminate(context.Background(), syscall.SIGTERM, patience)
		dir := j.CgroupDir()
		if err := j.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if _, err := os.Stat(dir); dir != "" && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s still there: %v", dir, err)
		}
	})
}

func TestSignal(t *testing.T) {
	// Three shells: the main one, a child in the same group and a
	// grandchild in a session of its own.
	const loop = `trap 'echo usr1 $$' USR1; echo ready $$; while :; do sleep 0.1; done`
	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{
			Command: `sh -c 'setsid sh -c "$LOOP" & eval "$LOOP"' & eval "$LOOP"`,
			Env:     []string{"PATH=/usr/bin:/bin", "LOOP=" + loop},
		})
		out := lines(t, j.Stdout())
		ready := awaitPIDs(t, out, "ready", 3)

		if n, err := j.Signal(syscall.SIGKILL); err == nil || n != 0 {
			t.Errorf("Signal(SIGKILL) = %d, %v; want refused", n, err)
		}
		for _, pid := range ready {
			if err := syscall.Kill(pid, 0); err != nil {
				t.Fatalf("pid %d after a refused SIGKILL: %v", pid, err)
			}
		}

		n, err := j.Signal(syscall.SIGUSR1)
		if err != nil || n < 3 {
			t.Fatalf("Signal(SIGUSR1) = %d, %v; want at least 3", n, err)
		}
		got := awaitPIDs(t, out, "usr1", 3)
		slices.Sort(got)
		slices.Sort(ready)
		if !slices.Equal(got, ready) {
			t.Errorf("USR1 reached %v, want %v", got, ready)
		}
	})
}

func TestUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching user needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	gids, err := nobody.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	gids = append(gids, nobody.Gid)
	slices.Sort(gids)
	want := fmt.Sprintf("nobody\n%s\n%s|nobody|nobody\n", strings.Join(slices.Compact(gids), " "), nobody.HomeDir)

	eachMode(t, func(t *testing.T, m mode) {
		j := startJob(t, m, proc.Options{
			Command: `id -un; id -G | tr ' ' '\n' | sort -u | paste -sd ' '; echo "$HOME|$USER|$LOGNAME"`,
			User:    "nobody",
			Cwd:     "/",
			Env:     []string{"PATH=/usr/bin:/bin", "HOME=/root", "USER=root"},
		})
		out, errOut := readAll(t, j.Stdout()), readAll(t, j.Stderr())
		if got := out(); got != want {
			t.Errorf("stdout %q, want %q (stderr %q)", got, want, errOut())
		}
		if st := awaitExit(t, j); st.Code != 0 {
			t.Errorf("status %+v", st)
		}
	})
}

// TestStartNeedsRoot runs the check as a real wrapper that is not root:
// the test binary itself, re-run as nobody.
func TestStartNeedsRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if code := needRootHelper(); code != 0 {
			t.Fatal("no ErrNeedRoot")
		}
		return
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The build directory is root's alone; nobody needs a copy it can run.
	dir, err := os.MkdirTemp("", "saltpeter-proc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "proc.test")
	copyFile(t, exe, bin)

	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", helperEnv + "=needroot"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("helper: %s", out)
	if err != nil {
		t.Fatalf("helper as nobody: %v", err)
	}
	if !strings.HasPrefix(string(out), "ok uid=65534:") {
		t.Errorf("helper output %q", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

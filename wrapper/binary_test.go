//go:build linux

package wrapper

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// wrapperBin is the real saltpeter-wrapper, built once by TestMain.
var wrapperBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "saltpeter-wrapper-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wrapperBin = filepath.Join(dir, "saltpeter-wrapper")
	build := exec.Command("go", "build", "-o", wrapperBin, "./cmd/saltpeter-wrapper")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build saltpeter-wrapper: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dispatchEnv is what a target plugin would give the wrapper.
func dispatchEnv(core *fakeCore) []string {
	return []string{
		"PATH=/usr/bin:/bin",
		wire.EnvWebSocketURL + "=" + core.url,
		wire.EnvWebSocketURLs + "=" + core.url,
		wire.EnvJobName + "=" + testJob,
		wire.EnvJobInstance + "=" + testInstance,
		wire.EnvMachineID + "=" + testMachine,
		wire.EnvToken + "=" + testToken,
	}
}

var detachedRE = regexp.MustCompile(`^` + regexp.QuoteMeta(wire.DetachedLine) + ` pid=(\d+)\n$`)

// startDetached runs the binary as a target plugin would and returns the
// detached child's pid. The child is killed at cleanup unless it is gone.
func startDetached(t *testing.T, env []string, extra ...*os.File) int {
	t.Helper()
	cmd := exec.Command(wrapperBin)
	cmd.Env = env
	cmd.ExtraFiles = extra
	return runDetaching(t, cmd)
}

// runDetaching runs cmd, the wrapper's first stage, and returns the pid
// its detach line names; the detached child is killed at cleanup unless
// it is gone.
func runDetaching(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("wrapper: %v; stderr %q", err, stderr.String())
	}
	m := detachedRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("stdout = %q, want exactly one detach line", stdout.String())
	}
	pid, _ := strconv.Atoi(m[1])
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		awaitExit(t, pidfd)
		unix.Close(pidfd)
	})
	return pid
}

// awaitExit waits for the process behind pidfd to end; it need not be
// our child.
func awaitExit(t *testing.T, pidfd int) {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 30_000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Errorf("detached wrapper did not exit: %v", err)
		}
		return
	}
}

func TestBinaryVersion(t *testing.T) {
	out, err := exec.Command(wrapperBin, "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != Version+"\n" {
		t.Errorf("-version printed %q, want %q", out, Version+"\n")
	}
}

func TestBinaryBadEnvironment(t *testing.T) {
	core := newFakeCore(t, testSpec())
	for _, tc := range []struct {
		name string
		drop string
		want string
	}{
		{"no token", wire.EnvToken, "SP_TOKEN is not set"},
		{"no instance", wire.EnvJobInstance, "SP_JOB_INSTANCE is not set"},
		{"no machine", wire.EnvMachineID, "SP_MACHINE_ID is not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var env []string
			for _, kv := range dispatchEnv(core) {
				if !strings.HasPrefix(kv, tc.drop+"=") {
					env = append(env, kv)
				}
			}
			cmd := exec.Command(wrapperBin)
			cmd.Env = env
			wantRefused(t, cmd, tc.want)
		})
	}
}

// TestBinaryDetach: the child runs in its own session, has only /dev/null
// (or the log file) on 0-2, none of the parent's other descriptors, and
// dials the core.
func TestBinaryDetach(t *testing.T) {
	for _, tc := range []struct {
		name    string
		logFile bool
	}{{"no log", false}, {"log file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			core := newFakeCore(t, testSpec())
			core.set(func() { core.holdConnect = true })
			env := dispatchEnv(core)
			logPath := filepath.Join(t.TempDir(), "wrapper.log")
			if tc.logFile {
				env = append(env, EnvWrapperLog+"="+logPath)
			}
			// A descriptor the target plugin leaked to the wrapper.
			leakR, leakW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { leakR.Close(); leakW.Close() })
			leak, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", leakR.Fd()))
			if err != nil {
				t.Fatal(err)
			}

			pid := startDetached(t, env, leakR)
			core.await(t, "the detached wrapper's connect", func() bool { return len(core.connects) == 1 })

			ours, err := unix.Getsid(0)
			if err != nil {
				t.Fatal(err)
			}
			// A session leader's session id is its own pid.
			if sid := sessionOf(t, pid); sid != pid || sid == ours {
				t.Errorf("detached wrapper %d is in session %d, want its own (ours is %d)", pid, sid, ours)
			}
			fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			if err != nil {
				t.Fatal(err)
			}
			for _, fd := range fds {
				target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
				want := ""
				switch fd.Name() {
				case "0", "1":
					want = os.DevNull
				case "2":
					want = os.DevNull
					if tc.logFile {
						want = logPath
					}
				}
				if want != "" && target != want {
					t.Errorf("fd %s -> %q, want %q", fd.Name(), target, want)
				}
				if target == leak {
					t.Errorf("fd %s is the parent's leaked pipe %s", fd.Name(), leak)
				}
			}
			environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(environ, []byte(envDetached+"=1\x00")) {
				t.Error("detached wrapper lacks the detach marker")
			}
			if c := core.connects[0]; c.Token != testToken || c.Resume {
				t.Errorf("connect: token ok %v resume %v", c.Token == testToken, c.Resume)
			}
		})
	}
}

// sessionOf reads the session id from /proc/PID/stat (field 6; the comm
// before it may hold spaces, so count from the last ')').
func sessionOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	// state ppid pgrp session
	sid, err := strconv.Atoi(fields[3])
	if err != nil {
		t.Fatalf("stat %q: %v", b, err)
	}
	return sid
}

// TestBinaryEndToEnd: the real binary, detached, runs a real job against
// the fake core, reports it, and exits once complete is acked.
func TestBinaryEndToEnd(t *testing.T) {
	core := newFakeCore(t, shellSpec(`echo hello; printf 'token=%s marker=%s\n' "${SP_TOKEN-unset}" "${SP_WRAPPER_DETACHED-unset}"`))
	logPath := filepath.Join(t.TempDir(), "wrapper.log")
	pid := startDetached(t, append(dispatchEnv(core), EnvWrapperLog+"="+logPath))
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)

	f := core.awaitComplete(t)
	checkComplete(t, f, 0, wire.ReasonExit)
	if got := string(core.output(wire.StreamStdout)); got != "hello\ntoken=unset marker=unset\n" {
		t.Errorf("stdout = %q", got)
	}
	awaitExit(t, pidfd)
	log, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(log, []byte(`"@message":"run complete"`)) {
		t.Errorf("log lacks the end of the run:\n%s", log)
	}
	if bytes.Contains(log, []byte(`"@level":"error"`)) {
		t.Errorf("log has errors:\n%s", log)
	}
	core.mu.Lock()
	session := core.session
	core.mu.Unlock()
	if bytes.Contains(log, []byte(testToken)) || bytes.Contains(log, []byte(session)) {
		t.Errorf("log holds a credential:\n%s", log)
	}
}

// wantRefused runs the wrapper's first stage and wants it to refuse to
// start: exit 2, nothing on stdout, and want in what it says on stderr.
func wantRefused(t *testing.T, cmd *exec.Cmd, want string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 {
		t.Errorf("exit code %d (%v), want 2", code, err)
	}
	if !strings.Contains(stderr.String(), want) || stdout.Len() != 0 {
		t.Errorf("stdout %q stderr %q, want nothing and %q", stdout.String(), stderr.String(), want)
	}
}

// startedByTarget starts the binary the way a target that detaches it
// does (a session of its own, stdin on /dev/null, stdout a pipe, stderr a
// file) with env and reads its detach line. It returns the pid the line
// names, the process it started, which the test reaps as such a target
// does, and kills at cleanup unless it is gone, and a channel closed once
// that process exited.
func startedByTarget(t *testing.T, env []string, setsid bool) (linePID int, cmd *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	return startedByTargetWith(t, env, setsid, nil)
}

// startedByTargetWith is startedByTarget with arguments, and what the
// wrapper reads on standard input, written once it runs (nil: /dev/null).
func startedByTargetWith(t *testing.T, env []string, setsid bool, stdin []byte, args ...string) (linePID int, cmd *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdoutR.Close()
	stderr, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd = exec.Command(wrapperBin, args...)
	cmd.Env = env
	cmd.Dir = "/"
	var stdinW *os.File
	if stdin != nil {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cmd.Stdin, stdinW = r, w
	}
	cmd.Stdout, cmd.Stderr = stdoutW, stderr
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: setsid}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdoutW.Close()
	if stdinW != nil {
		// As a target keeping a spare does: the environment goes in once
		// the wrapper runs, and the pipe closes.
		_, err := stdinW.Write(stdin)
		stdinW.Close()
		if err != nil {
			t.Fatalf("write the environment: %v", err)
		}
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	line, err := bufio.NewReader(stdoutR).ReadString('\n')
	if err != nil {
		b, _ := os.ReadFile(stderr.Name())
		t.Fatalf("no detach line (%v); stderr %q", err, b)
	}
	m := detachedRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("stdout = %q, want the detach line", line)
	}
	linePID, _ = strconv.Atoi(m[1])
	if linePID != cmd.Process.Pid {
		// A copy: it is no child of ours, and is killed at cleanup too.
		pidfd, err := unix.PidfdOpen(linePID, 0)
		if err != nil {
			t.Fatalf("pidfd_open %d: %v", linePID, err)
		}
		t.Cleanup(func() {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			awaitExit(t, pidfd)
			unix.Close(pidfd)
		})
	}
	return linePID, cmd, done
}

// TestBinaryDetachInPlace: a wrapper its target started detached and told
// so runs the job itself, in the process the target started (no copy), in
// that session, with /dev/null on 0 and 1 once its line is out (the
// target reads no more) and the log file or /dev/null on 2, and its job
// sees neither the variable nor the token.
func TestBinaryDetachInPlace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		logFile bool
	}{{"no log", false}, {"log file", true}} {
		t.Run(tc.name, func(t *testing.T) {
			core := newFakeCore(t, shellSpec(`printf 'marker=%s by_target=%s\n' "${SP_WRAPPER_DETACHED-unset}" "${`+wire.EnvDetachedByTarget+`-unset}"`))
			env := append(dispatchEnv(core), wire.EnvDetachedByTarget+"=1")
			logPath := filepath.Join(t.TempDir(), "wrapper.log")
			if tc.logFile {
				env = append(env, EnvWrapperLog+"="+logPath)
			}
			pid, cmd, exited := startedByTarget(t, env, true)
			if pid != cmd.Process.Pid {
				t.Fatalf("the detach line names pid %d, not the process the target started (%d): it re-executed itself", pid, cmd.Process.Pid)
			}
			if sid := sessionOf(t, pid); sid != pid {
				t.Errorf("wrapper %d is in session %d, want its own", pid, sid)
			}
			// The line is out: its descriptors are settled by now.
			for fd, want := range map[int]string{0: os.DevNull, 1: os.DevNull, 2: os.DevNull} {
				if fd == 2 && tc.logFile {
					want = logPath
				}
				if got, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", pid, fd)); err != nil || got != want {
					t.Errorf("fd %d -> %q (%v), want %q", fd, got, err, want)
				}
			}
			f := core.awaitComplete(t)
			checkComplete(t, f, 0, wire.ReasonExit)
			if got := string(core.output(wire.StreamStdout)); got != "marker=unset by_target=unset\n" {
				t.Errorf("stdout = %q: the job got a detach marker", got)
			}
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				t.Fatal("the wrapper did not exit within 30s of its complete")
			}
			if tc.logFile {
				log, err := os.ReadFile(logPath)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Contains(log, []byte(`"@message":"run complete"`)) {
					t.Errorf("log lacks the end of the run:\n%s", log)
				}
			}
		})
	}
}

// TestBinaryDetachByTargetNeedsItsOwnSession: the variable alone, from a
// process that does not lead a session of its own (an ssh session's
// shell leads it), does not make the wrapper run in place: it detaches a
// copy of itself, as without the variable.
func TestBinaryDetachByTargetNeedsItsOwnSession(t *testing.T) {
	core := newFakeCore(t, testSpec())
	core.set(func() { core.holdConnect = true })
	pid, cmd, _ := startedByTarget(t, append(dispatchEnv(core), wire.EnvDetachedByTarget+"=1"), false)
	if pid == cmd.Process.Pid {
		t.Fatalf("the wrapper ran in place (pid %d) in a session it does not lead", pid)
	}
	core.await(t, "the detached copy's connect", func() bool { return len(core.connects) == 1 })
	if sid := sessionOf(t, pid); sid != pid {
		t.Errorf("detached copy %d is in session %d, want its own", pid, sid)
	}
}

// A wrapper its target started on one P keeps GOMAXPROCS and the target's
// word for it from its job.
func TestBinaryNarrowedByTarget(t *testing.T) {
	core := newFakeCore(t, shellSpec(`echo "${GOMAXPROCS-unset} ${`+wire.EnvNarrowedByTarget+`-unset}"`))
	pid := startDetached(t, append(dispatchEnv(core), "GOMAXPROCS=1", wire.EnvNarrowedByTarget+"=1"))
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	checkComplete(t, core.awaitComplete(t), 0, wire.ReasonExit)
	if got := string(core.output(wire.StreamStdout)); got != "unset unset\n" {
		t.Errorf("the job found %q, want neither variable", got)
	}
	awaitExit(t, pidfd)
}

package wrapper

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// envDetached marks the re-executed wrapper: it is the detached one and
// runs the job. It never reaches the job's environment.
const envDetached = "SP_WRAPPER_DETACHED"

// Detached reports whether this process is the detached wrapper.
func Detached() bool { return os.Getenv(envDetached) == "1" }

// DetachedByTarget reports whether this process may detach in place
// (DetachInPlace) rather than re-execute itself (Detach): its environment
// (getenv) says the target started it detached (wire.EnvDetachedByTarget:
// a session of its own, no descriptor beyond 0-2, reaped by the target
// whenever it exits), and it does lead a session of its own. A variable
// set by anyone else (an ssh session's shell leads the session, not the
// wrapper) is ignored, and the wrapper re-executes itself as before.
func DetachedByTarget(getenv func(string) string) bool {
	if getenv(wire.EnvDetachedByTarget) != "1" {
		return false
	}
	sid, err := unix.Getsid(0)
	return err == nil && sid == os.Getpid()
}

// DetachInPlace finishes detaching a wrapper its target started detached
// (DetachedByTarget): standard input and output go to /dev/null,
// standard error to logFile (appended; /dev/null when empty), as Detach
// gives the copy it starts, and descriptors above stderr are marked
// close-on-exec; then announce writes the detach line to what standard
// output was, which is closed after it. Once the target has the line, the
// wrapper holds nothing of the target's: a later write cannot meet a pipe
// the target closed. An error means nothing was announced; one before the
// descriptors moved (the log file cannot be opened) may be reported on
// standard error.
func DetachInPlace(logFile string, announce func(io.Writer) error) error {
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	defer devnull.Close()
	stderr := devnull
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("detach: open %s: %w", EnvWrapperLog, err)
		}
		defer f.Close()
		stderr = f
	}
	if err := closeOnExecAll(); err != nil {
		return fmt.Errorf("detach: %w", err)
	}
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return fmt.Errorf("detach: keep standard output: %w", err)
	}
	out := os.NewFile(uintptr(fd), "target")
	defer out.Close()
	for _, d := range []struct {
		from *os.File
		to   int
	}{{devnull, 0}, {devnull, 1}, {stderr, 2}} {
		if err := dupOnto(int(d.from.Fd()), d.to); err != nil {
			return fmt.Errorf("detach: descriptor %d: %w", d.to, err)
		}
	}
	if err := announce(out); err != nil {
		return fmt.Errorf("detach: announce: %w", err)
	}
	return nil
}

// Detach re-executes the running program with args and env (nil: this
// process's environment) in a new session, its standard input and output
// on /dev/null, its standard error on logFile (appended; /dev/null when
// empty) and no other inherited descriptor, and returns the child's pid.
// The child outlives the caller: a target plugin or an ssh session that
// ends, or a core that crashes, does not take the job with it.
func Detach(args, env []string, logFile string) (int, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("detach: find own executable: %w", err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("detach: %w", err)
	}
	defer devnull.Close()
	stderr := devnull
	if logFile != "" {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return 0, fmt.Errorf("detach: open %s: %w", EnvWrapperLog, err)
		}
		defer f.Close()
		stderr = f
	}
	// Descriptors this process inherited from whoever started it are not
	// close-on-exec; exec.Cmd passes only 0-2, but the kernel would pass
	// those too.
	if err := closeOnExecAll(); err != nil {
		return 0, fmt.Errorf("detach: %w", err)
	}

	cmd := exec.Command(exe, args...)
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(withoutVar(env, envDetached), envDetached+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("detach: start %s: %w", exe, err)
	}
	pid := cmd.Process.Pid
	// Nobody waits for it here: once this process exits, init (or the
	// nearest subreaper) does.
	if err := cmd.Process.Release(); err != nil {
		return 0, fmt.Errorf("detach: release pid %d: %w", pid, err)
	}
	return pid, nil
}

// markListedCloseOnExec marks every descriptor above stderr
// close-on-exec, one at a time, as /proc/self/fd lists them.
func markListedCloseOnExec() error {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("list open descriptors: %w", err)
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		// The directory's own descriptor is among them and may be closed
		// by now; EBADF is fine.
		unix.CloseOnExec(fd)
	}
	return nil
}

func withoutVar(env []string, name string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

package wrapper

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// envDetached marks the re-executed wrapper: it is the detached one and
// runs the job. It never reaches the job's environment.
const envDetached = "SP_WRAPPER_DETACHED"

// Detached reports whether this process is the detached wrapper.
func Detached() bool { return os.Getenv(envDetached) == "1" }

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

// closeOnExecAll marks every descriptor above stderr close-on-exec.
func closeOnExecAll() error {
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

package launch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// DefaultWrapper is the wrapper program WrapperPath finds when the job
// names none.
const DefaultWrapper = "saltpeter-wrapper"

// PassEnv are the variables Environ copies from the plugin's own
// environment by default; the dispatch environment wins over them.
var PassEnv = []string{"PATH", "HOME", "LANG"}

// MaxDetachLine bounds the detach line a target reads (ReadDetachLine).
const MaxDetachLine = 4096

const (
	// maxLine bounds the detach line read.
	maxLine = MaxDetachLine
	// maxStderr bounds the excerpt of the wrapper's stderr in an error.
	maxStderr = 2048
	// lineGrace is how long stdout is still read after the wrapper
	// exited, should a child of it hold the pipe open.
	lineGrace = 2 * time.Second
)

// Command is the wrapper process to start.
type Command struct {
	// Path is the program; Args follow it (for instance, an ssh client
	// and the remote command). Neither may hold a secret.
	Path string
	Args []string
	// Env is the program's whole environment (see Environ).
	Env []string
	// Stdin, when set, is the program's standard input (for instance
	// the dispatch environment for a remote shell); else /dev/null.
	Stdin io.Reader
	// Protocol is the wrapper's: 2 prints wire.DetachedLine once
	// detached, 1 (an older wrapper) is detached here and not waited for.
	Protocol int
}

// Start starts the wrapper as a child of this process. A protocol 2
// wrapper is awaited until it prints the detach line, and its stderr
// excerpt is the error when it does not; a protocol 1 wrapper is started
// in a session of its own and reaped in the background. ctx cancels the
// wait and kills what was started.
func Start(ctx context.Context, log hclog.Logger, c Command) (target.DispatchResult, error) {
	if err := ctx.Err(); err != nil {
		return target.DispatchResult{}, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	closeInheritedOnExec()
	switch c.Protocol {
	case wire.ProtocolV2, 0:
		return startV2(ctx, log, c)
	case wire.ProtocolV1:
		return startV1(log, c)
	}
	return target.DispatchResult{}, fmt.Errorf("unsupported wrapper protocol %d", c.Protocol)
}

// inheritedOnce marks, once, the descriptors this process inherited as
// close-on-exec. Go opens its own files close-on-exec, but it cannot know
// about descriptors its parent leaked into it, and those would reach every
// wrapper, and the job.
var inheritedOnce sync.Once

func closeInheritedOnExec() {
	inheritedOnce.Do(func() {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			return
		}
		for _, e := range ents {
			if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
				syscall.CloseOnExec(fd)
			}
		}
	})
}

// WrapperPath picks the wrapper program: p when set, else DefaultWrapper
// beside the running binary, else on PATH.
func WrapperPath(p string) (string, error) {
	if p != "" {
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(exe), DefaultWrapper)
		if fi, err := os.Stat(beside); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	p, err := exec.LookPath(DefaultWrapper)
	if err != nil {
		return "", fmt.Errorf("no wrapper program: %s is neither beside this binary nor on PATH", DefaultWrapper)
	}
	return p, nil
}

// Environ is a wrapper's whole environment: the variables named by pass
// (PassEnv when none) from the plugin's own environment, then the dispatch
// environment. Nothing else of the plugin's environment leaks.
func Environ(dispatch map[string]string, pass ...string) ([]string, error) {
	if len(pass) == 0 {
		pass = PassEnv
	}
	vars := map[string]string{}
	for _, k := range pass {
		if v, ok := os.LookupEnv(k); ok {
			vars[k] = v
		}
	}
	for k, v := range dispatch {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, fmt.Errorf("invalid dispatch variable %q", k)
		}
		vars[k] = v
	}
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env, nil
}

// startV1 starts a protocol 1 wrapper detached: a session of its own,
// /dev/null for stdio, and nobody waiting for it but a reaper.
func startV1(log hclog.Logger, c Command) (target.DispatchResult, error) {
	cmd := &exec.Cmd{
		Path:        c.Path,
		Args:        append([]string{c.Path}, c.Args...),
		Env:         c.Env,
		Dir:         "/",
		Stdin:       c.Stdin,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if err := cmd.Start(); err != nil {
		return target.DispatchResult{}, fmt.Errorf("start wrapper: %w", err)
	}
	pid := cmd.Process.Pid
	log.Info("started protocol 1 wrapper", "pid", pid)
	go func() {
		err := cmd.Wait()
		log.Debug("protocol 1 wrapper exited", "pid", pid, "status", exitText(err))
	}()
	return target.DispatchResult{Detail: fmt.Sprintf("started protocol 1 wrapper pid=%d", pid)}, nil
}

// startV2 starts a protocol 2 wrapper and reads its detach line.
func startV2(ctx context.Context, log hclog.Logger, c Command) (target.DispatchResult, error) {
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("stdout pipe: %w", err)
	}
	defer stdoutR.Close()
	// Stderr goes to an unlinked file: nothing has to drain it, and a
	// child of the wrapper that keeps it cannot make us wait.
	stderr, err := os.CreateTemp("", "saltpeter-wrapper-stderr-")
	if err != nil {
		stdoutW.Close()
		return target.DispatchResult{}, fmt.Errorf("stderr file: %w", err)
	}
	_ = os.Remove(stderr.Name())
	defer stderr.Close()

	path := c.Path
	cmd := &exec.Cmd{
		Path:   c.Path,
		Args:   append([]string{c.Path}, c.Args...),
		Env:    c.Env,
		Dir:    "/",
		Stdin:  c.Stdin,
		Stdout: stdoutW,
		Stderr: stderr,
		// Its own process group, so that giving up kills whatever it
		// started before it detached.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("start wrapper: %w", err)
	}
	pid := cmd.Process.Pid
	log.Debug("started wrapper, awaiting its detach line", "pid", pid)

	lineCh := make(chan lineResult, 1)
	go func() { lineCh <- readLine(stdoutR) }()
	waitCh := make(chan error, 1)
	go func() { waitCh <- cmd.Wait() }()

	kill := func() {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Process.Kill()
	}

	var (
		line    lineResult
		exitErr error
		exited  bool
	)
	select {
	case line = <-lineCh:
	case exitErr = <-waitCh:
		exited = true
		// Whatever it printed is in the pipe; a child holding the pipe
		// open gets lineGrace.
		_ = stdoutR.SetReadDeadline(time.Now().Add(lineGrace))
		select {
		case line = <-lineCh:
		case <-ctx.Done():
			return target.DispatchResult{}, ctx.Err()
		}
	case <-ctx.Done():
		kill()
		<-waitCh
		log.Warn("gave up starting the wrapper", "pid", pid, "error", ctx.Err())
		return target.DispatchResult{}, ctx.Err()
	}

	if line.err == nil && strings.HasPrefix(line.text, wire.DetachedLine) {
		if !exited {
			// The parent exits right after the line; reap it, but do not
			// hold the caller if it lingers.
			select {
			case <-waitCh:
			case <-ctx.Done():
				go func() { <-waitCh }()
			}
		}
		log.Info("wrapper detached", "pid", pid, "detail", line.text)
		return target.DispatchResult{Detail: line.text}, nil
	}

	if !exited {
		// It printed something else, or closed its stdout, and may still
		// run: a wrong line ends it at once, a closed stdout after
		// lineGrace.
		if line.err == nil {
			kill()
		}
		grace := time.NewTimer(lineGrace)
		select {
		case exitErr = <-waitCh:
		case <-grace.C:
			kill()
			exitErr = <-waitCh
		case <-ctx.Done():
			kill()
			exitErr = <-waitCh
		}
		grace.Stop()
	}
	excerpt := readExcerpt(stderr)
	var why string
	switch {
	case line.err == nil:
		why = fmt.Sprintf("wrapper %s printed %q instead of the detach line", path, line.text)
	case errors.Is(line.err, bufio.ErrBufferFull):
		why = fmt.Sprintf("wrapper %s printed a line longer than %d bytes instead of the detach line", path, maxLine)
	default:
		why = fmt.Sprintf("wrapper %s exited (%s) without detaching", path, exitText(exitErr))
	}
	if excerpt != "" {
		why += "; its stderr: " + excerpt
	}
	log.Error("wrapper did not start", "pid", pid, "error", why)
	return target.DispatchResult{}, errors.New(why)
}

type lineResult struct {
	text string
	err  error
}

// readLine reads the first line of r (see ReadDetachLine).
func readLine(r io.Reader) lineResult {
	text, err := ReadDetachLine(r)
	return lineResult{text: text, err: err}
}

// ReadDetachLine reads the first line a wrapper printed on r (its
// standard output, or a remote session's), without its line ending, as
// Start does: up to MaxDetachLine bytes, and a last line without its
// newline counts. A longer line is an error wrapping bufio.ErrBufferFull;
// nothing at all, io.EOF. The caller checks that the line starts with
// wire.DetachedLine.
func ReadDetachLine(r io.Reader) (string, error) {
	b, err := bufio.NewReaderSize(r, maxLine).ReadSlice('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(b) > 0) {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// readExcerpt returns the start of the wrapper's stderr.
func readExcerpt(f *os.File) string {
	b := make([]byte, maxStderr)
	n, _ := f.ReadAt(b, 0)
	s := strings.TrimSpace(string(b[:n]))
	if n == maxStderr {
		s += " …"
	}
	return s
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

package launch

import (
	"bufio"
	"bytes"
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
	// the dispatch environment for a remote shell, or the read end of a
	// pipe the caller writes to once the wrapper runs); else /dev/null.
	// An *os.File is handed to the program as it is; the caller may close
	// its own copy once Begin returned.
	Stdin io.Reader
	// Protocol is the wrapper's: 2 prints wire.DetachedLine once
	// detached, 1 (an older wrapper) is detached here and not waited for.
	Protocol int
	// Detached starts a protocol 2 wrapper the way its own detaching
	// would leave it: in a session of its own, with no descriptor beyond
	// 0-2, and tells it so with wire.EnvDetachedByTarget, so that it runs
	// the job itself instead of re-executing itself (one program start
	// per dispatch instead of two). It stays this process's child and is
	// reaped in the background whenever it exits, when its job is over;
	// should this process exit first, init reaps it and the job runs on.
	// A wrapper that does not know the variable detaches itself as
	// before, and is reaped once it has. Only for a wrapper that is this
	// process's own child, never one started through ssh or the like,
	// whose session this process does not make. Protocol 1 ignores it.
	Detached bool
	// OneP, with Detached, starts the wrapper on one P: GOMAXPROCS=1 and
	// wire.EnvNarrowedByTarget in its environment, unless Env sets
	// GOMAXPROCS. A wrapper narrows itself otherwise, at a cost the
	// runtime's start does not have. Only for a wrapper of this build
	// (the default one): one that does not know the variable would hand
	// GOMAXPROCS=1 to its job.
	OneP bool
}

// Start starts the wrapper as a child of this process. A protocol 2
// wrapper is awaited until it prints the detach line (Begin, then Await),
// and its stderr excerpt is the error when it does not; a protocol 1
// wrapper is started in a session of its own and reaped in the
// background. ctx cancels the wait and kills what was started.
func Start(ctx context.Context, log hclog.Logger, c Command) (target.DispatchResult, error) {
	if err := ctx.Err(); err != nil {
		return target.DispatchResult{}, err
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	switch c.Protocol {
	case wire.ProtocolV2, 0:
		w, err := Begin(log, c)
		if err != nil {
			return target.DispatchResult{}, err
		}
		return w.Await(ctx, log)
	case wire.ProtocolV1:
		closeInheritedOnExec()
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
		if err := checkVar(k, v); err != nil {
			return nil, err
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

// EnvRecords is the dispatch environment as a wrapper started with
// -env-stdin reads it on its standard input: KEY=VALUE records, each
// ended by a NUL byte, sorted by name. It is how a target hands the
// wrapper its environment, the token with it, in no command line and no
// process environment (ssh's remote session, the local target's spare).
func EnvRecords(dispatch map[string]string) ([]byte, error) {
	keys := make([]string, 0, len(dispatch))
	for k, v := range dispatch {
		if err := checkVar(k, v); err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(dispatch[k])
		b.WriteByte(0)
	}
	return b.Bytes(), nil
}

// checkVar refuses what no environment can hold: an empty name, or one
// with "=" or NUL, and a value with NUL.
func checkVar(k, v string) error {
	if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
		return fmt.Errorf("invalid dispatch variable %q", k)
	}
	return nil
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

// Wrapper is a protocol 2 wrapper Begin started, until Await has read its
// detach line or Drop gave it up. Its process is reaped in the background
// whenever it exits, whatever became of the Wrapper.
type Wrapper struct {
	cmd      *exec.Cmd
	path     string
	detached bool
	stdout   *os.File // the read end of its standard output
	stderr   *os.File // its standard error: a file with no name (stderrFile)
	dropOnce sync.Once

	exited  chan struct{} // closed once it exited and was reaped
	exitErr error         // how it exited, set before exited is closed
}

// Begin starts a protocol 2 wrapper (c.Protocol 2 or 0) as a child of
// this process and returns at once, before it printed anything: Await
// then reads its detach line. In between, the caller may write what the
// wrapper reads on the standard input it gave it (c.Stdin), for instance
// a dispatch environment that was not known when the wrapper started.
// The wrapper runs in a process group of its own (a session, if
// c.Detached), so that Kill ends whatever it started before detaching.
func Begin(log hclog.Logger, c Command) (*Wrapper, error) {
	if c.Protocol != wire.ProtocolV2 && c.Protocol != 0 {
		return nil, fmt.Errorf("wrapper protocol %d prints no detach line to await", c.Protocol)
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	closeInheritedOnExec()
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("stdout pipe: %w", err)
	}
	// Stderr goes to a file with no name: nothing has to drain it, and a
	// child of the wrapper that keeps it cannot make us wait.
	stderr, err := stderrFile()
	if err != nil {
		stdoutR.Close()
		stdoutW.Close()
		return nil, fmt.Errorf("stderr file: %w", err)
	}

	env := c.Env
	// Its own process group, so that giving up kills whatever it started
	// before it detached; for a wrapper detached here, its own session.
	sys := &syscall.SysProcAttr{Setpgid: true}
	if c.Detached {
		env = append(env[:len(env):len(env)], wire.EnvDetachedByTarget+"=1")
		if c.OneP && !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "GOMAXPROCS=") }) {
			env = append(env, "GOMAXPROCS=1", wire.EnvNarrowedByTarget+"=1")
		}
		sys = &syscall.SysProcAttr{Setsid: true}
	}
	cmd := &exec.Cmd{
		Path:        c.Path,
		Args:        append([]string{c.Path}, c.Args...),
		Env:         env,
		Dir:         "/",
		Stdin:       c.Stdin,
		Stdout:      stdoutW,
		Stderr:      stderr,
		SysProcAttr: sys,
	}
	err = cmd.Start()
	stdoutW.Close()
	if err != nil {
		stdoutR.Close()
		stderr.Close()
		return nil, fmt.Errorf("start wrapper: %w", err)
	}
	w := &Wrapper{cmd: cmd, path: c.Path, detached: c.Detached, stdout: stdoutR, stderr: stderr, exited: make(chan struct{})}
	pid := cmd.Process.Pid
	go func() {
		w.exitErr = cmd.Wait()
		close(w.exited)
	}()
	log.Debug("started wrapper, awaiting its detach line", "pid", pid, "detached", c.Detached)
	return w, nil
}

// PID is the wrapper's process id.
func (w *Wrapper) PID() int { return w.cmd.Process.Pid }

// Drop gives the wrapper up without waiting for it: the read end of its
// standard output and its stderr file are closed (a wrapper that prints
// its line later gets EPIPE), and its process is reaped whenever it
// exits. It does not end the wrapper: see Kill. Drop may be called more
// than once, and after Await.
func (w *Wrapper) Drop() {
	w.dropOnce.Do(func() {
		w.stdout.Close()
		w.stderr.Close()
	})
}

// Kill ends the wrapper with SIGKILL, and whatever it started in its
// process group (all of it, before it detached). A wrapper already reaped
// is left alone: its pid may be another process's by now.
func (w *Wrapper) Kill() {
	select {
	case <-w.exited:
		return
	default:
	}
	_ = syscall.Kill(-w.PID(), syscall.SIGKILL)
	_ = w.cmd.Process.Kill()
}

// Await reads the wrapper's detach line and returns it, or an error that
// carries its stderr excerpt when it exits, prints something else or
// closes its standard output without it; ctx cancels the wait and kills
// the wrapper. A wrapper that detached itself exits right after its line
// and is awaited until it did (but not past ctx); one Begin started
// detached runs its job from here, and is reaped in the background. Await
// drops the wrapper (Drop) before it returns.
func (w *Wrapper) Await(ctx context.Context, log hclog.Logger) (target.DispatchResult, error) {
	defer w.Drop()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	pid := w.PID()
	lineCh := make(chan lineResult, 1)
	go func() { lineCh <- readLine(w.stdout) }()

	var (
		line   lineResult
		exited bool
	)
	select {
	case line = <-lineCh:
	case <-w.exited:
		exited = true
		// Whatever it printed is in the pipe; a child holding the pipe
		// open gets lineGrace.
		_ = w.stdout.SetReadDeadline(time.Now().Add(lineGrace))
		select {
		case line = <-lineCh:
		case <-ctx.Done():
			return target.DispatchResult{}, ctx.Err()
		}
	case <-ctx.Done():
		w.Kill()
		<-w.exited
		log.Warn("gave up starting the wrapper", "pid", pid, "error", ctx.Err())
		return target.DispatchResult{}, ctx.Err()
	}

	if line.err == nil && strings.HasPrefix(line.text, wire.DetachedLine) {
		switch {
		case exited:
		case w.detached:
			// It runs its job from here (or, not knowing
			// wire.EnvDetachedByTarget, exits once its copy started);
			// either way it is reaped whenever it exits.
			go func() {
				<-w.exited
				log.Debug("wrapper exited", "pid", pid, "status", exitText(w.exitErr))
			}()
		default:
			// The parent exits right after the line; reap it, but do not
			// hold the caller if it lingers.
			select {
			case <-w.exited:
			case <-ctx.Done():
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
			w.Kill()
		}
		grace := time.NewTimer(lineGrace)
		select {
		case <-w.exited:
		case <-grace.C:
			w.Kill()
			<-w.exited
		case <-ctx.Done():
			w.Kill()
			<-w.exited
		}
		grace.Stop()
	}
	excerpt := readExcerpt(w.stderr)
	var why string
	switch {
	case line.err == nil:
		why = fmt.Sprintf("wrapper %s printed %q instead of the detach line", w.path, line.text)
	case errors.Is(line.err, bufio.ErrBufferFull):
		why = fmt.Sprintf("wrapper %s printed a line longer than %d bytes instead of the detach line", w.path, maxLine)
	default:
		why = fmt.Sprintf("wrapper %s exited (%s) without detaching", w.path, exitText(w.exitErr))
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

// unlinkedTemp is a new file in the temporary directory, already
// unlinked.
func unlinkedTemp() (*os.File, error) {
	f, err := os.CreateTemp("", "saltpeter-wrapper-stderr-")
	if err != nil {
		return nil, err
	}
	_ = os.Remove(f.Name())
	return f, nil
}

package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// Name is the plugin's name.
const Name = "local"

// DefaultWrapper is the wrapper program Dispatch starts when the job names
// none: the one beside the running binary, else the one on PATH.
const DefaultWrapper = "saltpeter-wrapper"

// passEnv are the variables the wrapper inherits from the plugin's own
// environment; the dispatch environment wins over them.
var passEnv = []string{"PATH", "HOME", "LANG"}

const (
	// maxLine bounds the detach line the plugin reads.
	maxLine = 4096
	// maxStderr bounds the excerpt of the wrapper's stderr in an error.
	maxStderr = 2048
	// lineGrace is how long the plugin still reads stdout after the
	// wrapper exited, should a child of it hold the pipe open.
	lineGrace = 2 * time.Second
)

// Target is the local target. It is safe for concurrent use.
type Target struct {
	log hclog.Logger
}

// New returns a local target that logs to log.
func New(log hclog.Logger) *Target {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	return &Target{log: log}
}

var _ target.Target = (*Target)(nil)

// Configure accepts an empty object only.
func (t *Target) Configure(_ context.Context, config []byte) error {
	if err := decodeEmpty(config); err != nil {
		return fmt.Errorf("local target config: %w", err)
	}
	return nil
}

// Resolve returns this machine's hostname.
func (t *Target) Resolve(_ context.Context, req target.ResolveRequest) ([]string, error) {
	if err := decodeEmpty(req.Args); err != nil {
		return nil, fmt.Errorf("job %s: local target block: %w", req.Job, err)
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, fmt.Errorf("local target: hostname: %w", err)
	}
	return []string{host}, nil
}

// decodeEmpty accepts nothing, null or an object without keys.
func decodeEmpty(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("not a JSON object: %w", err)
	}
	if len(m) > 0 {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return fmt.Errorf("unknown setting %s: the local target takes none", strings.Join(keys, ", "))
	}
	return nil
}

// Dispatch starts the wrapper on this machine.
func (t *Target) Dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	res, err := t.dispatch(ctx, req)
	if err != nil {
		return res, fmt.Errorf("dispatch %s to %s: %w", req.RunID, req.Machine, err)
	}
	return res, nil
}

func (t *Target) dispatch(ctx context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	if err := ctx.Err(); err != nil {
		return target.DispatchResult{}, err
	}
	if err := decodeEmpty(req.Args); err != nil {
		return target.DispatchResult{}, fmt.Errorf("local target block: %w", err)
	}
	if host, err := os.Hostname(); err == nil && req.Machine != host {
		return target.DispatchResult{}, fmt.Errorf("the local target runs jobs on %s only, not on %q", host, req.Machine)
	}
	path, err := wrapperPath(req.WrapperPath)
	if err != nil {
		return target.DispatchResult{}, err
	}
	env, err := environ(req.Env)
	if err != nil {
		return target.DispatchResult{}, err
	}
	closeInheritedOnExec()
	log := t.log.With("job", req.Job, "run_id", req.RunID, "machine", req.Machine, "wrapper", path, "protocol", req.Protocol)
	switch req.Protocol {
	case wire.ProtocolV2, 0:
		return t.startV2(ctx, log, path, env)
	case wire.ProtocolV1:
		return t.startV1(log, path, env)
	}
	return target.DispatchResult{}, fmt.Errorf("unsupported wrapper protocol %d", req.Protocol)
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

// wrapperPath picks the wrapper program.
func wrapperPath(p string) (string, error) {
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

// environ is the wrapper's whole environment: PATH, HOME and LANG from
// ours, then the dispatch environment.
func environ(dispatch map[string]string) ([]string, error) {
	vars := map[string]string{}
	for _, k := range passEnv {
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
func (t *Target) startV1(log hclog.Logger, path string, env []string) (target.DispatchResult, error) {
	cmd := &exec.Cmd{
		Path:        path,
		Args:        []string{path},
		Env:         env,
		Dir:         "/",
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
func (t *Target) startV2(ctx context.Context, log hclog.Logger, path string, env []string) (target.DispatchResult, error) {
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

	cmd := &exec.Cmd{
		Path:   path,
		Args:   []string{path},
		Env:    env,
		Dir:    "/",
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

// readLine reads the first line of r, up to maxLine bytes; a last line
// without its newline counts.
func readLine(r io.Reader) lineResult {
	b, err := bufio.NewReaderSize(r, maxLine).ReadSlice('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(b) > 0) {
		return lineResult{err: err}
	}
	return lineResult{text: strings.TrimRight(string(b), "\r\n")}
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

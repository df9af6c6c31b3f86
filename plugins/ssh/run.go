package sshtarget

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/crypto/ssh"

	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// maxNoise bounds the lines a login shell's startup files may print
// before the pgid line (a chatty .bashrc), which are skipped.
const maxNoise = 64

// killTimeout bounds the session that kills a remote command.
const killTimeout = 5 * time.Second

// remote is one start of a remote command in a session.
type remote struct {
	log     hclog.Logger
	conn    *conn
	sess    *ssh.Session
	wrapper string
	token   string
	// want prefixes the line that says the start worked: the wrapper's
	// detach line, or the protocol 1 script's.
	want      string
	protocol1 bool

	pgid atomic.Int64 // of the remote command, once it said
}

type lineResult struct {
	text string
	err  error
}

// errNoPgid is a session whose output did not start as every command of
// ours does.
var errNoPgid = errors.New("did not run our command")

// start runs command with stdin and returns once the line r.want arrived,
// or with an error saying why it did not: the remote stderr and exit
// status. ctx cancels the wait and kills the remote command.
func (r *remote) start(ctx context.Context, command string, stdin []byte) (target.DispatchResult, error) {
	stdout, err := r.sess.StdoutPipe()
	if err != nil {
		return target.DispatchResult{}, fmt.Errorf("ssh session stdout: %w", err)
	}
	stderr := &excerpt{max: maxStderr}
	r.sess.Stderr = stderr
	r.sess.Stdin = bytes.NewReader(stdin)
	if err := r.startSession(ctx, command); err != nil {
		return target.DispatchResult{}, err
	}
	r.log.Debug("started the remote command, awaiting its line")

	lineCh := make(chan lineResult, 1)
	go func() { lineCh <- r.readOutput(stdout) }()
	waitCh := make(chan error, 1)
	go func() { waitCh <- r.sess.Wait() }()

	var (
		line    lineResult
		exitErr error
		exited  bool
	)
	select {
	case line = <-lineCh:
	case exitErr = <-waitCh:
		exited = true
		// Whatever it printed came before its exit status.
		grace := time.NewTimer(lineGrace)
		select {
		case line = <-lineCh:
		case <-grace.C:
			line.err = errors.New("no output")
		case <-ctx.Done():
			grace.Stop()
			return target.DispatchResult{}, ctx.Err()
		}
		grace.Stop()
	case <-ctx.Done():
		r.kill(waitCh)
		r.log.Warn("gave up starting the wrapper", "error", ctx.Err())
		return target.DispatchResult{}, ctx.Err()
	}

	if line.err == nil && strings.HasPrefix(line.text, r.want) {
		if !exited {
			// The wrapper's parent (or the protocol 1 script) exits
			// right after the line; its status is only for the log.
			grace := time.NewTimer(lineGrace)
			select {
			case err := <-waitCh:
				if err != nil {
					r.log.Warn("the line came, then the remote command failed", "status", exitText(err))
				}
			case <-grace.C:
			case <-ctx.Done():
			}
			grace.Stop()
		}
		detail := r.scrub(line.text)
		r.log.Info("wrapper started", "detail", detail)
		return target.DispatchResult{Detail: detail}, nil
	}

	if !exited {
		// It printed something else, or closed its stdout, and may still
		// run: end it.
		exitErr = r.kill(waitCh)
	}
	what := "wrapper " + r.wrapper
	if r.protocol1 {
		what = "protocol 1 wrapper " + r.wrapper
	}
	var why string
	switch {
	case line.err == nil && r.protocol1:
		why = fmt.Sprintf("%s: the launcher printed %q", what, r.scrub(line.text))
	case line.err == nil:
		why = fmt.Sprintf("%s printed %q instead of the detach line", what, r.scrub(line.text))
	case errors.Is(line.err, bufio.ErrBufferFull):
		why = fmt.Sprintf("%s printed a line longer than %d bytes instead of the detach line", what, launch.MaxDetachLine)
	case errors.Is(line.err, errNoPgid):
		why = fmt.Sprintf("%s: the remote shell %v (%s)", what, line.err, exitText(exitErr))
	case r.protocol1:
		why = fmt.Sprintf("%s: the launcher exited (%s) without starting it", what, exitText(exitErr))
	default:
		why = fmt.Sprintf("%s exited (%s) without detaching", what, exitText(exitErr))
	}
	if ex := r.scrub(stderr.String()); ex != "" {
		why += "; its stderr: " + ex
	}
	r.log.Error("wrapper did not start", "error", why)
	if r.lost(exitErr) {
		return target.DispatchResult{}, fmt.Errorf("%w: %s (the connection was lost)", target.ErrUnreachable, why)
	}
	return target.DispatchResult{}, errors.New(why)
}

// readOutput reads the session's standard output: lines the login
// shell's startup files printed (skipped), the pgid line, then the
// wrapper's first line, which it returns. The rest is drained, so that
// the session's window never fills.
func (r *remote) readOutput(stdout io.Reader) lineResult {
	defer func() { _, _ = io.Copy(io.Discard, stdout) }()
	// launch.ReadDetachLine keeps reading from a bufio.Reader this size.
	br := bufio.NewReaderSize(stdout, launch.MaxDetachLine)
	for i := 0; ; i++ {
		text, err := launch.ReadDetachLine(br)
		if errors.Is(err, io.EOF) {
			return lineResult{err: fmt.Errorf("%w: its output ended first", errNoPgid)}
		}
		if err != nil {
			return lineResult{err: err}
		}
		if rest, ok := strings.CutPrefix(text, pgidLine); ok {
			n, err := strconv.Atoi(rest)
			if err != nil || n <= 1 {
				return lineResult{err: fmt.Errorf("%w: it printed %q for the process group", errNoPgid, text)}
			}
			r.pgid.Store(int64(n))
			break
		}
		if i == maxNoise {
			return lineResult{err: fmt.Errorf("%w: it printed more than %d lines first (quieten the login shell's startup files for non-interactive sessions)", errNoPgid, maxNoise)}
		}
	}
	text, err := launch.ReadDetachLine(br)
	return lineResult{text: text, err: err}
}

// startSession runs command in the session; ctx cancels the wait for
// sshd's answer.
func (r *remote) startSession(ctx context.Context, command string) error {
	// Should the command start all the same, its first echo finds the
	// session closed and SIGPIPE ends it.
	stop := context.AfterFunc(ctx, func() { _ = r.sess.Close() })
	err := r.sess.Start(command)
	if !stop() {
		return ctx.Err()
	}
	if err != nil && r.lost(err) {
		return fmt.Errorf("%w: start the remote command: %w", target.ErrUnreachable, err)
	}
	if err != nil {
		return fmt.Errorf("start the remote command: %w", err)
	}
	return nil
}

// lost reports whether err, from the session, means that the connection
// went away under it (no exit status came) rather than that the remote
// end said no.
func (r *remote) lost(err error) bool {
	var missing *ssh.ExitMissingError
	return !r.conn.alive() || errors.As(err, &missing) || errors.Is(err, io.EOF)
}

// kill ends the remote command, which has not exited (waitCh has not
// answered): SIGKILL to its process group, from a second session, which
// ends the wrapper unless it detached into a session of its own. It
// waits a little for the exit status, then closes the session. Before
// the pgid line came, closing the session is all there is to do: the
// command dies of SIGPIPE when it prints it.
func (r *remote) kill(waitCh <-chan error) error {
	if pgid := int(r.pgid.Load()); pgid > 1 {
		if err := r.run(killCommand(pgid)); err != nil {
			r.log.Warn("could not kill the remote command", "pgid", pgid, "error", err)
		}
	}
	grace := time.NewTimer(lineGrace)
	defer grace.Stop()
	var err error
	select {
	case err = <-waitCh:
	case <-grace.C:
		err = errors.New("no exit status after SIGKILL")
	}
	_ = r.sess.Close()
	return err
}

// run runs a short command in a session of its own, within killTimeout.
// It takes no slot of the host's session bound: it is needed most when
// those are full of commands to kill.
func (r *remote) run(command string) error {
	done := make(chan error, 1)
	go func() {
		s, err := r.conn.client.NewSession()
		if err != nil {
			done <- err
			return
		}
		defer s.Close()
		out, err := s.CombinedOutput(command)
		if err != nil && len(out) > 0 {
			err = fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		}
		done <- err
	}()
	timeout := time.NewTimer(killTimeout)
	defer timeout.Stop()
	select {
	case err := <-done:
		return err
	case <-timeout.C:
		return fmt.Errorf("no answer within %s", killTimeout)
	}
}

// scrub takes the token out of what the remote end printed, should a
// wrapper ever echo it.
func (r *remote) scrub(s string) string {
	if len(r.token) < 8 {
		return s
	}
	return strings.ReplaceAll(s, r.token, "[SP_TOKEN]")
}

func exitText(err error) string {
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee) && ee.Signal() != "":
		return "killed by SIG" + ee.Signal()
	case errors.As(err, &ee):
		return fmt.Sprintf("exit status %d", ee.ExitStatus())
	}
	return err.Error()
}

// excerpt keeps the first max bytes written to it and drops the rest.
type excerpt struct {
	mu      sync.Mutex
	b       bytes.Buffer
	max     int
	dropped bool
}

func (e *excerpt) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if room := e.max - e.b.Len(); room < len(p) {
		e.b.Write(p[:max(room, 0)])
		e.dropped = true
	} else {
		e.b.Write(p)
	}
	return len(p), nil
}

func (e *excerpt) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := strings.TrimSpace(e.b.String())
	if e.dropped {
		s += " …"
	}
	return s
}

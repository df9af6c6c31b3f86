package sdktest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// TargetFixture is what TestTarget needs to know about the target under
// test.
type TargetFixture struct {
	// Config is what Configure gets; nil means "{}".
	Config []byte
	// BadConfig, when set, is a config Configure must refuse.
	BadConfig []byte
	// Args is the job's target block for Resolve and Dispatch; nil means
	// "{}".
	Args []byte
	// Machines, when set, is exactly what Resolve must return.
	Machines []string
	// AllowedEnv names the variables the wrapper may receive besides the
	// dispatch environment (and wire.EnvDetachedByTarget=1, which a
	// target that starts the wrapper detached adds); nil allows any.
	AllowedEnv []string
	// StdinDevNull requires a protocol 2 wrapper's standard input to be
	// /dev/null.
	StdinDevNull bool
	// Timeout bounds each call and each wait; 0 means 30s.
	Timeout time.Duration
}

// TestTarget checks a target implementation against the contract of the
// target kind. newTarget returns a fresh, unconfigured target each time it
// is called.
//
// The suite dispatches a stand-in wrapper, a shell script that records its
// environment, command line, process status and open files, so the
// wrapper the target starts must run on this machine and see its files
// (the local target; ssh to localhost). It checks that:
//
//   - Configure accepts fx.Config (and refuses fx.BadConfig);
//   - Resolve returns at least one machine, the same ones each time;
//   - Dispatch of a protocol 2 wrapper hands it every dispatch variable
//     and nothing unexpected, keeps SP_TOKEN off its command line, leaks
//     no file descriptors, and returns the wrapper's detach line only
//     after the wrapper printed it;
//   - a protocol 1 wrapper runs in a session of its own, not tied to the
//     target by a pipe, and Dispatch does not wait for it;
//   - a missing wrapper, one that fails before detaching and one that
//     prints something else than the detach line are errors that say
//     why, without the token;
//   - a cancelled context ends Dispatch and the wrapper it was starting;
//   - concurrent Dispatches each reach their own wrapper.
func TestTarget(t *testing.T, newTarget func(t *testing.T) target.Target, fx TargetFixture) {
	t.Helper()
	if fx.Config == nil {
		fx.Config = []byte("{}")
	}
	if fx.Args == nil {
		fx.Args = []byte("{}")
	}
	if fx.Timeout == 0 {
		fx.Timeout = 30 * time.Second
	}
	tools := lookTools(t)

	tgt := newTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), fx.Timeout)
	defer cancel()
	if err := tgt.Configure(ctx, fx.Config); err != nil {
		t.Fatalf("Configure(%s): %v", fx.Config, err)
	}
	machines, err := tgt.Resolve(ctx, target.ResolveRequest{Job: "sdktest", Args: fx.Args})
	if err != nil {
		t.Fatalf("Resolve(%s): %v", fx.Args, err)
	}
	if len(machines) == 0 {
		t.Fatalf("Resolve(%s) returned no machine", fx.Args)
	}
	machine := machines[0]
	s := &targetSuite{fx: fx, tgt: tgt, machine: machine, tools: tools}

	t.Run("CheckArgs", func(t *testing.T) {
		c, ok := tgt.(target.ArgsChecker)
		if !ok {
			t.Skip("the target does not check its arguments (target.ArgsChecker)")
		}
		err := c.CheckArgs(ctx, fx.Args)
		if errors.Is(err, target.ErrCannotCheck) {
			t.Skip("the plugin's target does not check its arguments (target.ArgsChecker)")
		}
		if err != nil {
			t.Errorf("CheckArgs(%s) of the arguments Resolve took: %v", fx.Args, err)
		}
		if err := c.CheckArgs(ctx, []byte(`{"saltpeter_no_such_setting": 1}`)); err == nil {
			t.Errorf("CheckArgs accepts an unknown setting: say which settings the block takes")
		}
	})

	t.Run("Configure/rejects bad config", func(t *testing.T) {
		if fx.BadConfig == nil {
			t.Skip("the fixture names no bad config")
		}
		ctx := s.ctx(t)
		if err := newTarget(t).Configure(ctx, fx.BadConfig); err == nil {
			t.Errorf("Configure(%s) accepted a config it should refuse", fx.BadConfig)
		}
	})
	t.Run("Resolve", func(t *testing.T) {
		for _, m := range machines {
			if m == "" {
				t.Errorf("Resolve returned an empty machine name in %q", machines)
			}
		}
		if fx.Machines != nil && !reflect.DeepEqual(machines, fx.Machines) {
			t.Errorf("Resolve = %q, want %q", machines, fx.Machines)
		}
		again, err := tgt.Resolve(s.ctx(t), target.ResolveRequest{Job: "sdktest", Args: fx.Args})
		if err != nil {
			t.Fatalf("second Resolve: %v", err)
		}
		if !reflect.DeepEqual(again, machines) {
			t.Errorf("Resolve is not stable: %q, then %q", machines, again)
		}
	})
	t.Run("Dispatch/protocol 2", s.testProtocol2)
	t.Run("Dispatch/protocol 1", s.testProtocol1)
	t.Run("Dispatch/missing wrapper", s.testMissingWrapper)
	t.Run("Dispatch/wrapper fails before detaching", s.testWrapperFails)
	t.Run("Dispatch/wrapper prints another line", s.testWrongLine)
	t.Run("Dispatch/cancelled context", s.testCancel)
	t.Run("Dispatch/concurrent", s.testConcurrent)
}

type targetSuite struct {
	fx      TargetFixture
	tgt     target.Target
	machine string
	tools   tools
}

func (s *targetSuite) ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), s.fx.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// request builds a dispatch request for wrapper with a fresh run id and
// token. The values carry spaces, quotes and shell syntax, so a target
// that passes them through a shell must quote them.
func (s *targetSuite) request(t *testing.T, wrapper string, protocol int) target.DispatchRequest {
	t.Helper()
	run := "run-" + randomHex(t, 6)
	env := map[string]string{
		wire.EnvWebSocketURL:  "wss://core1.example:8443/ws",
		wire.EnvWebSocketURLs: "wss://core1.example:8443/ws wss://core2.example:8443/ws",
		wire.EnvCAFile:        "/etc/saltpeter/private ca.pem",
		wire.EnvJobName:       `sdktest job's "name" $HOME ` + "`id`",
		wire.EnvJobInstance:   run,
		wire.EnvMachineID:     s.machine,
		wire.EnvToken:         "sdktest-token-" + randomHex(t, 16),
	}
	if protocol == wire.ProtocolV1 {
		env[wire.EnvCommand] = `echo 'hello world' | tr a-z A-Z; exit $?`
		env[wire.EnvCwd] = "/"
		env[wire.EnvUser] = "nobody"
		env[wire.EnvTimeout] = "3600"
		env["SDKTEST_JOB_VAR"] = "a job's env value"
	}
	return target.DispatchRequest{
		Job:         "sdktest",
		RunID:       run,
		Machine:     s.machine,
		Args:        s.fx.Args,
		WrapperPath: wrapper,
		Protocol:    protocol,
		Env:         env,
	}
}

func (s *targetSuite) testProtocol2(t *testing.T) {
	w := s.tools.wrapper(t, tailDetach)
	req := s.request(t, w.path, wire.ProtocolV2)
	res, err := s.tgt.Dispatch(s.ctx(t), req)
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	rec, ok := w.record(t, req.RunID)
	if !ok {
		t.Fatalf("Dispatch returned %q, but the wrapper had not finished recording: it returned before the detach line", res.Detail)
	}
	if !strings.HasPrefix(res.Detail, wire.DetachedLine) {
		t.Errorf("Detail = %q, want the wrapper's line, which starts with %q", res.Detail, wire.DetachedLine)
	}
	if want := fmt.Sprintf("pid=%d", rec.pid); !strings.Contains(res.Detail, want) {
		t.Errorf("Detail = %q, want the line of the wrapper it started (%s)", res.Detail, want)
	}
	s.checkEnv(t, req, rec)
	s.checkArgv(t, req, rec, w)
	leaks := rec.extraFDs(w.path)
	if len(leaks) > 0 {
		t.Errorf("the wrapper inherited descriptors beyond 0-2: %v", leaks)
	}
	if out := rec.fds[1]; !strings.HasPrefix(out, "pipe:") && !strings.HasPrefix(out, "socket:") {
		t.Errorf("the wrapper's stdout is %q; the target must read the detach line from a pipe or socket", out)
	}
	if in := rec.fds[0]; s.fx.StdinDevNull && in != os.DevNull {
		t.Errorf("the wrapper's stdin is %q, want %s", in, os.DevNull)
	}
	if strings.Contains(res.Detail, req.Env[wire.EnvToken]) {
		t.Errorf("Detail holds the token: %q", res.Detail)
	}
}

func (s *targetSuite) testProtocol1(t *testing.T) {
	w := s.tools.wrapper(t, tailHang)
	req := s.request(t, w.path, wire.ProtocolV1)
	res, err := s.tgt.Dispatch(s.ctx(t), req)
	if err != nil {
		t.Fatalf("Dispatch of a protocol 1 wrapper (which never detaches by itself) did not return at once: %v", err)
	}
	if strings.Contains(res.Detail, req.Env[wire.EnvToken]) {
		t.Errorf("Detail holds the token: %q", res.Detail)
	}
	rec := w.awaitRecord(t, req.RunID, s.fx.Timeout)
	t.Cleanup(func() { _ = syscall.Kill(rec.pid, syscall.SIGKILL) })
	if !alive(rec.pid) {
		t.Errorf("the protocol 1 wrapper (pid %d) is not running after Dispatch returned", rec.pid)
	}
	if rec.session != rec.pid {
		t.Errorf("the protocol 1 wrapper runs in session %d, want a session of its own (%d)", rec.session, rec.pid)
	}
	for fd := 1; fd <= 2; fd++ {
		if l := rec.fds[fd]; strings.HasPrefix(l, "pipe:") || strings.HasPrefix(l, "socket:") {
			t.Errorf("the protocol 1 wrapper's fd %d is %q: a pipe to the target ties the wrapper to it", fd, l)
		}
	}
	s.checkEnv(t, req, rec)
	s.checkArgv(t, req, rec, w)
	if leaks := rec.extraFDs(w.path); len(leaks) > 0 {
		t.Errorf("the wrapper inherited descriptors beyond 0-2: %v", leaks)
	}
}

func (s *targetSuite) testMissingWrapper(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-wrapper")
	req := s.request(t, missing, wire.ProtocolV2)
	_, err := s.tgt.Dispatch(s.ctx(t), req)
	if err == nil {
		t.Fatalf("Dispatch of %s succeeded", missing)
	}
	if !strings.Contains(err.Error(), missing) {
		t.Errorf("error %q does not name the missing wrapper %s", err, missing)
	}
	s.checkNoToken(t, req, err)
}

func (s *targetSuite) testWrapperFails(t *testing.T) {
	mark := "sdktest-cause-" + randomHex(t, 4)
	w := s.tools.wrapper(t, fmt.Sprintf("echo %s >&2\nexit 3\n", shellQuote("fake wrapper cannot start: "+mark)))
	req := s.request(t, w.path, wire.ProtocolV2)
	_, err := s.tgt.Dispatch(s.ctx(t), req)
	if err == nil {
		t.Fatal("Dispatch of a wrapper that exits 3 without detaching succeeded")
	}
	if !strings.Contains(err.Error(), mark) {
		t.Errorf("error %q does not carry the wrapper's stderr (%s)", err, mark)
	}
	s.checkNoToken(t, req, err)
}

func (s *targetSuite) testWrongLine(t *testing.T) {
	w := s.tools.wrapper(t, "echo 'hello from a wrapper that does not detach'\nexit 0\n")
	req := s.request(t, w.path, wire.ProtocolV2)
	_, err := s.tgt.Dispatch(s.ctx(t), req)
	if err == nil {
		t.Fatal("Dispatch accepted a first line that is not the detach line")
	}
	if !strings.Contains(err.Error(), "hello from a wrapper") {
		t.Errorf("error %q does not show what the wrapper printed", err)
	}
	s.checkNoToken(t, req, err)
}

func (s *targetSuite) testCancel(t *testing.T) {
	w := s.tools.wrapper(t, tailHang)
	req := s.request(t, w.path, wire.ProtocolV2)
	ctx, cancel := context.WithCancel(s.ctx(t))
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := s.tgt.Dispatch(ctx, req)
		done <- err
	}()
	rec := w.awaitRecord(t, req.RunID, s.fx.Timeout)
	t.Cleanup(func() { _ = syscall.Kill(rec.pid, syscall.SIGKILL) })
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Dispatch succeeded although its context was cancelled before the wrapper detached")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Dispatch error %q is not context.Canceled", err)
		}
	case <-time.After(s.fx.Timeout):
		t.Fatalf("Dispatch did not return within %s of its context being cancelled", s.fx.Timeout)
	}
	if !awaitGone(rec.pid, s.fx.Timeout) {
		t.Errorf("the wrapper (pid %d) is still there %s after Dispatch was cancelled (killed and reaped?)", rec.pid, s.fx.Timeout)
	}
}

func (s *targetSuite) testConcurrent(t *testing.T) {
	w := s.tools.wrapper(t, tailDetach)
	const n = 4
	reqs := make([]target.DispatchRequest, n)
	errs := make([]error, n)
	for i := range reqs {
		reqs[i] = s.request(t, w.path, wire.ProtocolV2)
	}
	ctx := s.ctx(t)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { _, errs[i] = s.tgt.Dispatch(ctx, reqs[i]) })
	}
	wg.Wait()
	for i, req := range reqs {
		if errs[i] != nil {
			t.Errorf("Dispatch %s: %v", req.RunID, errs[i])
			continue
		}
		rec, ok := w.record(t, req.RunID)
		if !ok {
			t.Errorf("no record from the wrapper of %s", req.RunID)
			continue
		}
		if got, want := rec.env[wire.EnvToken], req.Env[wire.EnvToken]; got != want {
			t.Errorf("the wrapper of %s got another dispatch's token", req.RunID)
		}
	}
}

// checkEnv checks that the wrapper got every dispatch variable with its
// value, and nothing outside fx.AllowedEnv.
func (s *targetSuite) checkEnv(t *testing.T, req target.DispatchRequest, rec record) {
	t.Helper()
	for k, want := range req.Env {
		got, ok := rec.env[k]
		switch {
		case !ok:
			t.Errorf("the wrapper did not get %s", k)
		case got != want:
			if k == wire.EnvToken {
				t.Errorf("the wrapper got a wrong %s", k)
			} else {
				t.Errorf("the wrapper got %s=%q, want %q", k, got, want)
			}
		}
	}
	for _, k := range rec.dupEnv {
		t.Errorf("the wrapper got %s more than once", k)
	}
	if s.fx.AllowedEnv == nil {
		return
	}
	for k, v := range rec.env {
		if k == wire.EnvDetachedByTarget && v == "1" {
			// What a target that starts the wrapper detached may add
			// (launch.Command.Detached).
			continue
		}
		if _, ok := req.Env[k]; !ok && !slices.Contains(s.fx.AllowedEnv, k) {
			t.Errorf("the wrapper got %s, which is neither in the dispatch environment nor allowed (%v)", k, s.fx.AllowedEnv)
		}
	}
}

// checkArgv checks that the wrapper's command line is the wrapper alone:
// no token, no arguments.
func (s *targetSuite) checkArgv(t *testing.T, req target.DispatchRequest, rec record, w fakeWrapper) {
	t.Helper()
	token := req.Env[wire.EnvToken]
	for _, a := range rec.argv {
		if strings.Contains(a, token) {
			t.Errorf("SP_TOKEN is on the wrapper's command line")
			break
		}
	}
	// The kernel runs "#!/bin/sh" scripts as "/bin/sh <script> <args>".
	if i := slices.Index(rec.argv, w.path); i < 0 || len(rec.argv) != i+1 {
		t.Errorf("the wrapper's command line is %q, want %s with no arguments", rec.argv, w.path)
	}
}

func (s *targetSuite) checkNoToken(t *testing.T, req target.DispatchRequest, err error) {
	t.Helper()
	if strings.Contains(err.Error(), req.Env[wire.EnvToken]) {
		t.Errorf("the error holds the token: %q", err)
	}
}

// Tails of the fake wrapper, after it has recorded itself.
var (
	// tailDetach prints the detach line and exits, as a v2 wrapper's
	// parent process does once its child has detached.
	tailDetach = "echo " + shellQuote(wire.DetachedLine) + " \"pid=$$\"\nexit 0\n"
	// tailHang never says anything and runs until killed.
	tailHang = "exec {{sleep}} 3600\n"
)

// tools are the absolute paths of the commands the fake wrapper runs: it
// gets no PATH from the dispatch environment.
type tools struct{ cp, ls, sleep string }

func lookTools(t *testing.T) tools {
	t.Helper()
	var tl tools
	for name, p := range map[string]*string{"cp": &tl.cp, "ls": &tl.ls, "sleep": &tl.sleep} {
		path, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("the fake wrapper needs %s: %v", name, err)
		}
		if path, err = filepath.Abs(path); err != nil {
			t.Fatal(err)
		}
		*p = path
	}
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Fatalf("the fake wrapper needs /bin/sh: %v", err)
	}
	return tl
}

// fakeWrapper is a stand-in wrapper program and the folder it records to.
type fakeWrapper struct {
	path string
	dir  string
}

// wrapper writes a fake wrapper that records itself under its run id,
// then runs tail.
func (tl tools) wrapper(t *testing.T, tail string) fakeWrapper {
	t.Helper()
	dir := t.TempDir()
	w := fakeWrapper{path: filepath.Join(dir, "fake-wrapper"), dir: filepath.Join(dir, "records")}
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := strings.NewReplacer("{{cp}}", shellQuote(tl.cp), "{{ls}}", shellQuote(tl.ls), "{{sleep}}", shellQuote(tl.sleep), "{{dir}}", shellQuote(w.dir))
	script := r.Replace(`#!/bin/sh
# A stand-in Saltpeter wrapper written by sdktest: it records how it was
# started, then plays its part.
rec={{dir}}/"${SP_JOB_INSTANCE:-none}"
{{cp}} /proc/$$/environ "$rec.environ"
{{cp}} /proc/$$/cmdline "$rec.cmdline"
{{cp}} /proc/$$/stat "$rec.stat"
# A subshell, so that the redirection is not among the fds listed.
( exec {{ls}} -l /proc/$$/fd ) > "$rec.fds"
: > "$rec.done"
` + tail)
	if err := os.WriteFile(w.path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}

// record is what a fake wrapper recorded about itself.
type record struct {
	env     map[string]string
	dupEnv  []string
	argv    []string
	pid     int
	session int
	fds     map[int]string
}

// extraFDs lists open descriptors beyond 0-2 other than the shell's own
// handle on its script.
func (r record) extraFDs(script string) []string {
	var extra []string
	for fd, link := range r.fds {
		if fd > 2 && link != script {
			extra = append(extra, fmt.Sprintf("%d -> %s", fd, link))
		}
	}
	slices.Sort(extra)
	return extra
}

// record reads the wrapper's record of run; ok is false when it is not
// complete.
func (w fakeWrapper) record(t *testing.T, run string) (record, bool) {
	t.Helper()
	base := filepath.Join(w.dir, run)
	if _, err := os.Stat(base + ".done"); err != nil {
		return record{}, false
	}
	read := func(ext string) string {
		b, err := os.ReadFile(base + ext)
		if err != nil {
			t.Fatalf("wrapper record: %v", err)
		}
		return string(b)
	}
	r := record{env: map[string]string{}, fds: map[int]string{}}
	for _, kv := range strings.Split(read(".environ"), "\x00") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := r.env[k]; dup {
			r.dupEnv = append(r.dupEnv, k)
		}
		r.env[k] = v
	}
	r.argv = strings.Split(strings.TrimSuffix(read(".cmdline"), "\x00"), "\x00")

	// pid (comm) state ppid pgrp session ...
	stat := read(".stat")
	pid, _, _ := strings.Cut(stat, " ")
	fields := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	var err error
	if r.pid, err = strconv.Atoi(pid); err != nil || len(fields) < 4 {
		t.Fatalf("wrapper record: bad stat %q", stat)
	}
	if r.session, err = strconv.Atoi(fields[3]); err != nil {
		t.Fatalf("wrapper record: bad stat %q", stat)
	}

	// ls -l lines: "lr-x------ 1 u g 64 date 0 -> /dev/null".
	for _, line := range strings.Split(read(".fds"), "\n") {
		left, link, ok := strings.Cut(line, " -> ")
		if !ok {
			continue
		}
		f := strings.Fields(left)
		fd, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			t.Fatalf("wrapper record: bad fd line %q", line)
		}
		r.fds[fd] = link
	}
	for fd := 0; fd <= 2; fd++ {
		if _, ok := r.fds[fd]; !ok {
			t.Errorf("the wrapper was started without fd %d", fd)
		}
	}
	return r, true
}

// awaitRecord waits up to timeout for the wrapper of run to record itself.
func (w fakeWrapper) awaitRecord(t *testing.T, run string, timeout time.Duration) record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if r, ok := w.record(t, run); ok {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("the wrapper of %s did not start within %s", run, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited (a zombie
// has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// awaitGone waits up to timeout for pid to leave the process table, which
// needs its parent to reap it.
func awaitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); errors.Is(err, os.ErrNotExist) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

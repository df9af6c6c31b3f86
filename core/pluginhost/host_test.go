package pluginhost

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// logSink collects a logger's output and lets a test await a line.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLogSink() *logSink { return &logSink{changed: make(chan struct{})} }

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	close(s.changed)
	s.changed = make(chan struct{})
	return len(p), nil
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// await waits up to 10 s for a logged line holding every one of parts.
func (s *logSink) await(t *testing.T, parts ...string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		text, changed := s.buf.String(), s.changed
		s.mu.Unlock()
	lines:
		for _, line := range strings.Split(text, "\n") {
			for _, p := range parts {
				if !strings.Contains(line, p) {
					continue lines
				}
			}
			return line
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no log line with %q within 10s; the log:\n%s", parts, text)
		}
	}
}

// newHost returns a host whose plugins are this test binary.
func newHost(t *testing.T, plugins ...config.Plugin) (*Host, *logSink) {
	t.Helper()
	sink := newLogSink()
	h, err := New(Config{
		Logger:  hclog.New(&hclog.LoggerOptions{Name: "host", Level: hclog.Trace, Output: sink}),
		Plugins: plugins,
		Env:     []string{envPlugin + "=1"},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return h, sink
}

// fakePlugin is a plugin block for the fake third-party target, served by
// this test binary given as its path.
func fakePlugin(t *testing.T, name, conf string) config.Plugin {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return config.Plugin{Kind: "target", Name: name, Path: exe, Config: []byte(conf)}
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func hostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func mustPID(t *testing.T, h *Host, name string) int {
	t.Helper()
	pid, ok := h.PID("target", name)
	if !ok {
		t.Fatalf("plugin %s is not running", name)
	}
	return pid
}

func launches(h *Host, name string) int {
	h.mu.Lock()
	m := h.plugins[key{"target", name}]
	h.mu.Unlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.launches
}

// detachingWrapper writes a wrapper that prints its detach line and exits.
func detachingWrapper(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wrapper")
	script := "#!/bin/sh\necho '" + wire.DetachedLine + "' \"pid=$$\"\n"
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func dispatchRequest(t *testing.T, wrapper string) target.DispatchRequest {
	t.Helper()
	return target.DispatchRequest{
		Job: "j", RunID: "r1", Machine: hostname(t), Args: []byte("{}"),
		WrapperPath: wrapper, Protocol: wire.ProtocolV2,
		Env: map[string]string{wire.EnvJobName: "j", wire.EnvJobInstance: "r1", wire.EnvToken: "t0ken"},
	}
}

// The built-in local target, as a real plugin subprocess, passes the
// conformance suite.
func TestLocalConformanceAsSubprocess(t *testing.T) {
	sdktest.TestTarget(t, func(t *testing.T) target.Target {
		h, _ := newHost(t)
		tgt, err := h.Target(ctx(t), "local")
		if err != nil {
			t.Fatalf("Target(local): %v", err)
		}
		return tgt
	}, sdktest.TargetFixture{
		BadConfig:    []byte(`{"port":22}`),
		Machines:     []string{hostname(t)},
		AllowedEnv:   []string{"PATH", "HOME", "LANG"},
		StdinDevNull: true,
	})
}

func TestLaunchResolveDispatchAndPluginLogs(t *testing.T) {
	h, sink := newHost(t)
	tgt, err := h.Target(ctx(t), "local")
	if err != nil {
		t.Fatalf("Target: %v", err)
	}
	pid := mustPID(t, h, "local")
	if pid == os.Getpid() || exited(pid) {
		t.Fatalf("plugin pid %d is not a running subprocess", pid)
	}
	machines, err := tgt.Resolve(ctx(t), target.ResolveRequest{Job: "j", Args: []byte("{}")})
	if err != nil || len(machines) != 1 || machines[0] != hostname(t) {
		t.Fatalf("Resolve = %q, %v; want [%s]", machines, err, hostname(t))
	}
	res, err := tgt.Dispatch(ctx(t), dispatchRequest(t, detachingWrapper(t)))
	if err != nil {
		t.Fatalf("Dispatch: %v", err)
	}
	if !strings.HasPrefix(res.Detail, wire.DetachedLine+" pid=") {
		t.Errorf("Detail = %q", res.Detail)
	}
	// The plugin logged this through its hclog logger, in its process;
	// it must come out of the host's logger, under the plugin's name.
	line := sink.await(t, "wrapper detached: ", "run_id=r1")
	if !strings.Contains(line, "host.plugin.target.local") || !strings.Contains(line, "[INFO]") {
		t.Errorf("plugin log line not under host.plugin.target.local at INFO: %s", line)
	}
	if strings.Contains(sink.String(), "t0ken") {
		t.Error("the token reached the log")
	}
}

func TestRestartAfterPluginKilled(t *testing.T) {
	h, sink := newHost(t)
	tgt, err := h.Target(ctx(t), "local")
	if err != nil {
		t.Fatalf("Target: %v", err)
	}

	// A plugin known to be dead is started again by the next call, which
	// does not fail first.
	dead := mustPID(t, h, "local")
	if err := syscall.Kill(dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, running := h.PID("target", "local"); running; _, running = h.PID("target", "local") {
		if time.Now().After(deadline) {
			t.Fatal("the host did not notice its plugin died within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := tgt.Resolve(ctx(t), target.ResolveRequest{Job: "j", Args: []byte("{}")}); err != nil {
		t.Fatalf("Resolve after the plugin died: %v", err)
	}
	if strings.Contains(sink.String(), "plugin died during a call") {
		t.Error("the call went to the dead plugin first")
	}

	// A plugin killed just now: the call may meet it dying, and is retried.
	first := mustPID(t, h, "local")
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	machines, err := tgt.Resolve(ctx(t), target.ResolveRequest{Job: "j", Args: []byte("{}")})
	if err != nil {
		t.Fatalf("Resolve after the plugin was killed: %v", err)
	}
	if len(machines) != 1 {
		t.Errorf("Resolve = %q", machines)
	}
	second := mustPID(t, h, "local")
	if second == first {
		t.Errorf("the plugin still has pid %d after it was killed", first)
	}
	if n := launches(h, "local"); n != 3 {
		t.Errorf("%d launches, want 3", n)
	}
	awaitGone(t, dead)
	awaitGone(t, first)
	sink.await(t, "host.plugin.target.local", "plugin ready", "pid="+strconv.Itoa(second))
}

func TestRetryWhenPluginDiesMidCall(t *testing.T) {
	h, sink := newHost(t, fakePlugin(t, "fake", `{"machines":["m1"]}`))
	tgt, err := h.Target(ctx(t), "fake")
	if err != nil {
		t.Fatalf("Target: %v", err)
	}
	first := mustPID(t, h, "fake")
	crash := filepath.Join(t.TempDir(), "crash-once")
	if err := os.WriteFile(crash, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := tgt.Dispatch(ctx(t), target.DispatchRequest{RunID: "r9", Args: []byte(`{"crash_once":"` + crash + `"}`)})
	if err != nil {
		t.Fatalf("Dispatch was not retried on a new plugin: %v", err)
	}
	if _, err := os.Stat(crash); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("the plugin never crashed: the test proves nothing")
	}
	second := mustPID(t, h, "fake")
	if want := fmt.Sprintf("fake dispatched r9 pid=%d", second); res.Detail != want || second == first {
		t.Errorf("Detail = %q, want %q from a new process (first was %d)", res.Detail, want, first)
	}
	sink.await(t, "plugin died during a call")
	sink.await(t, "host.plugin.target.fake", "crashing as asked")
}

func TestErrors(t *testing.T) {
	h, _ := newHost(t,
		fakePlugin(t, "failing", `{"machines":["m1"],"fail":"m1: connection refused by the fake"}`),
		fakePlugin(t, "misconfigured", `{"machines":[]}`),
	)
	t.Run("plugin error keeps its message", func(t *testing.T) {
		tgt, err := h.Target(ctx(t), "failing")
		if err != nil {
			t.Fatalf("Target: %v", err)
		}
		_, err = tgt.Dispatch(ctx(t), target.DispatchRequest{RunID: "r"})
		if err == nil || err.Error() != "m1: connection refused by the fake" {
			t.Fatalf("Dispatch error = %v", err)
		}
		if n := launches(h, "failing"); n != 1 {
			t.Errorf("a plugin's own error restarted it: %d launches", n)
		}
	})
	t.Run("Configure refused", func(t *testing.T) {
		_, err := h.Target(ctx(t), "misconfigured")
		if err == nil || !strings.Contains(err.Error(), "machines: at least one is required") {
			t.Fatalf("Target = %v, want the plugin's config error", err)
		}
		if _, ok := h.PID("target", "misconfigured"); ok {
			t.Error("a plugin that refused its config is left running")
		}
	})
	t.Run("unknown plugin", func(t *testing.T) {
		_, err := h.Target(ctx(t), "nope")
		if err == nil || !strings.Contains(err.Error(), `no target plugin "nope"`) {
			t.Fatalf("Target(nope) = %v", err)
		}
	})
	t.Run("bad blocks", func(t *testing.T) {
		tests := []struct {
			plugins []config.Plugin
			want    string
		}{
			{[]config.Plugin{{Kind: "target", Name: "custom"}}, "has no path and is not built in"},
			{[]config.Plugin{{Kind: "target", Name: "local"}, {Kind: "target", Name: "local"}}, "declared twice"},
		}
		for _, tt := range tests {
			_, err := New(Config{Plugins: tt.plugins})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New(%+v) = %v, want %q", tt.plugins, err, tt.want)
			}
		}
	})
	t.Run("plugin that cannot start", func(t *testing.T) {
		h, _ := newHost(t, config.Plugin{Kind: "target", Name: "ghost", Path: "/nonexistent/saltpeter-ghost"})
		_, err := h.Target(ctx(t), "ghost")
		if err == nil || !strings.Contains(err.Error(), "/nonexistent/saltpeter-ghost") {
			t.Fatalf("Target(ghost) = %v", err)
		}
	})
}

func TestCloseLeavesNoProcess(t *testing.T) {
	h, _ := newHost(t, fakePlugin(t, "fake", `{"machines":["m1"]}`))
	var pids []int
	for _, name := range []string{"local", "fake"} {
		if _, err := h.Target(ctx(t), name); err != nil {
			t.Fatalf("Target(%s): %v", name, err)
		}
		pids = append(pids, mustPID(t, h, name))
	}
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("plugin process %d is still there after Close", pid)
		}
	}
	if _, err := h.Target(ctx(t), "local"); err == nil {
		t.Error("Target after Close started a plugin")
	}
}

func TestConcurrentUse(t *testing.T) {
	h, _ := newHost(t)
	resolveAll := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() {
				tgt, err := h.Target(ctx(t), "local")
				if err == nil {
					_, err = tgt.Resolve(ctx(t), target.ResolveRequest{Args: []byte("{}")})
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
	}
	resolveAll()
	if n := launches(h, "local"); n != 1 {
		t.Errorf("8 concurrent first uses launched %d plugins, want 1", n)
	}
	if err := syscall.Kill(mustPID(t, h, "local"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	resolveAll()
	if n := launches(h, "local"); n != 2 {
		t.Errorf("8 concurrent uses of a killed plugin: %d launches in all, want 2", n)
	}
}

// A plugin whose host is killed outright exits: through Pdeathsig, and
// through its own watch when the host set none.
func TestPluginExitsWhenHostDies(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  []string
	}{
		{"Pdeathsig", nil},
		{"plugin's own watch", []string{envNoPdeathsig + "=1"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			exe, err := os.Executable()
			if err != nil {
				t.Fatal(err)
			}
			host := exec.Command(exe)
			host.Env = append(append(os.Environ(), envHost+"=1"), tt.env...)
			var stderr bytes.Buffer
			host.Stderr = &stderr
			if _, err := host.StdinPipe(); err != nil { // held open: the host waits on it
				t.Fatal(err)
			}
			stdout, err := host.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := host.Start(); err != nil {
				t.Fatal(err)
			}
			reaped := false
			t.Cleanup(func() {
				if !reaped {
					_ = host.Process.Kill()
					_ = host.Wait()
				}
			})

			lines := make(chan string, 1)
			go func() {
				line, _ := bufio.NewReader(stdout).ReadString('\n')
				lines <- line
			}()
			var line string
			select {
			case line = <-lines:
			case <-time.After(60 * time.Second):
				t.Fatal("the host printed no plugin pid within 60s")
			}
			pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "pid=")))
			if err != nil {
				_ = host.Process.Kill()
				_ = host.Wait()
				reaped = true
				t.Fatalf("host said %q: %v\n%s", line, err, stderr.String())
			}
			if exited(pid) {
				t.Fatalf("plugin %d is not running while its host is", pid)
			}
			if err := host.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = host.Wait()
			reaped = true
			t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
			awaitGone(t, pid)
		})
	}
}

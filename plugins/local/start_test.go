package local_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/saltpeter/saltpeter/plugins/local"
	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// wrapperBuild is the real saltpeter-wrapper, built once.
var wrapperBuild struct {
	once sync.Once
	bin  []byte
	err  error
}

// buildWrapper puts a copy of the real saltpeter-wrapper in a folder of
// t's own, and returns its path.
func buildWrapper(t *testing.T) string {
	t.Helper()
	wrapperBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "saltpeter-local-test-")
		if err != nil {
			wrapperBuild.err = err
			return
		}
		defer os.RemoveAll(dir)
		bin := filepath.Join(dir, "saltpeter-wrapper")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/saltpeter/saltpeter/wrapper/cmd/saltpeter-wrapper").CombinedOutput(); err != nil {
			wrapperBuild.err = fmt.Errorf("build saltpeter-wrapper: %v\n%s", err, out)
			return
		}
		wrapperBuild.bin, wrapperBuild.err = os.ReadFile(bin)
	})
	if wrapperBuild.err != nil {
		t.Fatal(wrapperBuild.err)
	}
	bin := filepath.Join(t.TempDir(), launch.DefaultWrapper)
	if err := os.WriteFile(bin, wrapperBuild.bin, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// procStat reads state, ppid and session of pid from /proc/PID/stat.
func procStat(pid int) (state string, ppid, sid int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ = strconv.Atoi(f[1])
	sid, _ = strconv.Atoi(f[3])
	return f[0], ppid, sid, nil
}

// TestDispatchRunsTheWrapperInPlace: the real wrapper, started by
// Dispatch, detaches in place: the pid its line names is the process the
// plugin started (a child of this process, which hosts the plugin), in a
// session of its own; and the plugin reaps it once it exits, leaving no
// zombie.
func TestDispatchRunsTheWrapperInPlace(t *testing.T) {
	bin := buildWrapper(t)
	core := newCoreStub(t)
	req := core.request(t, "run-inplace")
	req.WrapperPath = bin
	pid := dispatched(t, newLocal(t), req)
	core.connectOf(t, "run-inplace")
	state, ppid, sid, err := procStat(pid)
	if err != nil {
		t.Fatalf("the wrapper of the detach line (pid %d): %v", pid, err)
	}
	if ppid != os.Getpid() {
		t.Errorf("the wrapper (pid %d, state %s) is a child of %d, not of the plugin (%d): it detached a copy of itself", pid, state, ppid, os.Getpid())
	}
	if sid != pid {
		t.Errorf("the wrapper (pid %d) is in session %d, want its own", pid, sid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	awaitGone(t, pid, "the killed wrapper (did the plugin reap it?)")
}

// coreStub accepts wrapper connections and records their connect frames;
// it never answers, so a wrapper waits in its handshake until killed.
type coreStub struct {
	url      string
	mu       sync.Mutex
	connects []wire.Frame
	changed  chan struct{}
}

func newCoreStub(t *testing.T) *coreStub {
	t.Helper()
	c := &coreStub{changed: make(chan struct{})}
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		_, data, err := ws.ReadMessage()
		if err != nil {
			return
		}
		f, err := wire.Decode(data)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.connects = append(c.connects, f)
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
		_, _, _ = ws.ReadMessage() // until the wrapper goes
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	c.url = "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	return c
}

// connectOf awaits the connect frame of run.
func (c *coreStub) connectOf(t *testing.T, run string) wire.Frame {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		c.mu.Lock()
		for _, f := range c.connects {
			if f.JobInstance == run {
				c.mu.Unlock()
				return f
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("no connect from the wrapper of %s within 30s", run)
		}
	}
}

// request is a dispatch of the default wrapper for run.
func (c *coreStub) request(t *testing.T, run string) target.DispatchRequest {
	t.Helper()
	return target.DispatchRequest{Job: "spare", RunID: run, Machine: mustHost(t), Args: []byte("{}"),
		Protocol: wire.ProtocolV2, Env: map[string]string{
			wire.EnvWebSocketURL: c.url, wire.EnvWebSocketURLs: c.url, wire.EnvJobName: "spare",
			wire.EnvJobInstance: run, wire.EnvMachineID: mustHost(t), wire.EnvToken: "tok-" + run,
		}}
}

// defaultWrapper builds the real wrapper where the plugin finds the
// default one (on PATH), and returns its path.
func defaultWrapper(t *testing.T) string {
	t.Helper()
	bin := buildWrapper(t) // named launch.DefaultWrapper
	t.Setenv("PATH", filepath.Dir(bin)+string(os.PathListSeparator)+os.Getenv("PATH"))
	if p, err := launch.WrapperPath(""); err != nil || p != bin {
		t.Fatalf("the default wrapper is %q (%v), want %s", p, err, bin)
	}
	return bin
}

// dispatched dispatches req and returns the pid its detach line names;
// the wrapper is killed at cleanup.
func dispatched(t *testing.T, tgt *local.Target, req target.DispatchRequest) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := tgt.Dispatch(ctx, req)
	if err != nil {
		t.Fatalf("Dispatch %s: %v", req.RunID, err)
	}
	m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(res.Detail)
	if m == nil {
		t.Fatalf("Detail %q names no pid", res.Detail)
	}
	pid, _ := strconv.Atoi(m[1])
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	return pid
}

// awaitSpare returns the pid of the spare wrapper the plugin started
// after a dispatch of the default wrapper.
func awaitSpare(t *testing.T, tgt *local.Target) int {
	t.Helper()
	pid := tgt.SparePID()
	if pid == 0 {
		t.Fatal("no spare wrapper after a dispatch of the default wrapper")
	}
	return pid
}

// awaitGone waits for pid to have exited and been reaped.
func awaitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		state, _, _, err := procStat(pid)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) is still there, state %s, after 30s", what, pid, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDispatchUsesASpare: after a dispatch of the default wrapper, the
// plugin keeps a spare, started ahead; the next dispatch is that process,
// which got its dispatch environment (it connects with the token of its
// run), on a pipe: the token is in no process environment.
func TestDispatchUsesASpare(t *testing.T) {
	defaultWrapper(t)
	core := newCoreStub(t)
	tgt := newLocal(t)
	t.Cleanup(tgt.DropSpare)

	first := dispatched(t, tgt, core.request(t, "run-1"))
	core.connectOf(t, "run-1")
	spare := awaitSpare(t, tgt)
	if spare == first {
		t.Fatalf("the spare is the wrapper of run-1 (pid %d)", first)
	}
	if _, ppid, sid, err := procStat(spare); err != nil || ppid != os.Getpid() || sid != spare {
		t.Errorf("spare %d: parent %d, session %d (%v); want a child of the plugin (%d) in a session of its own", spare, ppid, sid, err, os.Getpid())
	}

	second := dispatched(t, tgt, core.request(t, "run-2"))
	if second != spare {
		t.Fatalf("run-2's wrapper is pid %d, not the spare (%d)", second, spare)
	}
	if f := core.connectOf(t, "run-2"); f.Token != "tok-run-2" {
		t.Errorf("the spare connected for run-2 with another token")
	}
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", second))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(environ, []byte("tok-run-2")) {
		t.Error("the token is in the spare's process environment")
	}
	if !bytes.Contains(environ, []byte(wire.EnvWebSocketURL+"="+core.url+"\x00")) {
		t.Error("the spare's process environment does not name its core's URL")
	}
}

// TestSpareWaitsForAPause: the next spare is started once dispatching has
// paused, not beside the runs just dispatched: dispatches that come
// before start their wrappers afresh and move the spare's start back.
func TestSpareWaitsForAPause(t *testing.T) {
	defaultWrapper(t)
	core := newCoreStub(t)
	tgt := newLocal(t)
	const quiet = time.Second
	tgt.SetSpareQuiet(quiet)
	t.Cleanup(tgt.DropSpare)

	first := dispatched(t, tgt, core.request(t, "run-1"))
	if !tgt.SparePending() {
		t.Fatal("no spare waits for dispatching to pause after run-1's dispatch (started at once, or never)")
	}
	t0 := time.Now()
	second := dispatched(t, tgt, core.request(t, "run-2"))
	if !tgt.SparePending() {
		t.Fatal("the spare was started before dispatching paused")
	}
	if second == first {
		t.Fatalf("run-2's wrapper is run-1's (pid %d)", first)
	}
	if f := core.connectOf(t, "run-2"); f.Token != "tok-run-2" {
		t.Errorf("run-2's wrapper connected with another token")
	}
	spare := awaitSpare(t, tgt)
	if waited := time.Since(t0); waited < quiet {
		t.Errorf("the spare was there %v after the last dispatch began; want at least %v", waited, quiet)
	}
	if spare == first || spare == second {
		t.Fatalf("the spare is a dispatched wrapper (pid %d)", spare)
	}
	third := dispatched(t, tgt, core.request(t, "run-3"))
	if third != spare {
		t.Fatalf("run-3's wrapper is pid %d, not the spare (%d)", third, spare)
	}
	core.connectOf(t, "run-3")
}

// TestConcurrentDispatchesKeepOneSpare: dispatches at once, one of them
// taking the spare and the others starting their wrappers afresh, each
// get a wrapper of their own, and one spare is kept once they are done.
func TestConcurrentDispatchesKeepOneSpare(t *testing.T) {
	defaultWrapper(t)
	core := newCoreStub(t)
	tgt := newLocal(t)
	tgt.SetSpareQuiet(10 * time.Millisecond)
	t.Cleanup(tgt.DropSpare)
	dispatched(t, tgt, core.request(t, "run-0"))
	awaitSpare(t, tgt)

	const n = 8
	reqs := make([]target.DispatchRequest, n)
	for i := range reqs {
		reqs[i] = core.request(t, fmt.Sprintf("run-%d", i+1))
	}
	details := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			res, err := tgt.Dispatch(ctx, reqs[i])
			details[i], errs[i] = res.Detail, err
		})
	}
	wg.Wait()
	pids := map[int]string{}
	for i, req := range reqs {
		if errs[i] != nil {
			t.Fatalf("Dispatch %s: %v", req.RunID, errs[i])
		}
		m := regexp.MustCompile(`pid=(\d+)`).FindStringSubmatch(details[i])
		if m == nil {
			t.Fatalf("%s: Detail %q names no pid", req.RunID, details[i])
		}
		pid, _ := strconv.Atoi(m[1])
		t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
		if other, ok := pids[pid]; ok {
			t.Fatalf("%s and %s were both dispatched to pid %d", other, req.RunID, pid)
		}
		pids[pid] = req.RunID
	}
	for _, req := range reqs {
		if f := core.connectOf(t, req.RunID); f.Token != "tok-"+req.RunID {
			t.Errorf("the wrapper of %s connected with another token", req.RunID)
		}
	}
	spare := awaitSpare(t, tgt)
	if run, ok := pids[spare]; ok {
		t.Fatalf("the spare (pid %d) is the wrapper of %s", spare, run)
	}
}

// TestDispatchDropsASpareOfAnotherCore: a spare started with one core's
// URLs does not take a dispatch that names others.
func TestDispatchDropsASpareOfAnotherCore(t *testing.T) {
	defaultWrapper(t)
	core, other := newCoreStub(t), newCoreStub(t)
	tgt := newLocal(t)
	t.Cleanup(tgt.DropSpare)
	dispatched(t, tgt, core.request(t, "run-1"))
	spare := awaitSpare(t, tgt)
	pid := dispatched(t, tgt, other.request(t, "run-2"))
	if pid == spare {
		t.Fatalf("the spare started for %s took a dispatch for %s", core.url, other.url)
	}
	if f := other.connectOf(t, "run-2"); f.Token != "tok-run-2" {
		t.Errorf("run-2's wrapper connected with another token")
	}
	awaitGone(t, spare, "the other core's spare")
}

// TestDispatchDropsAStaleSpare: a spare whose program was replaced since
// it started (an upgrade) is not used: the dispatch starts the new
// program, and the old spare ends.
func TestDispatchDropsAStaleSpare(t *testing.T) {
	bin := defaultWrapper(t)
	core := newCoreStub(t)
	tgt := newLocal(t)
	t.Cleanup(tgt.DropSpare)
	dispatched(t, tgt, core.request(t, "run-1"))
	stale := awaitSpare(t, tgt)

	// The upgrade: a new file put in the old one's place.
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin+".new", b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(bin+".new", bin); err != nil {
		t.Fatal(err)
	}
	pid := dispatched(t, tgt, core.request(t, "run-2"))
	if pid == stale {
		t.Fatalf("run-2 ran in the spare of the replaced program (pid %d)", stale)
	}
	core.connectOf(t, "run-2")
	awaitGone(t, stale, "the stale spare")
}

// TestDispatchStartsAfreshWhenTheSpareDied: a spare that died before a
// dispatch is not the dispatch's failure: a wrapper is started afresh.
func TestDispatchStartsAfreshWhenTheSpareDied(t *testing.T) {
	defaultWrapper(t)
	core := newCoreStub(t)
	tgt := newLocal(t)
	t.Cleanup(tgt.DropSpare)
	dispatched(t, tgt, core.request(t, "run-1"))
	dead := awaitSpare(t, tgt)
	if err := syscall.Kill(dead, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	awaitGone(t, dead, "the killed spare")

	pid := dispatched(t, tgt, core.request(t, "run-2"))
	if pid == dead {
		t.Fatalf("run-2's wrapper is the dead spare's pid %d", pid)
	}
	if f := core.connectOf(t, "run-2"); f.Token != "tok-run-2" {
		t.Errorf("run-2's wrapper connected with another token")
	}
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/postgres/pgtest"
)

// binDir holds saltpeter and saltpeter-wrapper side by side, built once
// for the package, so the local target finds the wrapper beside the core.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "saltpeter-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	for _, b := range []struct {
		out, pkg string
		static   bool
	}{
		{"saltpeter", "github.com/saltpeter/saltpeter/core/cmd/saltpeter", false},
		// Without cgo, as make build makes it: a static program starts
		// faster, and its start is most of a short job's dispatch.
		{"saltpeter-wrapper", "github.com/saltpeter/saltpeter/wrapper/cmd/saltpeter-wrapper", true},
		{"simfleet", "github.com/saltpeter/saltpeter/examples/plugins/simfleet", false},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		if b.static {
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "e2e: build", b.pkg, ":", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	// pgtest.Main runs the tests with a PostgreSQL server for the ones
	// whose core is on the postgres store.
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// core is a running saltpeter serve process.
type core struct {
	t    testing.TB
	dir  string
	addr string // host:port
	// addrs are every address the core served on, across restarts.
	addrs []string
	// client and scheme reach its API: plain HTTP unless a test serves
	// TLS (see useTLS).
	client *http.Client
	scheme string
	cmd    *exec.Cmd
	logs   *lockedBuffer
	// logLevel is the core's -log-level; debug when empty.
	logLevel string
}

// coreBlock is the core block every test core starts with; extra goes
// inside it.
func coreBlock(extra string) string {
	return `core {
  listen             = "127.0.0.1:0"
  heartbeat_interval = "500ms"
  heartbeat_timeout  = "2s"
  connect_deadline   = "20s"
` + extra + `
}
`
}

// startCore writes hcl to a config file in a fresh folder and starts a
// core on it, logging at debug, waiting until it serves.
func startCore(t testing.TB, hcl string) *core {
	t.Helper()
	return startCoreLogging(t, hcl, "debug")
}

// startCoreLogging is startCore with the core logging at level: a
// benchmark's core logs at info, as a deployment's does.
func startCoreLogging(t testing.TB, hcl, level string) *core {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.hcl"), []byte(hcl), 0o644); err != nil {
		t.Fatalf("write config: %v", err)
	}
	c := &core{t: t, dir: dir, logs: &lockedBuffer{}, logLevel: level}
	t.Cleanup(func() {
		c.stop(syscall.SIGTERM)
		c.killLeftoverWrappers()
		if t.Failed() {
			t.Logf("core log:\n%s", c.logs.String())
		}
	})
	c.launch()
	return c
}

// launch starts a core process on the folder's config and waits until it
// serves.
func (c *core) launch() {
	c.t.Helper()
	level := c.logLevel
	if level == "" {
		level = "debug"
	}
	c.cmd = exec.Command(filepath.Join(binDir, "saltpeter"), "serve", "-config", filepath.Join(c.dir, "config.hcl"),
		"-log-json", "-log-level", level)
	c.cmd.Dir = c.dir
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		c.t.Fatalf("stderr pipe: %v", err)
	}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatalf("start core: %v", err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			c.logs.Write(append(append([]byte(nil), line...), '\n'))
			var rec map[string]any
			if json.Unmarshal(line, &rec) == nil && rec["@message"] == "core serving" {
				if a, ok := rec["addr"].(string); ok {
					select {
					case ready <- a:
					default:
					}
				}
			}
		}
		close(ready)
	}()
	select {
	case a, ok := <-ready:
		if !ok {
			c.t.Fatalf("core exited before serving:\n%s", c.logs.String())
		}
		c.addr = a
		c.addrs = append(c.addrs, a)
	case <-time.After(30 * time.Second):
		c.t.Fatalf("core did not serve within 30s:\n%s", c.logs.String())
	}
}

// stop sends sig to the core process and waits for it (SIGKILL after
// 10s); a process already gone is fine.
func (c *core) stop(sig syscall.Signal) {
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
	c.cmd = nil
}

// restart stops the core with sig and starts it again on the same folder
// (its data directory included); the address changes.
func (c *core) restart(sig syscall.Signal) {
	c.t.Helper()
	c.stop(sig)
	c.launch()
}

func (c *core) url(path string) string {
	if c.scheme == "" {
		return "http://" + c.addr + path
	}
	return c.scheme + "://" + c.addr + path
}

// http is the client for the core's API.
func (c *core) http() *http.Client {
	if c.client == nil {
		return http.DefaultClient
	}
	return c.client
}

// call does an API request and decodes a JSON answer into out (if set).
func (c *core) call(method, path string, body any, out any) int {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.url(path), rd)
	if err != nil {
		c.t.Fatalf("request: %v", err)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read %s %s: %v", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

// runNow starts a job and returns the run id.
func (c *core) runNow(job string) string {
	c.t.Helper()
	var out struct {
		RunID string `json:"run_id"`
		Code  string `json:"code"`
	}
	if st := c.call(http.MethodPost, "/api/v1/jobs/"+job+"/run", nil, &out); st != http.StatusAccepted {
		c.t.Fatalf("run %s: status %d code %s", job, st, out.Code)
	}
	return out.RunID
}

type machine struct {
	Machine       string    `json:"machine"`
	Status        string    `json:"status"`
	ExitCode      *int      `json:"exit_code"`
	Reason        string    `json:"reason"`
	PID           int       `json:"pid"`
	StartedAt     time.Time `json:"started_at"`
	FinishedAt    time.Time `json:"finished_at"`
	LastHeartbeat time.Time `json:"last_heartbeat"`
	OutputBytes   int64     `json:"output_bytes"`
	Error         string    `json:"error"`
	DispatchedAt  time.Time `json:"dispatched_at"`
	ConnectedAt   time.Time `json:"connected_at"`
}

type run struct {
	ID           string    `json:"id"`
	Job          string    `json:"job"`
	Trigger      string    `json:"trigger"`
	Status       string    `json:"status"`
	Reason       string    `json:"reason"`
	ScheduledFor time.Time `json:"scheduled_for"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	KilledBy     string    `json:"killed_by"`
	Actions      []struct {
		Kind   string    `json:"kind"`
		Signal string    `json:"signal"`
		By     string    `json:"by"`
		At     time.Time `json:"at"`
	} `json:"actions"`
	Machines []machine `json:"machines"`
}

func (c *core) run(id string) run {
	c.t.Helper()
	var r run
	if st := c.call(http.MethodGet, "/api/v1/runs/"+id, nil, &r); st != http.StatusOK {
		c.t.Fatalf("get run %s: status %d", id, st)
	}
	return r
}

// waitRun polls the run until cond holds or the deadline passes; the
// condition is the awaited event, the poll only its delivery.
func (c *core) waitRun(id string, within time.Duration, what string, cond func(run) bool) run {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		r := c.run(id)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("run %s: %s not reached within %s; last: %+v", id, what, within, r)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func finished(r run) bool {
	return r.Status != "running" && r.Status != "" && !r.FinishedAt.IsZero()
}

func (c *core) waitFinal(id string, within time.Duration) run {
	c.t.Helper()
	return c.waitRun(id, within, "a final status", finished)
}

// waitRunning waits until every machine of the run has started its job.
func (c *core) waitRunning(id string) run {
	c.t.Helper()
	return c.waitRun(id, 30*time.Second, "running on a machine", func(r run) bool {
		return len(r.Machines) > 0 && r.Machines[0].Status == "running" && r.Machines[0].PID > 0
	})
}

// output returns a machine's stored output (every stream, or one).
func (c *core) output(id, machine, stream string) string {
	c.t.Helper()
	path := "/api/v1/runs/" + id + "/machines/" + machine + "/output"
	if stream != "" {
		path += "?stream=" + stream
	}
	resp, err := c.http().Get(c.url(path))
	if err != nil {
		c.t.Fatalf("get output: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("get output: status %d, %v: %s", resp.StatusCode, err, b)
	}
	return string(b)
}

// followUntil reads a machine's output with follow=1 until want appears.
func (c *core) followUntil(id, machine, want string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The machine's row appears once the target resolved it.
	c.waitRun(id, 30*time.Second, "machine "+machine+" dispatched", func(r run) bool {
		for _, m := range r.Machines {
			if m.Machine == machine {
				return true
			}
		}
		return false
	})
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/api/v1/runs/"+id+"/machines/"+machine+"/output?follow=1"), nil)
	resp, err := c.http().Do(req)
	if err != nil {
		c.t.Fatalf("follow output: %v", err)
	}
	defer resp.Body.Close()
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		got.Write(buf[:n])
		if strings.Contains(got.String(), want) {
			return got.String()
		}
		if err != nil {
			c.t.Fatalf("output ended (%v) before %q appeared; got %q", err, want, got.String())
		}
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// killLeftoverWrappers SIGKILLs the wrappers still dialling this core's
// addresses once it is stopped, with every process under them: a test
// that ends with a job running, or that restarted its core on another
// port, would otherwise leave them retrying for an hour.
func (c *core) killLeftoverWrappers() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	children := map[int][]int{}
	var wrappers []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || i+2 >= len(s) {
			continue
		}
		if f := strings.Fields(s[i+2:]); len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], pid)
		}
		if !strings.HasPrefix(s[strings.IndexByte(s, '(')+1:i], "saltpeter-wrapp") {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			continue
		}
		for _, a := range c.addrs {
			if strings.Contains(string(env), "://"+a+"/ws") {
				wrappers = append(wrappers, pid)
				break
			}
		}
	}
	var tree []int
	for len(wrappers) > 0 {
		pid := wrappers[0]
		wrappers = append(wrappers[1:], children[pid]...)
		tree = append(tree, pid)
	}
	killPIDs(tree)
}

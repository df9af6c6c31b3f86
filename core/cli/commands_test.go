package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/api"
	"github.com/saltpeter/saltpeter/core/audit"
	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Tokens the token-checking core knows.
const (
	operateSecret = "operate-secret"
	readSecret    = "read-secret"
)

// testRunID is shaped like the core's ids, so kill takes it for a run.
const testRunID = "01JQ3ZK8V6N0000000000000AA"

// fakeControl is the core's runner as far as the API asks: RunNow stores
// a running run in the memory store and finishes it with endStatus.
type fakeControl struct {
	store *memory.Store

	mu        sync.Mutex
	endStatus string
	runs      int
	kills     []control.KillRequest
	signals   []control.SignalRequest
	maint     control.MaintenanceState
}

func (f *fakeControl) job(name string) (control.JobState, error) {
	if name != "backup" {
		return control.JobState{}, fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
	}
	return control.JobState{
		Job: &config.Job{Name: "backup", Schedule: "0 3 * * *", Timezone: "UTC", Enabled: true,
			Command: "/usr/local/bin/backup", Env: map[string]string{"PGPASSWORD": "hunter2"},
			Target: config.Target{Plugin: "static", Args: json.RawMessage(`{}`)},
			Kill:   config.Kill{Signal: "SIGTERM", Grace: 30 * time.Second}},
		Enabled: true, EnabledInConfig: true,
		NextRun: time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC),
		Running: []string{testRunID},
	}, nil
}

func (f *fakeControl) Jobs(context.Context) ([]control.JobState, error) {
	js, err := f.job("backup")
	return []control.JobState{js}, err
}

func (f *fakeControl) Job(_ context.Context, name string) (control.JobState, error) {
	return f.job(name)
}

func (f *fakeControl) RunNow(ctx context.Context, job, by string) (string, error) {
	if _, err := f.job(job); err != nil {
		return "", err
	}
	f.mu.Lock()
	f.runs++
	id := fmt.Sprintf("01JQ3ZK8V6N00000000000%04d", f.runs)
	end := f.endStatus
	f.mu.Unlock()
	now := time.Now()
	err := f.store.CreateRun(ctx, store.Run{ID: id, Job: job, Trigger: store.TriggerManual, Status: store.StatusRunning,
		StartedAt: now, RequestedBy: by,
		Machines: []store.Machine{{Machine: "m1", Status: store.StatusRunning, StartedAt: now}}})
	if err != nil {
		return "", err
	}
	// The run ends on its own, whenever; -wait must notice either way.
	go func() {
		code := 0
		if end != store.StatusSucceeded {
			code = 1
		}
		ctx := context.Background()
		f.store.UpdateMachine(ctx, id, "m1", store.MachineUpdate{Status: &end, ExitCode: &code})
		f.store.UpdateRun(ctx, id, store.RunUpdate{Status: &end})
	}()
	return id, nil
}

func (f *fakeControl) Kill(_ context.Context, req control.KillRequest) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kills = append(f.kills, req)
	if req.RunID != "" {
		return []string{req.RunID}, nil
	}
	return []string{testRunID}, nil
}

func (f *fakeControl) Signal(_ context.Context, req control.SignalRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.signals = append(f.signals, req)
	return nil
}

func (f *fakeControl) SetEnabled(_ context.Context, job string, _ bool, _ string) error {
	_, err := f.job(job)
	return err
}

func (f *fakeControl) ResetEnabled(_ context.Context, job, _ string) error {
	_, err := f.job(job)
	return err
}

func (f *fakeControl) NextRuns(_ context.Context, job string, n int) ([]control.Fire, error) {
	if _, err := f.job(job); err != nil {
		return nil, err
	}
	var out []control.Fire
	for i := range n {
		out = append(out, control.Fire{At: time.Date(2030, 1, 2+i, 3, 0, 0, 0, time.UTC)})
	}
	return out, nil
}

func (f *fakeControl) Reload(context.Context, string) error { return nil }

func (f *fakeControl) Maintenance(context.Context) (control.MaintenanceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maint, nil
}

func (f *fakeControl) SetMaintenance(_ context.Context, global bool, machines []string, by string) (control.MaintenanceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maint = control.MaintenanceState{Global: global, Machines: machines, Override: true, SetBy: by, SetAt: time.Now()}
	return f.maint, nil
}

func (f *fakeControl) ResetMaintenance(context.Context, string) (control.MaintenanceState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maint = control.MaintenanceState{}
	return f.maint, nil
}

var _ control.Control = (*fakeControl)(nil)

// testCore is the real API handler over a memory store and a fake runner.
type testCore struct {
	url   string
	store *memory.Store
	bus   *events.Bus
	ctl   *fakeControl
}

func digest(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// newTestCore starts the API; with tokens it wants a bearer token, as a
// core with api_tokens does. SALTPETER_ADDR points at it and
// SALTPETER_TOKEN is emptied; tests set what they need.
func newTestCore(t *testing.T, tokens bool) *testCore {
	t.Helper()
	c := &testCore{store: memory.New(), bus: events.New()}
	c.ctl = &fakeControl{store: c.store, endStatus: store.StatusSucceeded}
	// Audited as the core is, so that `audit` reads what the others did.
	log := audit.New(c.store, nil, nil)
	cfg := api.Config{Control: audit.Control(c.ctl, log), Audit: log, Store: c.store, Events: c.bus, Listen: "127.0.0.1:0"}
	if tokens {
		cfg.Tokens = []config.APIToken{
			{Name: "deployer", Role: config.RoleOperate, SHA256: digest(operateSecret)},
			{Name: "viewer", Role: config.RoleRead, SHA256: digest(readSecret)},
		}
	}
	srv := httptest.NewServer(api.New(cfg).Handler())
	t.Cleanup(srv.Close)
	c.url = srv.URL
	t.Setenv("SALTPETER_ADDR", srv.URL)
	t.Setenv("SALTPETER_TOKEN", "")
	return c
}

// addRun stores a running run with the given machines.
func (c *testCore) addRun(t *testing.T, id string, machines ...string) {
	t.Helper()
	run := store.Run{ID: id, Job: "backup", Trigger: store.TriggerManual, Status: store.StatusRunning, StartedAt: time.Now()}
	for _, m := range machines {
		run.Machines = append(run.Machines, store.Machine{Machine: m, Status: store.StatusRunning})
	}
	if err := c.store.CreateRun(context.Background(), run); err != nil {
		t.Fatal(err)
	}
}

// write appends output for a machine and tells followers, as the hub does.
func (c *testCore) write(t *testing.T, id, machine string, seq int64, data string) {
	t.Helper()
	if _, err := c.store.AppendOutput(context.Background(), id, machine, store.Chunk{Seq: seq, Stream: "stdout", Data: []byte(data), At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	c.bus.Publish(events.Event{Kind: events.Output, RunID: id, Machine: machine})
}

// finish makes a machine's result final, as the hub does on complete.
func (c *testCore) finish(t *testing.T, id, machine, status string) {
	t.Helper()
	if err := c.store.UpdateMachine(context.Background(), id, machine, store.MachineUpdate{Status: &status}); err != nil {
		t.Fatal(err)
	}
	c.bus.Publish(events.Event{Kind: events.MachineUpdated, RunID: id, Machine: machine, Status: status})
}

// run runs the CLI and returns its exit code, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestAddrAndToken(t *testing.T) {
	c := newTestCore(t, true)
	tests := []struct {
		name   string
		addr   string // SALTPETER_ADDR
		token  string // SALTPETER_TOKEN
		args   []string
		code   int
		stdout string
		stderr []string
	}{
		{name: "env address and token", addr: c.url, token: operateSecret, args: []string{"jobs"}, stdout: "backup"},
		{name: "read token may read", addr: c.url, token: readSecret, args: []string{"jobs"}, stdout: "backup"},
		{name: "flag wins over env", addr: "http://127.0.0.1:1", token: operateSecret, args: []string{"jobs", "-addr", c.url}, stdout: "backup"},
		{name: "env address used", addr: "http://127.0.0.1:1", token: operateSecret, args: []string{"jobs"}, code: 1, stderr: []string{"127.0.0.1:1"}},
		{name: "no token", addr: c.url, args: []string{"jobs"}, code: 1,
			stderr: []string{"not authenticated", "UNAUTHORIZED, HTTP 401", "set SALTPETER_TOKEN"}},
		{name: "unknown token", addr: c.url, token: "nope", args: []string{"jobs"}, code: 1,
			stderr: []string{"not authenticated", "not a token this core knows"}},
		{name: "read token may not run", addr: c.url, token: readSecret, args: []string{"run", "backup"}, code: 1,
			stderr: []string{"not allowed", `Token "viewer" has the read role`, "FORBIDDEN, HTTP 403", "operate role"}},
		{name: "read token may not set maintenance", addr: c.url, token: readSecret, args: []string{"maintenance", "set", "-global"}, code: 1,
			stderr: []string{"not allowed", "FORBIDDEN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("SALTPETER_ADDR", tt.addr)
			t.Setenv("SALTPETER_TOKEN", tt.token)
			code, out, errs := run(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			if !strings.Contains(out, tt.stdout) {
				t.Errorf("stdout %q, want it to contain %q", out, tt.stdout)
			}
			for _, want := range tt.stderr {
				if !strings.Contains(errs, want) {
					t.Errorf("stderr %q, want it to contain %q", errs, want)
				}
			}
		})
	}
}

func TestRunWait(t *testing.T) {
	tests := []struct {
		status string
		code   int
	}{
		{store.StatusSucceeded, 0},
		{store.StatusFailed, 10},
		{store.StatusTimeout, 11},
		{store.StatusKilled, 12},
	}
	for _, tt := range tests {
		t.Run(tt.status, func(t *testing.T) {
			c := newTestCore(t, false)
			c.ctl.endStatus = tt.status
			code, out, errs := run(t, "run", "backup", "-wait", "-poll", "5ms")
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errs)
			}
			lines := strings.Split(out, "\n")
			if !looksLikeRunID(lines[0]) {
				t.Errorf("first line %q, want the run id", lines[0])
			}
			if len(lines) < 2 || !strings.HasSuffix(lines[1], ": "+tt.status) {
				t.Errorf("stdout %q, want the run's status %q on line 2", out, tt.status)
			}
			// Not a terminal: no progress line, no escape codes.
			if strings.Contains(out, "\r") || strings.Contains(out, "\033") {
				t.Errorf("stdout %q has terminal control characters in a pipe", out)
			}
		})
	}
}

func TestRunExitCodesDistinct(t *testing.T) {
	seen := map[int]string{1: "the CLI's own failure", 2: "usage", 3: "conflict", exitUnknownStatus: "unknown", exitInterrupted: "interrupted"}
	for status, code := range runExitCodes {
		if prev, ok := seen[code]; ok {
			t.Errorf("status %s exits %d, as %s does", status, code, prev)
		}
		seen[code] = status
	}
}

func TestProgressLine(t *testing.T) {
	started := "2030-01-01T00:00:00Z"
	r := runView{ID: testRunID, Job: "backup", Machines: []machineView{
		{Machine: "a", Status: "pending"},
		{Machine: "b", Status: "running", StartedAt: &started},
		{Machine: "c", Status: "succeeded", StartedAt: &started},
		{Machine: "d", Status: "failed", StartedAt: &started},
	}}
	want := "backup " + testRunID + ": 4 machines, 3 started, 2 finished, 1 failed"
	if got := progressLine(r); got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
}

// syncBuffer is a buffer a command writes while the test reads it; each
// write is signalled, so the test waits for output rather than for time.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// await waits until the buffer holds want.
func (b *syncBuffer) await(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for !strings.Contains(b.String(), want) {
		select {
		case <-b.wrote:
		case <-timeout:
			t.Fatalf("output %q never came; have %q", want, b.String())
		}
	}
}

func TestLogsFollow(t *testing.T) {
	tests := []struct {
		name     string
		machines []string
		args     []string
		// line is how "second" shows for m1.
		line string
	}{
		{name: "one machine named", machines: []string{"m1", "m2"}, args: []string{"-machine", "m1"}, line: "second\n"},
		{name: "the only machine", machines: []string{"m1"}, line: "second\n"},
		{name: "several machines prefixed", machines: []string{"m1", "m22"}, line: "m1  | second\n"},
		{name: "older output command", machines: []string{"m1"}, line: "second\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCore(t, false)
			c.addRun(t, testRunID, tt.machines...)
			c.write(t, testRunID, "m1", 0, "first\n")
			cmd := "logs"
			if tt.name == "older output command" {
				cmd = "output"
			}
			out, errb := newSyncBuffer(), &bytes.Buffer{}
			done := make(chan int, 1)
			go func() {
				done <- Main(append([]string{cmd, testRunID, "-f"}, tt.args...), out, errb)
			}()
			// "first" printed means the core is following: what is
			// written from now on must come through the same response.
			out.await(t, "first\n")
			c.write(t, testRunID, "m1", 1, "second\n")
			out.await(t, tt.line)
			for _, m := range tt.machines {
				c.finish(t, testRunID, m, store.StatusSucceeded)
			}
			select {
			case code := <-done:
				if code != 0 {
					t.Fatalf("exit %d; stderr %q", code, errb.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatal("logs -f did not end when the machines' results were final")
			}
		})
	}
}

func TestLogsSeveralMachines(t *testing.T) {
	c := newTestCore(t, false)
	c.addRun(t, testRunID, "web1", "db")
	c.write(t, testRunID, "web1", 0, "hello\nwor")
	c.write(t, testRunID, "web1", 1, "ld\nno newline")
	c.write(t, testRunID, "db", 0, "from db\n")
	code, out, errs := run(t, "logs", testRunID)
	if code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errs)
	}
	want := "web1 | hello\nweb1 | world\nweb1 | no newline\ndb   | from db\n"
	if out != want {
		t.Errorf("stdout\n%q, want\n%q", out, want)
	}
	// Named, the bytes come as stored.
	if _, out, _ := run(t, "logs", testRunID, "-machine", "web1"); out != "hello\nworld\nno newline" {
		t.Errorf("logs -machine web1 = %q", out)
	}
}

func TestJSONOutput(t *testing.T) {
	c := newTestCore(t, false)
	c.addRun(t, testRunID, "m1")
	tests := []struct {
		args []string
		key  string // a top-level key the API's document has
	}{
		{[]string{"jobs", "-json"}, "jobs"},
		{[]string{"job", "backup", "-json"}, "command"},
		{[]string{"runs", "--json"}, "runs"},
		{[]string{"next", "backup", "-json"}, "fires"},
		{[]string{"maintenance", "-json"}, "global"},
		{[]string{"audit", "-json"}, "entries"},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			code, out, errs := run(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d; stderr %q", code, errs)
			}
			var v map[string]any
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
			}
			if _, ok := v[tt.key]; !ok {
				t.Errorf("JSON has no %q: %s", tt.key, out)
			}
		})
	}
}

func TestJob(t *testing.T) {
	newTestCore(t, false)
	code, out, errs := run(t, "job", "backup")
	if code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errs)
	}
	for _, want := range []string{"/usr/local/bin/backup", "PGPASSWORD", "SIGTERM grace 30s", testRunID, "2030-01-02T03:00:00Z", "2030-01-04T03:00:00Z"} {
		if !strings.Contains(out, want) {
			t.Errorf("job output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") {
		t.Errorf("job output shows an env value:\n%s", out)
	}
	if code, _, errs := run(t, "job", "nope"); code != 1 || !strings.Contains(errs, "JOB_NOT_FOUND") {
		t.Errorf("unknown job: exit %d, stderr %q", code, errs)
	}
}

func TestMaintenance(t *testing.T) {
	c := newTestCore(t, true)
	t.Setenv("SALTPETER_TOKEN", operateSecret)
	steps := []struct {
		args     []string
		global   bool
		machines []string
		stdout   []string
	}{
		{args: []string{"maintenance", "set", "-global", "-machines", "db1, db2"}, global: true, machines: []string{"db1", "db2"},
			stdout: []string{"on: no new runs start", "db1 db2", "set by deployer"}},
		{args: []string{"maintenance"}, global: true, machines: []string{"db1", "db2"}, stdout: []string{"db1 db2"}},
		{args: []string{"maintenance", "set", "-machines", "db3"}, machines: []string{"db3"}, stdout: []string{"off", "db3"}},
		{args: []string{"maintenance", "reset"}, stdout: []string{"off", "config"}},
	}
	for _, s := range steps {
		code, out, errs := run(t, s.args...)
		if code != 0 {
			t.Fatalf("%q: exit %d; stderr %q", s.args, code, errs)
		}
		for _, want := range s.stdout {
			if !strings.Contains(out, want) {
				t.Errorf("%q: stdout %q, want %q", s.args, out, want)
			}
		}
		m, _ := c.ctl.Maintenance(context.Background())
		if m.Global != s.global || strings.Join(m.Machines, ",") != strings.Join(s.machines, ",") {
			t.Errorf("%q: maintenance is %v %q, want %v %q", s.args, m.Global, m.Machines, s.global, s.machines)
		}
	}
	if code, _, errs := run(t, "maintenance", "sideways"); code != 2 || !strings.Contains(errs, "unknown subcommand") {
		t.Errorf("unknown subcommand: exit %d, stderr %q", code, errs)
	}
}

func TestKillTarget(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want control.KillRequest
	}{
		{name: "job name", args: []string{"backup"}, want: control.KillRequest{Job: "backup"}},
		{name: "run id", args: []string{testRunID, "-signal", "SIGINT", "-grace", "5s"},
			want: control.KillRequest{RunID: testRunID, Signal: "SIGINT", Grace: 5 * time.Second}},
		{name: "run on one machine", args: []string{testRunID, "-machine", "m1"}, want: control.KillRequest{RunID: testRunID, Machine: "m1"}},
		{name: "job named like a run", args: []string{"-job", testRunID}, want: control.KillRequest{Job: testRunID}},
		{name: "older -run form", args: []string{"-run", testRunID}, want: control.KillRequest{RunID: testRunID}},
		{name: "machine of a job", args: []string{"backup", "-machine", "m1"}, code: 2},
		{name: "nothing", code: 2},
		{name: "two", args: []string{"backup", "other"}, code: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestCore(t, false)
			code, _, errs := run(t, append([]string{"kill"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			c.ctl.mu.Lock()
			defer c.ctl.mu.Unlock()
			if tt.code != 0 {
				if len(c.ctl.kills) != 0 {
					t.Errorf("kills sent %+v, want none", c.ctl.kills)
				}
				return
			}
			if len(c.ctl.kills) != 1 {
				t.Fatalf("kills sent %+v, want one", c.ctl.kills)
			}
			got := c.ctl.kills[0]
			got.By = ""
			if got != tt.want {
				t.Errorf("kill %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestSignal(t *testing.T) {
	c := newTestCore(t, false)
	code, out, errs := run(t, "signal", testRunID, "SIGSTOP", "-machine", "m1")
	if code != 0 {
		t.Fatalf("exit %d; stderr %q", code, errs)
	}
	if !strings.Contains(out, "sent SIGSTOP to m1") {
		t.Errorf("stdout %q", out)
	}
	c.ctl.mu.Lock()
	defer c.ctl.mu.Unlock()
	if len(c.ctl.signals) != 1 || c.ctl.signals[0].RunID != testRunID || c.ctl.signals[0].Machine != "m1" || c.ctl.signals[0].Signal != "SIGSTOP" {
		t.Errorf("signals sent %+v", c.ctl.signals)
	}
}

func TestAudit(t *testing.T) {
	newTestCore(t, true)
	t.Setenv("SALTPETER_TOKEN", operateSecret)
	if code, _, errs := run(t, "disable", "backup"); code != 0 {
		t.Fatalf("disable: exit %d; %s", code, errs)
	}
	t.Setenv("SALTPETER_TOKEN", readSecret)
	if code, _, _ := run(t, "kill", "backup"); code != 1 {
		t.Fatalf("kill by a read token: exit %d, want 1", code)
	}
	code, out, errs := run(t, "audit")
	if code != 0 {
		t.Fatalf("audit: exit %d; %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("audit printed %d lines, want a header and two entries:\n%s", len(lines), out)
	}
	for i, want := range [][]string{
		{"viewer", "api", "kill", "backup", "refused: Token \"viewer\" has the read role"},
		{"deployer", "api", "disable", "backup", "ok"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("entry %d %q lacks %q", i, lines[i+1], w)
			}
		}
	}
	code, out, errs = run(t, "audit", "-limit", "1", "-action", "kill")
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, "viewer") {
		t.Errorf("audit -limit 1 -action kill: exit %d, stdout %q", code, out)
	}
	if strings.Contains(errs, "older entries") {
		t.Errorf("one kill entry, yet stderr offers an older page: %q", errs)
	}
	code, _, errs = run(t, "audit", "-limit", "1")
	if code != 0 || !strings.Contains(errs, "older entries: saltpeter audit -before ") {
		t.Errorf("audit -limit 1: exit %d, stderr %q, want the next page's command", code, errs)
	}
	if code, _, errs := run(t, "audit", "-action", "explode"); code != 1 || !strings.Contains(errs, "BAD_REQUEST") {
		t.Errorf("bad action: exit %d, stderr %q", code, errs)
	}
}

package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Tokens the tests configure.
const (
	opSecret   = "operate-secret-token"
	readSecret = "read-secret-token"
)

func tokenHash(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

var testTokens = []config.APIToken{
	{Name: "deployer", Role: config.RoleOperate, SHA256: tokenHash(opSecret)},
	{Name: "viewer", Role: config.RoleRead, SHA256: tokenHash(readSecret)},
}

// call is one Control call the fake saw.
type call struct {
	Method  string
	Job     string
	RunID   string
	Machine string
	Signal  string
	Grace   time.Duration
	Enabled bool
	N       int
	By      string
}

// fakeControl records every call and answers from its fields; errs, keyed
// by method name, makes a method fail.
type fakeControl struct {
	mu     sync.Mutex
	jobs   map[string]control.JobState
	calls  []call
	errs   map[string]error
	runID  string
	killed []string
	fires  []control.Fire
	maint  control.MaintenanceState
}

func newFakeControl(jobs ...control.JobState) *fakeControl {
	f := &fakeControl{jobs: map[string]control.JobState{}, errs: map[string]error{}, runID: "run-new"}
	for _, j := range jobs {
		f.jobs[j.Job.Name] = j
	}
	return f
}

func (f *fakeControl) record(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	if err := f.errs[c.Method]; err != nil {
		return err
	}
	if c.Job != "" && c.Method != "Kill" {
		if _, ok := f.jobs[c.Job]; !ok {
			return fmt.Errorf("%s %s: %w", strings.ToLower(c.Method), c.Job, control.ErrUnknownJob)
		}
	}
	return nil
}

func (f *fakeControl) setErr(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs[method] = err
}

// Calls returns the calls of one method.
func (f *fakeControl) Calls(method string) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeControl) Jobs(ctx context.Context) ([]control.JobState, error) {
	if err := f.record(call{Method: "Jobs"}); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []control.JobState
	for _, k := range slices.Sorted(maps.Keys(f.jobs)) {
		out = append(out, f.jobs[k])
	}
	return out, nil
}

func (f *fakeControl) Job(ctx context.Context, name string) (control.JobState, error) {
	if err := f.record(call{Method: "Job", Job: name}); err != nil {
		return control.JobState{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.jobs[name], nil
}

func (f *fakeControl) RunNow(ctx context.Context, job, by string) (string, error) {
	if err := f.record(call{Method: "RunNow", Job: job, By: by}); err != nil {
		return "", err
	}
	return f.runID, nil
}

func (f *fakeControl) Kill(ctx context.Context, req control.KillRequest) ([]string, error) {
	if err := f.record(call{Method: "Kill", Job: req.Job, RunID: req.RunID, Machine: req.Machine,
		Signal: req.Signal, Grace: req.Grace, By: req.By}); err != nil {
		return nil, err
	}
	return f.killed, nil
}

func (f *fakeControl) Signal(ctx context.Context, req control.SignalRequest) error {
	return f.record(call{Method: "Signal", RunID: req.RunID, Machine: req.Machine, Signal: req.Signal, By: req.By})
}

func (f *fakeControl) SetEnabled(ctx context.Context, job string, enabled bool, by string) error {
	if err := f.record(call{Method: "SetEnabled", Job: job, Enabled: enabled, By: by}); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	js := f.jobs[job]
	js.Enabled, js.OverrideBy, js.OverrideAt = enabled, by, time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)
	f.jobs[job] = js
	return nil
}

func (f *fakeControl) ResetEnabled(ctx context.Context, job, by string) error {
	if err := f.record(call{Method: "ResetEnabled", Job: job, By: by}); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	js := f.jobs[job]
	js.Enabled, js.OverrideBy, js.OverrideAt = js.EnabledInConfig, "", time.Time{}
	f.jobs[job] = js
	return nil
}

func (f *fakeControl) NextRuns(ctx context.Context, job string, n int) ([]control.Fire, error) {
	if err := f.record(call{Method: "NextRuns", Job: job, N: n}); err != nil {
		return nil, err
	}
	return f.fires[:min(n, len(f.fires))], nil
}

func (f *fakeControl) Reload(ctx context.Context, by string) error {
	return f.record(call{Method: "Reload", By: by})
}

func (f *fakeControl) Maintenance(context.Context) (control.MaintenanceState, error) {
	if err := f.record(call{Method: "Maintenance"}); err != nil {
		return control.MaintenanceState{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maint, nil
}

func (f *fakeControl) SetMaintenance(_ context.Context, global bool, machines []string, by string) (control.MaintenanceState, error) {
	if err := f.record(call{Method: "SetMaintenance", Enabled: global, N: len(machines), By: by}); err != nil {
		return control.MaintenanceState{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maint = control.MaintenanceState{Global: global, Machines: machines, Override: true, SetBy: by,
		SetAt: time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)}
	return f.maint, nil
}

func (f *fakeControl) ResetMaintenance(_ context.Context, by string) (control.MaintenanceState, error) {
	if err := f.record(call{Method: "ResetMaintenance", By: by}); err != nil {
		return control.MaintenanceState{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maint = control.MaintenanceState{Machines: []string{"db3"}}
	return f.maint, nil
}

var _ control.Control = (*fakeControl)(nil)

// backupJob is a job with a bit of everything, secrets in env included.
func backupJob() control.JobState {
	return control.JobState{
		Job: &config.Job{
			Name: "backup", Group: "db", Schedule: "0 3 * * *", Timezone: "Europe/Berlin", Enabled: true,
			Command: "/usr/local/bin/backup", Cwd: "/srv", User: "backup",
			Env:     map[string]string{"PGPASSWORD": "hunter2", "MODE": "full"},
			Target:  config.Target{Plugin: "static", Args: json.RawMessage(`{"hosts":["db1","db2"]}`)},
			Timeout: 2 * time.Hour, Overlap: config.OverlapSkip,
			Kill:    config.Kill{Signal: "SIGTERM", Grace: 30 * time.Second},
			Retry:   &config.Retry{Attempts: 2, Backoff: time.Minute},
			Expect:  &config.Expect{MaxGap: 48 * time.Hour},
			Wrapper: config.Wrapper{Protocol: 2},
		},
		Enabled: true, EnabledInConfig: true,
		NextRun: time.Date(2025, 3, 2, 2, 0, 0, 0, time.UTC),
		Running: []string{"r-running"},
	}
}

func manualJob() control.JobState {
	return control.JobState{Job: &config.Job{Name: "manual", Schedule: "@manually", Kill: config.Kill{Signal: "SIGTERM", Grace: 5 * time.Second}}}
}

// env is one API under test with its collaborators.
type env struct {
	t     *testing.T
	api   *API
	srv   *httptest.Server
	ctl   *fakeControl
	store *memory.Store
	bus   *events.Bus
	now   time.Time
	mu    sync.Mutex
}

type envOpt func(*Config)

func withTokens(c *Config) { c.Tokens = testTokens }

func newEnv(t *testing.T, opts ...envOpt) *env {
	t.Helper()
	e := &env{t: t, ctl: newFakeControl(backupJob(), manualJob()), store: memory.New(), bus: events.New(),
		now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	cfg := Config{Control: e.ctl, Store: e.store, Events: e.bus, Listen: "127.0.0.1:8080", Now: e.clock}
	for _, o := range opts {
		o(&cfg)
	}
	e.api = New(cfg)
	e.srv = httptest.NewServer(e.api.Handler())
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.now = e.now.Add(d)
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, r.Body)
	}
	return v
}

// req describes a request; auth is a bearer token ("" for none).
type req struct {
	Method string
	Path   string
	Body   string
	Auth   string
	Header map[string]string
}

func (e *env) do(r req) response {
	e.t.Helper()
	var body io.Reader
	if r.Body != "" {
		body = strings.NewReader(r.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, r.Method, e.srv.URL+r.Path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Auth != "" {
		hr.Header.Set("Authorization", "Bearer "+r.Auth)
	}
	for k, v := range r.Header {
		if k == "Host" {
			hr.Host = v
			continue
		}
		hr.Header.Set(k, v)
	}
	resp, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", r.Method, r.Path, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// wantError checks an error response's status, code and shape.
func wantError(t *testing.T, r response, status int, code string) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	v := r.JSON(t)
	if v["code"] != code {
		t.Errorf("code = %v, want %s; body %s", v["code"], code, r.Body)
	}
	msg, _ := v["error"].(string)
	if msg == "" {
		t.Errorf("error sentence is empty; body %s", r.Body)
	}
	return v
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status = %d, want %d; body %s", r.Status, status, r.Body)
	}
}

// addRun stores a run with machines.
func (e *env) addRun(run store.Run) {
	e.t.Helper()
	if err := e.store.CreateRun(context.Background(), run); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) appendOutput(runID, machine, stream string, data []byte) {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.store.GetRun(ctx, runID)
	if err != nil {
		e.t.Fatal(err)
	}
	var seq int64 = -1
	for _, m := range r.Machines {
		if m.Machine == machine {
			seq = m.NextSeq
		}
	}
	if seq < 0 {
		e.t.Fatalf("no machine %s in run %s", machine, runID)
	}
	if _, err := e.store.AppendOutput(ctx, runID, machine, store.Chunk{Seq: seq, Stream: stream, Data: data}); err != nil {
		e.t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestUnroutedAnswersJSON(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name   string
		method string
		path   string
		status int
		code   string
		allow  string
	}{
		{"unknown api path", "GET", "/api/v1/nope", 404, CodeNotFound, ""},
		{"unknown path outside api", "GET", "/elsewhere", 404, CodeNotFound, ""},
		{"trailing slash on a job", "GET", "/api/v1/jobs/", 404, CodeNotFound, ""},
		{"wrong method on list", "DELETE", "/api/v1/jobs", 405, CodeMethodNotAllowed, "GET, HEAD"},
		{"GET on an action", "GET", "/api/v1/jobs/backup/run", 405, CodeMethodNotAllowed, "POST"},
		{"POST on healthz", "POST", "/healthz", 405, CodeMethodNotAllowed, "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(req{Method: tt.method, Path: tt.path})
			wantError(t, r, tt.status, tt.code)
			if got := r.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow = %q, want %q", got, tt.allow)
			}
		})
	}
}

func TestHealthz(t *testing.T) {
	e := newEnv(t, withTokens)
	r := e.do(req{Method: "GET", Path: "/healthz"})
	wantStatus(t, r, 200)
	if v := r.JSON(t); v["status"] != "ok" {
		t.Errorf("body = %s, want status ok", r.Body)
	}
	e.store.Close()
	r = e.do(req{Method: "GET", Path: "/healthz"})
	wantError(t, r, 503, CodeStoreUnavailable)
}

func TestStoreUnavailableIs503(t *testing.T) {
	e := newEnv(t)
	e.store.Close()
	for _, path := range []string{"/api/v1/jobs", "/api/v1/runs", "/api/v1/runs/r1"} {
		t.Run(path, func(t *testing.T) {
			wantError(t, e.do(req{Method: "GET", Path: path}), 503, CodeStoreUnavailable)
		})
	}
}

func TestInternalErrorHidesDetail(t *testing.T) {
	e := newEnv(t)
	e.ctl.setErr("Reload", errors.New("dial postgres://admin:pw@db: refused"))
	r := e.do(req{Method: "POST", Path: "/api/v1/reload"})
	wantError(t, r, 500, CodeInternal)
	if bytes.Contains(r.Body, []byte("admin:pw")) {
		t.Errorf("500 body leaks the error: %s", r.Body)
	}
}

func TestJobWithoutSpecIs500(t *testing.T) {
	e := newEnv(t)
	e.ctl.mu.Lock()
	e.ctl.jobs["broken"] = control.JobState{}
	e.ctl.mu.Unlock()
	wantError(t, e.do(req{Method: "GET", Path: "/api/v1/jobs"}), 500, CodeInternal)
}

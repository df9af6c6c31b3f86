package audit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// appender keeps what it is given, or fails with err.
type appender struct {
	mu      sync.Mutex
	entries []store.AuditEntry
	err     error
	ctxErr  error // the write context's error when it was called
}

func (a *appender) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ctxErr = ctx.Err()
	if a.err != nil {
		return 0, a.err
	}
	a.entries = append(a.entries, e)
	return int64(len(a.entries)), nil
}

// GetRun knows run r1, of job backup.
func (a *appender) GetRun(_ context.Context, id string) (store.Run, error) {
	if id == "r1" {
		return store.Run{ID: id, Job: "backup"}, nil
	}
	return store.Run{}, store.ErrNotFound
}

func (a *appender) only(t *testing.T) store.AuditEntry {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.entries) != 1 {
		t.Fatalf("entries = %+v, want one", a.entries)
	}
	return a.entries[0]
}

// fakeControl answers every action with err, and a run id or run ids.
type fakeControl struct {
	control.Control // reads: never called here
	err             error
}

func (f *fakeControl) RunNow(context.Context, string, string) (string, error) { return "r-new", f.err }
func (f *fakeControl) Kill(_ context.Context, req control.KillRequest) ([]string, error) {
	if req.RunID != "" {
		return []string{req.RunID}, f.err
	}
	return []string{"r1", "r2"}, f.err
}
func (f *fakeControl) Signal(context.Context, control.SignalRequest) error    { return f.err }
func (f *fakeControl) SetEnabled(context.Context, string, bool, string) error { return f.err }
func (f *fakeControl) ResetEnabled(context.Context, string, string) error     { return f.err }
func (f *fakeControl) Reload(context.Context, string) error                   { return f.err }
func (f *fakeControl) SetMaintenance(_ context.Context, g bool, m []string, by string) (control.MaintenanceState, error) {
	return control.MaintenanceState{Global: g, Machines: m, Override: true, SetBy: by}, f.err
}
func (f *fakeControl) ResetMaintenance(context.Context, string) (control.MaintenanceState, error) {
	return control.MaintenanceState{}, f.err
}

var at = time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)

// actions are every Control method that acts, each called once; the test
// below holds this list to the interface.
var actions = []struct {
	method string
	call   func(ctx context.Context, c control.Control) error
	want   store.AuditEntry
}{
	{"RunNow", func(ctx context.Context, c control.Control) error {
		_, err := c.RunNow(ctx, "backup", "alice")
		return err
	},
		store.AuditEntry{By: "alice", Action: store.AuditRun, Job: "backup", RunID: "r-new"}},
	{"Kill", func(ctx context.Context, c control.Control) error {
		_, err := c.Kill(ctx, control.KillRequest{Job: "backup", By: "alice"})
		return err
	}, store.AuditEntry{By: "alice", Action: store.AuditKill, Job: "backup", Detail: "the job's kill policy; runs r1, r2"}},
	{"Signal", func(ctx context.Context, c control.Control) error {
		return c.Signal(ctx, control.SignalRequest{RunID: "r1", Machine: "web1", Signal: "SIGUSR1", By: "alice"})
	}, store.AuditEntry{By: "alice", Action: store.AuditSignal, Job: "backup", RunID: "r1", Machine: "web1", Detail: "SIGUSR1"}},
	{"SetEnabled", func(ctx context.Context, c control.Control) error { return c.SetEnabled(ctx, "backup", false, "alice") },
		store.AuditEntry{By: "alice", Action: store.AuditDisable, Job: "backup"}},
	{"ResetEnabled", func(ctx context.Context, c control.Control) error { return c.ResetEnabled(ctx, "backup", "alice") },
		store.AuditEntry{By: "alice", Action: store.AuditReset, Job: "backup"}},
	{"Reload", func(ctx context.Context, c control.Control) error { return c.Reload(ctx, "alice") },
		store.AuditEntry{By: "alice", Action: store.AuditReload}},
	{"SetMaintenance", func(ctx context.Context, c control.Control) error {
		_, err := c.SetMaintenance(ctx, true, []string{"web1", "web2"}, "alice")
		return err
	}, store.AuditEntry{By: "alice", Action: store.AuditMaintenanceSet, Detail: "global on; machines web1, web2"}},
	{"ResetMaintenance", func(ctx context.Context, c control.Control) error {
		_, err := c.ResetMaintenance(ctx, "alice")
		return err
	}, store.AuditEntry{By: "alice", Action: store.AuditMaintenanceReset}},
}

// reads are the Control methods that change nothing and are not audited.
var reads = []string{"Jobs", "Job", "NextRuns", "Maintenance"}

// A new method on control.Control must be audited or named a read here:
// the embedded interface would otherwise pass it through unrecorded.
func TestEveryActionIsAudited(t *testing.T) {
	ct := reflect.TypeFor[control.Control]()
	var want []string
	for i := range ct.NumMethod() {
		want = append(want, ct.Method(i).Name)
	}
	got := slices.Clone(reads)
	for _, a := range actions {
		got = append(got, a.method)
		if _, ok := reflect.TypeFor[*audited]().MethodByName(a.method); !ok {
			t.Errorf("audited has no %s", a.method)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("actions and reads = %v, control.Control has %v: audit the new method (or list it as a read)", got, want)
	}
}

func TestControlRecordsEachAction(t *testing.T) {
	outcomes := []struct {
		name    string
		err     error
		outcome string
		text    string
	}{
		{"ok", nil, store.AuditOK, ""},
		{"refused", fmt.Errorf("%w %q", control.ErrUnknownJob, "backup"), store.AuditRefused, `unknown job "backup"`},
		{"failed", errors.New("dial postgres://admin:secret@db: refused"), store.AuditFailed, "the core failed; its log has the details"},
	}
	for _, a := range actions {
		for _, o := range outcomes {
			t.Run(a.method+"/"+o.name, func(t *testing.T) {
				st := &appender{}
				c := Control(&fakeControl{err: o.err}, New(st, nil, func() time.Time { return at }))
				ctx := WithSource(context.Background(), Source{Via: ViaEvents, Remote: "192.0.2.7"})
				if err := a.call(ctx, c); !errors.Is(err, o.err) {
					t.Fatalf("call returned %v, want the control's %v", err, o.err)
				}
				got := st.only(t)
				want := a.want
				want.At, want.Via, want.Remote, want.Outcome, want.Error = at, ViaEvents, "192.0.2.7", o.outcome, o.text
				if got != want {
					t.Errorf("entry\n got %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		err     error
		outcome string
		text    string
	}{
		{nil, store.AuditOK, ""},
		{&control.ConfigError{Diagnostics: "config.hcl:3,1: bad"}, store.AuditRefused, "configuration has errors:\nconfig.hcl:3,1: bad"},
		{fmt.Errorf("reload: %w", &control.ConfigError{Diagnostics: "x"}), store.AuditRefused, "configuration has errors:\nx"},
		{fmt.Errorf("run backup: %w", control.ErrOverlap), store.AuditRefused, "run backup: overlap forbids"},
		{fmt.Errorf("run backup: %w", control.ErrMaintenance), store.AuditRefused, "run backup: in maintenance"},
		{fmt.Errorf("kill: %w", control.ErrFinished), store.AuditRefused, "kill: already finished"},
		{fmt.Errorf("save: %w", store.ErrUnavailable), store.AuditFailed, "the store was unavailable"},
		{context.Canceled, store.AuditFailed, "cancelled before it completed"},
		{errors.New("open /var/lib/secret: denied"), store.AuditFailed, "the core failed; its log has the details"},
	}
	for _, tt := range tests {
		outcome, text := Outcome(tt.err)
		if outcome != tt.outcome || text != tt.text {
			t.Errorf("Outcome(%v) = %q, %q; want %q, %q", tt.err, outcome, text, tt.outcome, tt.text)
		}
	}
}

func TestKillDetail(t *testing.T) {
	tests := []struct {
		signal string
		grace  time.Duration
		want   string
	}{
		{"", 0, "the job's kill policy"},
		{"SIGINT", 0, "signal SIGINT, the job's grace"},
		{"", 30 * time.Second, "the job's signal, grace 30s"},
		{"SIGINT", 90 * time.Second, "signal SIGINT, grace 1m30s"},
	}
	for _, tt := range tests {
		if got := KillDetail(tt.signal, tt.grace); got != tt.want {
			t.Errorf("KillDetail(%q, %v) = %q, want %q", tt.signal, tt.grace, got, tt.want)
		}
	}
}

// The entry of an action is written even when the request that asked for
// it has gone: the action happened.
func TestRecordOutlivesTheRequest(t *testing.T) {
	st := &appender{}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	New(st, nil, nil).Record(ctx, store.AuditEntry{By: "alice", Action: store.AuditKill, Outcome: store.AuditOK})
	if e := st.only(t); e.At.IsZero() || e.Via != ViaAPI {
		t.Errorf("entry = %+v, want a time and via api", e)
	}
	if st.ctxErr != nil {
		t.Errorf("the write's context was done (%v), want it detached from the request's", st.ctxErr)
	}
}

func TestRecordBoundsTheError(t *testing.T) {
	st := &appender{}
	New(st, nil, nil).Record(context.Background(), store.AuditEntry{Action: store.AuditReload, Outcome: store.AuditRefused,
		Error: strings.Repeat("x", 3*maxError)})
	if e := st.only(t); len(e.Error) > maxError+len("…") || !strings.HasSuffix(e.Error, "…") {
		t.Errorf("error kept %d bytes, want at most %d and an ellipsis", len(e.Error), maxError)
	}
}

// A store that fails does not fail the action: the action is done.
func TestStoreFailureKeepsTheAction(t *testing.T) {
	st := &appender{err: store.ErrUnavailable}
	c := Control(&fakeControl{}, New(st, nil, nil))
	if _, err := c.RunNow(context.Background(), "backup", "alice"); err != nil {
		t.Errorf("RunNow = %v, want the control's nil whatever the audit write did", err)
	}
}

// An action on a run of unknown id keeps an empty job.
func TestRecordUnknownRun(t *testing.T) {
	st := &appender{}
	New(st, nil, nil).Record(context.Background(), store.AuditEntry{By: "alice", Action: store.AuditKill, RunID: "nope", Outcome: store.AuditRefused})
	if e := st.only(t); e.Job != "" || e.RunID != "nope" {
		t.Errorf("entry = %+v, want the run id and no job", e)
	}
}

package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// Surfaces an action comes through (store.AuditEntry.Via).
const (
	ViaAPI    = "api"
	ViaEvents = "events"
	ViaSignal = "signal"
)

// writeTimeout bounds one entry's write. The write does not follow the
// request's context: a client that hangs up once its kill is queued must
// not take the kill's entry with it.
const writeTimeout = 5 * time.Second

// maxError bounds the error text an entry keeps; a refused configuration's
// diagnostics can be long, and the log is read on a page.
const maxError = 4000

// Appender is what the log needs of the store: appending, and reading a
// run for the job of an action that names only the run.
type Appender interface {
	AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error)
	GetRun(ctx context.Context, id string) (store.Run, error)
}

// Source is where a request came from; the surfaces put it in the
// context of the calls they make.
type Source struct {
	Via    string
	Remote string
}

type sourceKey struct{}

// WithSource returns ctx carrying src for the entries recorded under it.
func WithSource(ctx context.Context, src Source) context.Context {
	return context.WithValue(ctx, sourceKey{}, src)
}

// SourceOf returns the source in ctx; Via is ViaAPI when none is set.
func SourceOf(ctx context.Context) Source {
	src, _ := ctx.Value(sourceKey{}).(Source)
	if src.Via == "" {
		src.Via = ViaAPI
	}
	return src
}

// Log records audit entries in the store.
type Log struct {
	store Appender
	log   hclog.Logger
	now   func() time.Time
}

// New returns a log writing to s. now defaults to time.Now.
func New(s Appender, logger hclog.Logger, now func() time.Time) *Log {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if now == nil {
		now = time.Now
	}
	return &Log{store: s, log: logger, now: now}
}

// Record stores e, filling its time and, when unset, its source from ctx.
// A failed write cannot undo the action it records, so it is logged with
// the whole entry, which then survives in the core's log at least.
func (l *Log) Record(ctx context.Context, e store.AuditEntry) {
	if l == nil {
		return
	}
	if e.At.IsZero() {
		e.At = l.now().UTC()
	}
	src := SourceOf(ctx)
	if e.Via == "" {
		e.Via = src.Via
	}
	if e.Remote == "" {
		e.Remote = src.Remote
	}
	if len(e.Error) > maxError {
		e.Error = e.Error[:maxError] + "…"
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	// An action on a run names its job too, so that the job's log shows
	// its runs' kills and signals. A run that is not stored (a refused
	// kill of a wrong id) leaves the job empty.
	if e.Job == "" && e.RunID != "" {
		if run, err := l.store.GetRun(wctx, e.RunID); err == nil {
			e.Job = run.Job
		}
	}
	args := []any{"by", e.By, "action", e.Action, "via", e.Via, "remote", e.Remote, "job", e.Job,
		"run_id", e.RunID, "machine", e.Machine, "detail", e.Detail, "outcome", e.Outcome, "error", e.Error}
	id, err := l.store.AppendAudit(wctx, e)
	if err != nil {
		l.log.Error("audit entry not stored", append(args, "store_error", err)...)
		return
	}
	l.log.Debug("audit", append(args, "id", id)...)
}

// Outcome classifies an action's error: ok, refused (the core said no
// before doing anything) or failed, with the text an entry keeps.
// Failures that are not the operator's keep a generic text, because
// theirs may name internals (a DSN with its password); the core's log
// has them.
func Outcome(err error) (outcome, text string) {
	if err == nil {
		return store.AuditOK, ""
	}
	var ce *control.ConfigError
	if errors.As(err, &ce) {
		return store.AuditRefused, ce.Error()
	}
	for _, refused := range []error{control.ErrUnknownJob, control.ErrUnknownRun, control.ErrUnknownMachine,
		control.ErrOverlap, control.ErrFinished, control.ErrBadRequest, control.ErrMaintenance} {
		if errors.Is(err, refused) {
			return store.AuditRefused, err.Error()
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return store.AuditFailed, "cancelled before it completed"
	}
	if errors.Is(err, store.ErrUnavailable) {
		return store.AuditFailed, "the store was unavailable"
	}
	return store.AuditFailed, "the core failed; its log has the details"
}

// Control wraps c so that every action through it is recorded in l;
// reads pass through unrecorded.
func Control(c control.Control, l *Log) control.Control {
	return &audited{Control: c, log: l}
}

type audited struct {
	control.Control
	log *Log
}

func (a *audited) record(ctx context.Context, e store.AuditEntry, err error) {
	e.Outcome, e.Error = Outcome(err)
	a.log.Record(ctx, e)
}

func (a *audited) RunNow(ctx context.Context, job, by string) (string, error) {
	id, err := a.Control.RunNow(ctx, job, by)
	a.record(ctx, store.AuditEntry{By: by, Action: store.AuditRun, Job: job, RunID: id}, err)
	return id, err
}

func (a *audited) Kill(ctx context.Context, req control.KillRequest) ([]string, error) {
	ids, err := a.Control.Kill(ctx, req)
	e := store.AuditEntry{By: req.By, Action: store.AuditKill, Job: req.Job, RunID: req.RunID, Machine: req.Machine,
		Detail: KillDetail(req.Signal, req.Grace)}
	// A job's kill reaches every run in flight: name them, since the
	// entry has room for one.
	if req.RunID == "" && len(ids) > 0 {
		e.Detail += "; runs " + strings.Join(ids, ", ")
	}
	a.record(ctx, e, err)
	return ids, err
}

// KillDetail says which termination policy a kill asked for.
func KillDetail(signal string, grace time.Duration) string {
	switch {
	case signal == "" && grace == 0:
		return "the job's kill policy"
	case grace == 0:
		return "signal " + signal + ", the job's grace"
	case signal == "":
		return "the job's signal, grace " + grace.String()
	}
	return fmt.Sprintf("signal %s, grace %s", signal, grace)
}

func (a *audited) Signal(ctx context.Context, req control.SignalRequest) error {
	err := a.Control.Signal(ctx, req)
	a.record(ctx, store.AuditEntry{By: req.By, Action: store.AuditSignal, RunID: req.RunID, Machine: req.Machine,
		Detail: req.Signal}, err)
	return err
}

func (a *audited) SetEnabled(ctx context.Context, job string, enabled bool, by string) error {
	err := a.Control.SetEnabled(ctx, job, enabled, by)
	action := store.AuditDisable
	if enabled {
		action = store.AuditEnable
	}
	a.record(ctx, store.AuditEntry{By: by, Action: action, Job: job}, err)
	return err
}

func (a *audited) ResetEnabled(ctx context.Context, job, by string) error {
	err := a.Control.ResetEnabled(ctx, job, by)
	a.record(ctx, store.AuditEntry{By: by, Action: store.AuditReset, Job: job}, err)
	return err
}

func (a *audited) Reload(ctx context.Context, by string) error {
	err := a.Control.Reload(ctx, by)
	a.record(ctx, store.AuditEntry{By: by, Action: store.AuditReload}, err)
	return err
}

func (a *audited) SetMaintenance(ctx context.Context, global bool, machines []string, by string) (control.MaintenanceState, error) {
	m, err := a.Control.SetMaintenance(ctx, global, machines, by)
	a.record(ctx, store.AuditEntry{By: by, Action: store.AuditMaintenanceSet, Detail: MaintenanceDetail(global, machines)}, err)
	return m, err
}

// MaintenanceDetail says what a maintenance override asked for.
func MaintenanceDetail(global bool, machines []string) string {
	d := "global off"
	if global {
		d = "global on"
	}
	if len(machines) == 0 {
		return d + "; no machines"
	}
	return d + "; machines " + strings.Join(machines, ", ")
}

func (a *audited) ResetMaintenance(ctx context.Context, by string) (control.MaintenanceState, error) {
	m, err := a.Control.ResetMaintenance(ctx, by)
	a.record(ctx, store.AuditEntry{By: by, Action: store.AuditMaintenanceReset}, err)
	return m, err
}

package api

import (
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Run list limits.
const (
	runsDefault = 50
	runsMax     = 1000
)

// statusActive is a status filter beside the real statuses: every run not
// yet final, which is what a "what is running" view asks for.
const statusActive = "active"

var runStatuses = []string{store.StatusRunning, store.StatusPending, store.StatusSucceeded,
	store.StatusFailed, store.StatusTimeout, store.StatusKilled, store.StatusLost,
	store.StatusNotStarted, store.StatusError, store.StatusCancelled, store.StatusSkipped, statusActive}

type machineJSON struct {
	Machine        string  `json:"machine"`
	Status         string  `json:"status"`
	ExitCode       *int    `json:"exit_code"`
	Reason         string  `json:"reason"`
	SignalName     string  `json:"signal_name"`
	Error          string  `json:"error"`
	PID            *int    `json:"pid"`
	DispatchedAt   *string `json:"dispatched_at"`
	ConnectedAt    *string `json:"connected_at"`
	StartedAt      *string `json:"started_at"`
	FinishedAt     *string `json:"finished_at"`
	LastHeartbeat  *string `json:"last_heartbeat"`
	WrapperVersion string  `json:"wrapper_version"`
	Protocol       int     `json:"protocol"`
	OutputBytes    int64   `json:"output_bytes"`
	// OutputDroppedBytes is how much of output_bytes the output cap
	// dropped from the middle (max_output_per_machine).
	OutputDroppedBytes int64  `json:"output_dropped_bytes"`
	LateExitCode       *int   `json:"late_exit_code"`
	LateReason         string `json:"late_reason,omitempty"`
}

type runJSON struct {
	ID           string  `json:"id"`
	Job          string  `json:"job"`
	Trigger      string  `json:"trigger"`
	ScheduledFor *string `json:"scheduled_for"`
	StartedAt    *string `json:"started_at"`
	FinishedAt   *string `json:"finished_at"`
	Status       string  `json:"status"`
	Reason       string  `json:"reason"`
	RequestedBy  string  `json:"requested_by"`
	KilledBy     string  `json:"killed_by"`
	KilledAt     *string `json:"killed_at"`
	// SoftTimeoutPassed says the run was still going at its job's
	// soft_timeout (http-api.md); that is not a status.
	SoftTimeoutPassed bool          `json:"soft_timeout_passed"`
	Actions           []actionJSON  `json:"actions"`
	Machines          []machineJSON `json:"machines"`
}

// actionJSON is one operator action on a run: who asked for what, when.
type actionJSON struct {
	Kind    string  `json:"kind"`
	Machine string  `json:"machine,omitempty"`
	Signal  string  `json:"signal,omitempty"`
	Grace   *string `json:"grace"`
	By      string  `json:"by"`
	At      *string `json:"at"`
}

func toRunJSON(run store.Run) runJSON {
	out := runJSON{
		ID:           run.ID,
		Job:          run.Job,
		Trigger:      run.Trigger,
		ScheduledFor: ts(run.ScheduledFor),
		StartedAt:    ts(run.StartedAt),
		FinishedAt:   ts(run.FinishedAt),
		Status:       run.Status,
		Reason:       run.Reason,
		RequestedBy:  run.RequestedBy,
		KilledBy:     run.KilledBy,
		KilledAt:     ts(run.KilledAt),
		Actions:      make([]actionJSON, 0, len(run.Actions)),
		Machines:     make([]machineJSON, 0, len(run.Machines)),
	}
	for _, a := range run.Actions {
		if a.Kind == store.ActionSoftTimeout {
			// The core's own record, not an operator's action.
			out.SoftTimeoutPassed = true
			continue
		}
		aj := actionJSON{Kind: a.Kind, Machine: a.Machine, Signal: a.Signal, By: a.By, At: ts(a.At)}
		if a.Grace > 0 {
			g := wire.FormatDuration(a.Grace)
			aj.Grace = &g
		}
		out.Actions = append(out.Actions, aj)
	}
	for _, m := range run.Machines {
		mj := machineJSON{
			Machine:            m.Machine,
			Status:             m.Status,
			ExitCode:           m.ExitCode,
			Reason:             m.Reason,
			SignalName:         m.SignalName,
			Error:              m.Error,
			DispatchedAt:       ts(m.DispatchedAt),
			ConnectedAt:        ts(m.ConnectedAt),
			StartedAt:          ts(m.StartedAt),
			FinishedAt:         ts(m.FinishedAt),
			LastHeartbeat:      ts(m.LastHeartbeat),
			WrapperVersion:     m.WrapperVersion,
			Protocol:           m.Protocol,
			OutputBytes:        m.OutputBytes,
			OutputDroppedBytes: m.OutputDropped,
			LateExitCode:       m.LateExitCode,
			LateReason:         m.LateReason,
		}
		if m.PID != 0 {
			// 0 is "not known yet", never a real process.
			pid := m.PID
			mj.PID = &pid
		}
		out.Machines = append(out.Machines, mj)
	}
	return out
}

// runErr words an unknown-run error with the id the client sent.
func runErr(id string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, control.ErrUnknownRun) || errors.Is(err, store.ErrNotFound) {
		return errorf(http.StatusNotFound, CodeRunNotFound, "There is no run %q.", id)
	}
	return err
}

// machineErr words an unknown-machine error; an unknown run stays one.
func machineErr(id, machine string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, control.ErrUnknownMachine) {
		return errorf(http.StatusNotFound, CodeMachineNotFound, "Run %q has no machine %q.", id, machine)
	}
	return runErr(id, err)
}

func (a *API) listRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.RunFilter{Job: q.Get("job"), Limit: runsDefault}
	if s := q.Get("status"); s != "" {
		if !slices.Contains(runStatuses, s) {
			a.writeError(w, badParam("status", s, "want one of running, pending, succeeded, failed, timeout, killed, lost, not_started, error, cancelled, skipped, active"))
			return
		}
		if s == statusActive {
			f.Active = true
		} else {
			f.Status = s
		}
	}
	limit, e := countParam(q, "limit", runsDefault, runsMax)
	if e != nil {
		a.writeError(w, e)
		return
	}
	f.Limit = limit
	if v := q.Get("before"); v != "" {
		t, err := a.before(r, v)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		f.Before = t
	}
	runs, err := a.store.ListRuns(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]runJSON, 0, len(runs))
	for _, run := range runs {
		out = append(out, toRunJSON(run))
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"runs": out})
}

// before reads the paging bound: an RFC 3339 time, or the id of the last
// run of the previous page, whose start then bounds the next.
func (a *API) before(r *http.Request, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	run, err := a.store.GetRun(r.Context(), v)
	if errors.Is(err, store.ErrNotFound) {
		return time.Time{}, badParam("before", v, "want an RFC 3339 time (2024-05-01T12:00:00Z) or a run id")
	}
	if err != nil {
		return time.Time{}, err
	}
	if !run.StartedAt.IsZero() {
		return run.StartedAt, nil
	}
	return run.ScheduledFor, nil
}

func (a *API) getRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	run, err := a.store.GetRun(r.Context(), id)
	if err != nil {
		a.fail(w, r, runErr(id, err))
		return
	}
	a.writeJSON(w, http.StatusOK, toRunJSON(run))
}

func (a *API) killRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	a.kill(w, r, control.KillRequest{RunID: id}, func(err error) error { return runErr(id, err) })
}

func (a *API) killMachine(w http.ResponseWriter, r *http.Request) {
	id, m := r.PathValue("id"), r.PathValue("machine")
	a.kill(w, r, control.KillRequest{RunID: id, Machine: m}, func(err error) error { return machineErr(id, m, err) })
}

// kill is every kill endpoint: the target comes from the path, the
// optional overrides from the body.
func (a *API) kill(w http.ResponseWriter, r *http.Request, req control.KillRequest, wrap func(error) error) {
	data, err := readBody(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ov, e := parseKillBody(data)
	if e != nil {
		a.writeError(w, e)
		return
	}
	req.Signal, req.Grace, req.By = ov.Signal, ov.Grace, who(r).Name
	ids, err := a.control.Kill(r.Context(), req)
	if err != nil {
		a.fail(w, r, wrap(err))
		return
	}
	if ids == nil {
		ids = []string{}
	}
	a.log.Info("operator kill", "job", req.Job, "run_id", req.RunID, "machine", req.Machine,
		"signal", req.Signal, "grace_ms", req.Grace.Milliseconds(), "by", req.By, "run_count", len(ids))
	a.writeJSON(w, http.StatusAccepted, map[string]any{"runs": ids})
}

func (a *API) signalRun(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	data, err := readBody(w, r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	b, e := parseSignalBody(data)
	if e != nil {
		a.writeError(w, e)
		return
	}
	req := control.SignalRequest{RunID: id, Machine: b.Machine, Signal: b.Signal, By: who(r).Name}
	if err := a.control.Signal(r.Context(), req); err != nil {
		a.fail(w, r, machineErr(id, b.Machine, err))
		return
	}
	a.log.Info("operator signal", "run_id", id, "machine", b.Machine, "signal", b.Signal, "by", req.By)
	a.writeJSON(w, http.StatusAccepted, map[string]string{"run_id": id, "machine": b.Machine, "signal": b.Signal})
}

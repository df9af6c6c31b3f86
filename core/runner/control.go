package runner

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

var _ control.Control = (*Runner)(nil)

// Jobs lists every job with what the core knows of it now.
func (r *Runner) Jobs(ctx context.Context) ([]control.JobState, error) {
	var out []control.JobState
	if err := r.do(ctx, func(st *state) {
		for _, j := range st.conf.Jobs {
			out = append(out, r.jobState(st, j))
		}
	}); err != nil {
		return nil, err
	}
	return r.withRunning(ctx, out)
}

// Job returns one job.
func (r *Runner) Job(ctx context.Context, name string) (control.JobState, error) {
	var (
		js control.JobState
		ok bool
	)
	if err := r.do(ctx, func(st *state) {
		if j := st.conf.Job(name); j != nil {
			js, ok = r.jobState(st, j), true
		}
	}); err != nil {
		return js, err
	}
	if !ok {
		return js, fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
	}
	out, err := r.withRunning(ctx, []control.JobState{js})
	if err != nil {
		return js, err
	}
	return out[0], nil
}

func (r *Runner) jobState(st *state, j *config.Job) control.JobState {
	js := control.JobState{Job: j, Enabled: st.enabled(j), EnabledInConfig: j.Enabled}
	if o, ok := st.overrides[j.Name]; ok {
		js.OverrideBy, js.OverrideAt = o.SetBy, o.SetAt
	}
	if js.Enabled {
		js.NextRun = r.cfg.Scheduler.NextRun(j.Name)
	}
	return js
}

// withRunning fills Running from the store, outside the loop.
func (r *Runner) withRunning(ctx context.Context, jobs []control.JobState) ([]control.JobState, error) {
	active, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Active: true, Limit: 10000})
	if err != nil {
		return nil, fmt.Errorf("list running runs: %w", err)
	}
	byJob := map[string][]string{}
	for _, run := range active {
		byJob[run.Job] = append(byJob[run.Job], run.ID)
	}
	for i := range jobs {
		ids := byJob[jobs[i].Job.Name]
		sort.Strings(ids)
		jobs[i].Running = ids
	}
	return jobs, nil
}

// Kill queues kill commands for a job's running runs, a run, or one
// machine of a run.
func (r *Runner) Kill(ctx context.Context, req control.KillRequest) ([]string, error) {
	if req.Signal != "" {
		sig, ok := wire.CanonicalSignal(req.Signal)
		if !ok {
			return nil, fmt.Errorf("unknown signal %q: %w", req.Signal, control.ErrBadRequest)
		}
		req.Signal = sig
	}
	if req.Grace < 0 {
		return nil, fmt.Errorf("negative grace: %w", control.ErrBadRequest)
	}
	var runs []store.Run
	switch {
	case req.RunID != "":
		run, err := r.liveRun(ctx, req.RunID, req.Machine)
		if err != nil {
			return nil, err
		}
		runs = []store.Run{run}
	case req.Job != "":
		if _, err := r.Job(ctx, req.Job); err != nil {
			return nil, err
		}
		active, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Job: req.Job, Active: true, Limit: 10000})
		if err != nil {
			return nil, fmt.Errorf("list running runs of %s: %w", req.Job, err)
		}
		runs = active
	default:
		return nil, fmt.Errorf("kill needs a job or a run: %w", control.ErrBadRequest)
	}
	ids := make([]string, 0, len(runs))
	now := r.cfg.Now().UTC()
	for _, run := range runs {
		u := store.RunUpdate{AddAction: &store.Action{Kind: killq.Kill, Machine: req.Machine, Signal: req.Signal,
			Grace: req.Grace, By: req.By, At: now}}
		if run.KilledBy == "" {
			// killed_by names the first to ask; Actions keeps every ask.
			u.KilledBy, u.KilledAt = &req.By, &now
		}
		if err := r.cfg.Store.UpdateRun(ctx, run.ID, u); err != nil {
			return ids, fmt.Errorf("record kill of %s: %w", run.ID, err)
		}
		r.cfg.Publish(events.Event{Kind: events.RunUpdated, Job: run.Job, RunID: run.ID, Status: run.Status})
		r.cfg.Kills.Push(killq.Request{Kind: killq.Kill, RunID: run.ID, Machine: req.Machine,
			Signal: req.Signal, Grace: req.Grace, By: req.By, At: now})
		// A run waiting for its turn or its next batch reads the kill now.
		_ = r.do(ctx, func(st *state) {
			if a := st.find(run.ID); a != nil {
				if req.Machine == "" {
					a.killed.Store(true)
				}
				poke(a)
			}
		})
		r.log.Info("kill queued", "job", run.Job, "run_id", run.ID, "machine", req.Machine, "by", req.By,
			"signal", req.Signal, "grace_ms", req.Grace.Milliseconds())
		ids = append(ids, run.ID)
	}
	return ids, nil
}

// liveRun returns a run (and checks its machine) that is not finished.
func (r *Runner) liveRun(ctx context.Context, id, machine string) (store.Run, error) {
	run, err := r.cfg.Store.GetRun(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return run, fmt.Errorf("run %q: %w", id, control.ErrUnknownRun)
	}
	if err != nil {
		return run, fmt.Errorf("read run %s: %w", id, err)
	}
	if machine != "" {
		found := false
		for _, m := range run.Machines {
			if m.Machine == machine {
				found = true
				if store.Final(m.Status) && m.Status != store.StatusLost {
					return run, fmt.Errorf("run %s on %s is %s: %w", id, machine, m.Status, control.ErrFinished)
				}
			}
		}
		if !found {
			return run, fmt.Errorf("machine %q of run %s: %w", machine, id, control.ErrUnknownMachine)
		}
		return run, nil
	}
	if store.Final(run.Status) {
		return run, fmt.Errorf("run %s is %s: %w", id, run.Status, control.ErrFinished)
	}
	return run, nil
}

// Signal queues a signal for a run's process trees.
func (r *Runner) Signal(ctx context.Context, req control.SignalRequest) error {
	sig, ok := wire.CanonicalSignal(req.Signal)
	if !ok {
		return fmt.Errorf("unknown signal %q: %w", req.Signal, control.ErrBadRequest)
	}
	if sig == "SIGKILL" {
		return fmt.Errorf("SIGKILL is not a signal command, use kill: %w", control.ErrBadRequest)
	}
	run, err := r.liveRun(ctx, req.RunID, req.Machine)
	if err != nil {
		return err
	}
	now := r.cfg.Now().UTC()
	act := &store.Action{Kind: killq.Signal, Machine: req.Machine, Signal: sig, By: req.By, At: now}
	if err := r.cfg.Store.UpdateRun(ctx, run.ID, store.RunUpdate{AddAction: act}); err != nil {
		return fmt.Errorf("record signal to %s: %w", run.ID, err)
	}
	r.cfg.Publish(events.Event{Kind: events.RunUpdated, Job: run.Job, RunID: run.ID, Status: run.Status})
	r.cfg.Kills.Push(killq.Request{Kind: killq.Signal, RunID: run.ID, Machine: req.Machine, Signal: sig,
		By: req.By, At: now})
	r.log.Info("signal queued", "job", run.Job, "run_id", run.ID, "machine", req.Machine, "signal", sig, "by", req.By)
	return nil
}

// SetEnabled stores an enable override and reschedules.
func (r *Runner) SetEnabled(ctx context.Context, name string, enabled bool, by string) error {
	o := store.JobOverride{Job: name, Enabled: enabled, SetBy: by, SetAt: r.cfg.Now().UTC()}
	if _, err := r.Job(ctx, name); err != nil {
		return err
	}
	if err := r.cfg.Store.SetOverride(ctx, o); err != nil {
		return fmt.Errorf("store override of %s: %w", name, err)
	}
	r.log.Info("job enable override set", "job", name, "enabled", enabled, "by", by)
	return r.applyOverride(ctx, name, &o)
}

// ResetEnabled drops the override: the HCL's enabled holds again.
func (r *Runner) ResetEnabled(ctx context.Context, name, by string) error {
	if _, err := r.Job(ctx, name); err != nil {
		return err
	}
	if err := r.cfg.Store.DeleteOverride(ctx, name); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("drop override of %s: %w", name, err)
	}
	r.log.Info("job enable override reset", "job", name, "by", by)
	return r.applyOverride(ctx, name, nil)
}

func (r *Runner) applyOverride(ctx context.Context, name string, o *store.JobOverride) error {
	err := r.do(ctx, func(st *state) {
		if o == nil {
			delete(st.overrides, name)
		} else {
			st.overrides[name] = *o
		}
		r.reschedule(st)
	})
	r.cfg.Publish(events.Event{Kind: events.JobUpdated, Job: name})
	return err
}

// NextRuns lists the job's next n fire times.
func (r *Runner) NextRuns(ctx context.Context, name string, n int) ([]control.Fire, error) {
	js, err := r.Job(ctx, name)
	if err != nil {
		return nil, err
	}
	s, err := jobSchedule(js.Job)
	if err != nil {
		return nil, err
	}
	fires := schedule.NextN(s, js.Job.Location, r.cfg.Now(), n)
	out := make([]control.Fire, len(fires))
	for i, f := range fires {
		out[i] = control.Fire{At: f.At, DST: f.DST}
	}
	return out, nil
}

// Reload re-reads the configuration; a bad one leaves the running one.
func (r *Runner) Reload(ctx context.Context, by string) error {
	conf, err := r.cfg.Load()
	if err != nil {
		return err
	}
	if err := r.do(ctx, func(st *state) {
		st.conf = conf
		r.reschedule(st)
	}); err != nil {
		return err
	}
	r.log.Info("configuration reloaded", "by", by, "jobs", len(conf.Jobs))
	r.cfg.Publish(events.Event{Kind: events.JobUpdated})
	return nil
}

// Maintenance returns the maintenance in force.
func (r *Runner) Maintenance(ctx context.Context) (control.MaintenanceState, error) {
	var m control.MaintenanceState
	err := r.do(ctx, func(st *state) { m = st.maintenanceNow() })
	return m, err
}

// SetMaintenance stores the API's override of the HCL maintenance block;
// it holds across restarts and reloads until ResetMaintenance. Runs
// already started keep going; the next ones see it.
func (r *Runner) SetMaintenance(ctx context.Context, global bool, machines []string, by string) (control.MaintenanceState, error) {
	for _, m := range machines {
		if strings.TrimSpace(m) == "" {
			return control.MaintenanceState{}, fmt.Errorf("an empty machine name: %w", control.ErrBadRequest)
		}
	}
	m := store.Maintenance{Global: global, Machines: sortedSet(machines), SetBy: by, SetAt: r.cfg.Now().UTC()}
	if err := r.cfg.Store.SetMaintenance(ctx, m); err != nil {
		return control.MaintenanceState{}, fmt.Errorf("store the maintenance override: %w", err)
	}
	r.log.Info("maintenance override set", "global", global, "machines", strings.Join(m.Machines, " "), "by", by)
	return r.applyMaintenance(ctx, &m)
}

// ResetMaintenance drops the override: the HCL's block holds again.
func (r *Runner) ResetMaintenance(ctx context.Context, by string) (control.MaintenanceState, error) {
	if err := r.cfg.Store.DeleteMaintenance(ctx); err != nil {
		return control.MaintenanceState{}, fmt.Errorf("drop the maintenance override: %w", err)
	}
	r.log.Info("maintenance override reset", "by", by)
	return r.applyMaintenance(ctx, nil)
}

func (r *Runner) applyMaintenance(ctx context.Context, m *store.Maintenance) (control.MaintenanceState, error) {
	var now control.MaintenanceState
	err := r.do(ctx, func(st *state) {
		st.maintenance = m
		now = st.maintenanceNow()
	})
	r.cfg.Publish(events.Event{Kind: events.MaintenanceUpdated})
	return now, err
}

// jobSchedule is the job's schedule with its zone and DST policies, as
// config.Load binds it; a job built by hand (tests) carries only the text.
func jobSchedule(j *config.Job) (schedule.Schedule, error) {
	if j.ParsedSchedule != nil {
		return j.ParsedSchedule, nil
	}
	p, err := schedule.Parse(j.Schedule)
	if err != nil {
		return nil, fmt.Errorf("parse schedule of %s: %w", j.Name, err)
	}
	s, err := schedule.WithDST(p, j.Location, j.DSTGap, j.DSTRepeat)
	if err != nil {
		return nil, fmt.Errorf("apply the daylight-saving policies of %s: %w", j.Name, err)
	}
	return s, nil
}

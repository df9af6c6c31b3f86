package runner

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/notify"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// watchSoftTimeout records, when the run is still going once its job's
// soft_timeout passed since it started, that it passed it (the run's
// soft_timeout_passed), and notifies soft_timeout, in one store update.
// It returns at once for a job with no soft_timeout.
func (r *Runner) watchSoftTimeout(job *config.Job, runID string, started time.Time) {
	if job == nil || job.SoftTimeout <= 0 {
		return
	}
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		wait := time.NewTimer(time.Until(started.Add(job.SoftTimeout)))
		defer wait.Stop()
		select {
		case <-wait.C:
		case <-r.stopped:
			return // the next core watches again, from the run's start
		}
		ctx := context.Background()
		run, err := r.cfg.Store.GetRun(ctx, runID)
		if err != nil {
			r.log.Warn("read a run past its soft timeout", "run_id", runID, "error", err)
			return
		}
		if store.Final(run.Status) {
			return
		}
		for _, a := range run.Actions {
			if a.Kind == store.ActionSoftTimeout {
				return // recorded by this core before a restart
			}
		}
		r.log.Info("run past its soft timeout", "job", job.Name, "run_id", runID, "soft_timeout", wire.FormatDuration(job.SoftTimeout))
		now := r.cfg.Now().UTC()
		ns, err := notify.ForSoftTimeout(job, run, r.cfg.CoreURL, now)
		if err != nil {
			r.log.Error("notifications of a soft timeout", "run_id", runID, "error", err)
		}
		u := store.RunUpdate{AddAction: &store.Action{Kind: store.ActionSoftTimeout, By: "core", At: now}, Notifications: ns}
		if err := r.cfg.Store.UpdateRun(ctx, runID, u); err != nil {
			r.log.Error("record a soft timeout", "run_id", runID, "error", err)
			return
		}
		if len(ns) > 0 && r.cfg.Notified != nil {
			r.cfg.Notified()
		}
		r.cfg.Publish(events.Event{Kind: events.RunUpdated, Job: job.Name, RunID: runID, Status: run.Status})
	}()
}

// missedSlot notifies missed for a scheduled slot that passed without a
// run (overlap skip, global maintenance), once per slot.
func (r *Runner) missedSlot(ctx context.Context, job *config.Job, slot time.Time, why error) {
	if !wantsAny(job, "missed") {
		return
	}
	msg := fmt.Sprintf("%s did not run for its slot %s: %v", job.Name, slot.UTC().Format(time.RFC3339), why)
	ns, err := notify.ForMissed(job, "slot/"+strconv.FormatInt(slot.Unix(), 10), slot, msg, r.cfg.CoreURL, r.cfg.Now())
	r.enqueue(ctx, "a missed slot", ns, err)
}

// deadman checks every DeadmanInterval that each job with an expect
// block succeeded within its max_gap, and notifies missed once per gap
// (the id names the last success, or the core's start when the job
// never succeeded, so a restart does not repeat it).
func (r *Runner) deadman(ctx context.Context, started time.Time) {
	tick := time.NewTicker(r.cfg.DeadmanInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		var jobs []*config.Job
		if err := r.do(ctx, func(st *state) {
			for _, j := range st.conf.Jobs {
				if j.Expect != nil && j.Expect.MaxGap > 0 {
					jobs = append(jobs, j)
				}
			}
		}); err != nil {
			return
		}
		now := r.cfg.Now()
		for _, j := range jobs {
			runs, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Job: j.Name, Status: store.StatusSucceeded, Limit: 1})
			if err != nil {
				r.log.Warn("read the last success for the dead-man check", "job", j.Name, "error", err)
				continue
			}
			since, what := started, "since the core started"
			if len(runs) > 0 {
				since, what = runs[0].FinishedAt, "since "+runs[0].FinishedAt.UTC().Format(time.RFC3339)
			}
			if now.Sub(since) < j.Expect.MaxGap {
				continue
			}
			msg := fmt.Sprintf("%s has not succeeded %s, longer than its expect max_gap of %s", j.Name, what, wire.FormatDuration(j.Expect.MaxGap))
			ns, err := notify.ForMissed(j, "gap/"+strconv.FormatInt(since.UnixNano(), 10), since.Add(j.Expect.MaxGap), msg, r.cfg.CoreURL, now)
			r.enqueue(ctx, "a dead-man check", ns, err)
		}
	}
}

func wantsAny(job *config.Job, kind string) bool {
	for _, n := range job.Notify {
		for _, k := range n.On {
			if k == kind {
				return true
			}
		}
	}
	return false
}

// disabledWatch waits for the first slot a disabled job misses.
type disabledWatch struct {
	timer *time.Timer
	// told is set once the missed slot was notified: a job disabled for a
	// month must not notify every slot it misses, once is enough until it
	// is enabled again.
	told bool
}

// watchDisabled keeps, on the loop, one watch per disabled job whose
// notify blocks ask for missed: at the first slot that passes while the
// job is disabled, missed is notified once (by a core: a core restarted
// while the job stays disabled notifies again at its first slot). A job
// enabled again drops its watch. Slots that pass under global maintenance
// or that overlap skips are notified by fireSlot, each.
func (r *Runner) watchDisabled(st *state) {
	seen := map[string]bool{}
	for _, j := range st.conf.Jobs {
		if st.enabled(j) || !wantsAny(j, "missed") {
			continue
		}
		s, err := jobSchedule(j)
		if err != nil || s.Manual() {
			continue
		}
		seen[j.Name] = true
		if _, ok := st.disabled[j.Name]; ok {
			continue
		}
		slot := s.Next(r.cfg.Now())
		if slot.IsZero() {
			continue
		}
		w := &disabledWatch{}
		name := j.Name
		w.timer = time.AfterFunc(time.Until(slot), func() {
			_ = r.do(context.Background(), func(st *state) {
				if st.disabled[name] != w || w.told {
					return // enabled again meanwhile, or replaced
				}
				w.told = true
				job := st.conf.Job(name)
				if job == nil || st.enabled(job) {
					return
				}
				r.work.Add(1)
				go func() {
					defer r.work.Done()
					msg := fmt.Sprintf("%s is disabled: its slot %s passed without a run, and its next slots will until it is enabled",
						name, slot.UTC().Format(time.RFC3339))
					ns, err := notify.ForMissed(job, "disabled/"+strconv.FormatInt(slot.Unix(), 10), slot, msg, r.cfg.CoreURL, r.cfg.Now())
					r.enqueue(context.Background(), "a disabled job's missed slot", ns, err)
				}()
			})
		})
		st.disabled[j.Name] = w
	}
	for name, w := range st.disabled {
		if !seen[name] {
			w.timer.Stop()
			delete(st.disabled, name)
		}
	}
}

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
	gaps := newGapWatch(started)
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		var jobs []*config.Job
		if err := r.do(ctx, func(st *state) { jobs = gapJobs(st.conf.Jobs) }); err != nil {
			return
		}
		r.checkGaps(ctx, gaps, jobs, r.cfg.Now())
	}
}

// gapJobs are the jobs the dead-man check watches: those with an expect
// block whose gap would notify someone (a notify block on missed).
func gapJobs(jobs []*config.Job) []*config.Job {
	var out []*config.Job
	for _, j := range jobs {
		if j.Expect != nil && j.Expect.MaxGap > 0 && wantsAny(j, "missed") {
			out = append(out, j)
		}
	}
	return out
}

// gapWatch is what the dead-man check remembers from one check to the
// next: by job, the last success it read (or the core's start). A later
// read can only find a later one (runs are listed newest first, and a run
// that succeeds after a read finishes after it), so until max_gap has
// passed since it the job cannot be overdue, and is not read: with 10,000
// jobs expecting a daily success, a check reads the few whose gap ends,
// not 10,000 runs a minute. A job that is overdue is read at every check,
// for the success that ends its gap. (Retention pruning the last success,
// which only a retention shorter than max_gap allows, is the exception:
// its gap is then told once max_gap has passed since that success.)
type gapWatch struct {
	started time.Time
	since   map[string]time.Time
}

func newGapWatch(started time.Time) *gapWatch {
	return &gapWatch{started: started, since: map[string]time.Time{}}
}

// checkGaps is one dead-man check of jobs at now.
func (r *Runner) checkGaps(ctx context.Context, w *gapWatch, jobs []*config.Job, now time.Time) {
	checked := make(map[string]bool, len(jobs))
	for _, j := range jobs {
		checked[j.Name] = true
		if s, ok := w.since[j.Name]; ok && now.Sub(s) < j.Expect.MaxGap {
			continue
		}
		runs, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Job: j.Name, Status: store.StatusSucceeded, Limit: 1})
		if err != nil {
			r.log.Warn("read the last success for the dead-man check", "job", j.Name, "error", err)
			continue
		}
		since, what := w.started, "since the core started"
		if len(runs) > 0 {
			since, what = runs[0].FinishedAt, "since "+runs[0].FinishedAt.UTC().Format(time.RFC3339)
		}
		w.since[j.Name] = since
		if now.Sub(since) < j.Expect.MaxGap {
			continue
		}
		msg := fmt.Sprintf("%s has not succeeded %s, longer than its expect max_gap of %s", j.Name, what, wire.FormatDuration(j.Expect.MaxGap))
		ns, err := notify.ForMissed(j, "gap/"+strconv.FormatInt(since.UnixNano(), 10), since.Add(j.Expect.MaxGap), msg, r.cfg.CoreURL, now)
		r.enqueue(ctx, "a dead-man check", ns, err)
	}
	// A job no longer checked (removed, or its expect block or its
	// missed notification gone) is read afresh if it comes back.
	for name := range w.since {
		if !checked[name] {
			delete(w.since, name)
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

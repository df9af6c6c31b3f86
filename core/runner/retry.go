package runner

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// maxRetryWait bounds the doubling of a retry's back-off.
const maxRetryWait = 24 * time.Hour

// retryable reports whether a machine's end is worth running again: the
// job failed, timed out, did not start, or the machine could not be
// reached. A killed machine was stopped on purpose, a lost one may still
// be running, and cancelled and skipped ones never ran.
func retryable(status string) bool {
	switch status {
	case store.StatusFailed, store.StatusTimeout, store.StatusNotStarted, store.StatusError:
		return true
	}
	return false
}

// retryOf is what a retry run's RequestedBy says: which attempt, of how
// many, retries which run.
func retryOf(n, of int, runID string) string { return fmt.Sprintf("retry %d/%d of %s", n, of, runID) }

// retryAttempt is how many retries led to run: 0 for a run that is not a
// retry.
func retryAttempt(run store.Run) int {
	if run.Trigger != store.TriggerRetry {
		return 0
	}
	var n, of int
	var id string
	if _, err := fmt.Sscanf(run.RequestedBy, "retry %d/%d of %s", &n, &of, &id); err != nil {
		return 0
	}
	return n
}

// scheduleRetry records, for a run that just ended with machines worth
// running again, the retry run of those machines (trigger retry, the
// run's own spec), its machines queued until the back-off has passed:
// job.Retry.Backoff, doubled at each further attempt. The retry counts as
// the job running meanwhile, for overlap. A core stopped during the
// back-off leaves the machines queued, and the next core launches them
// (see resumeRun).
func (r *Runner) scheduleRetry(ctx context.Context, job *config.Job, run store.Run) {
	if job == nil || job.Retry == nil || job.Retry.Attempts <= 0 {
		return
	}
	var again []store.Machine
	for _, m := range run.Machines {
		if retryable(m.Status) {
			again = append(again, m)
		}
	}
	n := retryAttempt(run) + 1
	if len(again) == 0 || n > job.Retry.Attempts {
		return
	}
	now := r.cfg.Now().UTC()
	wait := job.Retry.Backoff
	for range n - 1 {
		wait = min(2*wait, maxRetryWait)
	}
	at := now.Add(wait)
	var (
		a        *activeRun
		deadline time.Duration
		dup      bool
	)
	if err := r.do(ctx, func(st *state) {
		// Two machines' ends may finalize the run at once: one retry.
		if st.retried[run.ID] {
			dup = true
			return
		}
		st.retried[run.ID] = true
		a = &activeRun{id: newRunID(now), success: job.Success, changed: make(chan struct{}, 1)}
		st.active[job.Name] = append(st.active[job.Name], a)
		deadline = st.conf.Core.ConnectDeadline
	}); err != nil || dup {
		return
	}
	reason := hub.QueuedPrefix + "retry at " + at.Format(time.RFC3339)
	retry := store.Run{ID: a.id, Job: run.Job, Trigger: store.TriggerRetry, ScheduledFor: run.ScheduledFor, StartedAt: now,
		Status: store.StatusRunning, RequestedBy: retryOf(n, job.Retry.Attempts, run.ID), Spec: run.Spec, Reason: reason}
	rows := make([]store.Machine, len(again))
	names := make([]string, len(again))
	for i, m := range again {
		rows[i] = store.Machine{RunID: a.id, Machine: m.Machine, Status: store.StatusPending, Reason: reason,
			Protocol: m.Protocol, OutputCap: m.OutputCap}
		names[i] = m.Machine
	}
	if err := r.cfg.Store.CreateRun(ctx, retry); err != nil {
		r.log.Error("record a retry", "job", run.Job, "run_id", run.ID, "error", err)
		r.forget(job.Name, a.id)
		return
	}
	if err := r.cfg.Store.AddMachines(ctx, a.id, rows); err != nil {
		r.failRun(ctx, a.id, fmt.Sprintf("record the machines to retry: %v", err))
		r.markDispatched(job.Name, a.id)
		return
	}
	r.track(ctx, a.id, job.Name, a.success, rows)
	r.cfg.Publish(events.Event{Kind: events.RunCreated, Job: job.Name, RunID: a.id, Status: store.StatusRunning})
	r.log.Info("retry scheduled", "job", job.Name, "run_id", a.id, "retries", run.ID, "attempt", n, "of", job.Retry.Attempts,
		"at", at, "machines", strings.Join(names, " "))
	retry.Machines = rows
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		timer := time.NewTimer(time.Until(at))
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-r.stopped:
			return // queued: the next core launches it
		}
		r.resumeRun(context.WithoutCancel(ctx), job, deadline, retry, a, nil, rows)
	}()
}

// maxRetryCatchUp bounds how old a run may be for a restarted core to
// record the retry its previous core did not: a failure from last week
// is not worth running again now.
const maxRetryCatchUp = 24 * time.Hour

// catchUpRetries records, at start, the retry a previous core owed: the
// job's last run ended with machines worth retrying, attempts were left,
// and the core stopped between recording the run's end and its retry
// (two store writes). It looks at each job with a retry block, once.
func (r *Runner) catchUpRetries(ctx context.Context, st *state) {
	now := r.cfg.Now()
	for _, job := range st.conf.Jobs {
		if job.Retry == nil || job.Retry.Attempts <= 0 {
			continue
		}
		runs, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Job: job.Name, Limit: 5})
		if err != nil {
			r.log.Warn("look for a retry owed", "job", job.Name, "error", err)
			continue
		}
		if len(runs) == 0 {
			continue
		}
		last := runs[0] // newest first: a retry, were one recorded, is newer
		if !store.Final(last.Status) || last.Status == store.StatusSucceeded || now.Sub(last.FinishedAt) > maxRetryCatchUp {
			continue
		}
		r.log.Info("recording the retry the previous core did not", "job", job.Name, "run_id", last.ID)
		r.work.Add(1)
		go func() {
			defer r.work.Done()
			r.scheduleRetry(context.WithoutCancel(ctx), job, last)
		}()
	}
}

package runner

import (
	"context"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// tally is what the runner keeps of a run in flight so that a machine's
// end costs it O(1) rather than a read of the whole run: on a run of n
// machines, n reads of n rows as they end is what a large fleet cannot
// afford. It lives on the loop (state.tallies) from when the run's
// machines are recorded (or, after a restart, read back: resume) until
// its end is recorded (endRun). The run's result is still aggregated
// from the store, read once, when the tally says the last machine ended:
// the notifications and the retry need the machines anyway, and the
// store is what says a lost machine stays lost whatever came late.
type tally struct {
	job string
	// success is the job's success policy when the run started (or when
	// the core took it over after a restart).
	success string
	// open holds the machines not final yet. A machine leaves it once,
	// so that a second word of its end (the hub, and a restart's read of
	// the store that had it already) is not counted twice.
	open map[string]bool
	// ending is set while a finalize reads the run to record its end, so
	// that two machines ending at once record it once.
	ending bool
}

func newTally(job, success string, machines []store.Machine) *tally {
	t := &tally{job: job, success: success, open: make(map[string]bool, len(machines))}
	for _, m := range machines {
		if !store.Final(m.Status) {
			t.open[m.Machine] = true
		}
	}
	return t
}

// end counts machine's end, and reports whether it was not counted yet.
func (t *tally) end(machine string) bool {
	if !t.open[machine] {
		return false
	}
	delete(t.open, machine)
	return true
}

// endClaim is what finalize learns of a run on the loop.
type endClaim struct {
	// tracked: the runner keeps a tally of the run.
	tracked bool
	// claimed: every machine ended, and this finalize records the end.
	claimed bool
	job     *config.Job
	policy  string
}

// claimEnd claims the recording of a tracked run's end, once its every
// machine ended and no other finalize is recording it.
func (st *state) claimEnd(id string) endClaim {
	t := st.tallies[id]
	if t == nil {
		return endClaim{}
	}
	if t.ending || len(t.open) > 0 {
		return endClaim{tracked: true}
	}
	t.ending = true
	return endClaim{tracked: true, claimed: true, job: st.conf.Job(t.job), policy: t.success}
}

// track starts the tally of a run whose machines were just recorded,
// before any of them is launched: a machine's end reported before its
// run is tracked would be lost on it.
func (r *Runner) track(ctx context.Context, id, job, success string, machines []store.Machine) {
	t := newTally(job, success, machines)
	// A core stopping tracks nothing more; the next one reads the run
	// back (resume).
	_ = r.do(ctx, func(st *state) { st.tallies[id] = t })
}

// settle counts machines the runner itself found or made final (it
// cancelled them, or they were final before their launch): the hub
// reports only what it recorded.
func (r *Runner) settle(ctx context.Context, id string, machines []string) {
	if len(machines) == 0 {
		return
	}
	_ = r.do(ctx, func(st *state) {
		if t := st.tallies[id]; t != nil {
			for _, m := range machines {
				t.end(m)
			}
		}
	})
}

// unclaim gives up a claim that did not record the run's end, for a
// later finalize (or recheckTallies) to try again. run, when set, is
// the run as read: the machines it holds not final are open again.
func (r *Runner) unclaim(ctx context.Context, id string, run *store.Run) {
	_ = r.do(ctx, func(st *state) {
		t := st.tallies[id]
		if t == nil {
			return
		}
		t.ending = false
		if run == nil {
			return
		}
		for _, m := range run.Machines {
			if !store.Final(m.Status) {
				t.open[m.Machine] = true
			}
		}
	})
}

// untrack drops the tally of a run whose end is recorded.
func (r *Runner) untrack(ctx context.Context, id string) {
	_ = r.do(ctx, func(st *state) { delete(st.tallies, id) })
}

// tallyRecheck is how often recheckTallies compares the tallies with
// the store.
const tallyRecheck = time.Minute

// recheckTallies is a safety net, the hub's word being the event: every
// tallyRecheck it rechecks the tallies against the store (recheck).
func (r *Runner) recheckTallies(ctx context.Context) {
	tick := time.NewTicker(tallyRecheck)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if err := r.recheck(ctx); err != nil {
			return
		}
	}
}

// recheck reads each tracked run and counts the machines the store holds
// final that the runner was not told of (a result recorded by another
// core's hub, or one whose report was lost), and finalizes a run left
// with none open, a run whose end failed to be recorded included: one
// read per run, whatever its size. It fails only when the core stops.
func (r *Runner) recheck(ctx context.Context) error {
	var ids []string
	if err := r.do(ctx, func(st *state) {
		for id := range st.tallies {
			ids = append(ids, id)
		}
	}); err != nil {
		return err
	}
	for _, id := range ids {
		run, err := r.cfg.Store.GetRun(ctx, id)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			r.log.Warn("read a run in flight to check its tally", "run_id", id, "error", err)
			continue
		}
		var missed int
		var over bool
		if err := r.do(ctx, func(st *state) {
			t := st.tallies[id]
			if t == nil {
				return
			}
			for _, m := range run.Machines {
				if store.Final(m.Status) && t.end(m.Machine) {
					missed++
				}
			}
			over = len(t.open) == 0 && !t.ending
		}); err != nil {
			return err
		}
		if missed > 0 {
			r.log.Warn("machines ended without the runner being told", "run_id", id, "machines", missed)
		}
		if over {
			// Once started, recording the end is not cut short.
			r.finalize(context.WithoutCancel(ctx), id)
		}
	}
	return nil
}

package runner

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// split cuts machines into batches of size n (0: one batch of all).
func split(machines []string, n int) [][]string {
	if n <= 0 || n >= len(machines) {
		return [][]string{machines}
	}
	var out [][]string
	for len(machines) > 0 {
		k := min(n, len(machines))
		out = append(out, machines[:k])
		machines = machines[k:]
	}
	return out
}

// find returns the active run with that id, nil when none.
func (st *state) find(id string) *activeRun {
	for _, runs := range st.active {
		for _, a := range runs {
			if a.id == id {
				return a
			}
		}
	}
	return nil
}

// batchRecheck is how often a dispatch waiting for a batch reads the run
// again without being told: a safety net, the hub's notes are the event.
const batchRecheck = 5 * time.Second

// awaitBatch waits until every machine of batch is final and says why the
// next batch must not be launched: the run was killed, abort_after_failures
// was reached, or the core is stopping; "" to go on.
func (r *Runner) awaitBatch(ctx context.Context, a *activeRun, batch []string, abortAfter int) string {
	in := make(map[string]bool, len(batch))
	for _, m := range batch {
		in[m] = true
	}
	tick := time.NewTicker(batchRecheck)
	defer tick.Stop()
	for {
		run, err := r.cfg.Store.GetRun(ctx, a.id)
		if err != nil {
			return fmt.Sprintf("the run could not be read: %v", err)
		}
		for _, act := range run.Actions {
			if act.Kind == killq.Kill && act.Machine == "" {
				return "the run was killed"
			}
		}
		done, failed := true, 0
		for _, m := range run.Machines {
			if failedStatus(m.Status) {
				failed++
			}
			if in[m.Machine] && !store.Final(m.Status) {
				done = false
			}
		}
		if abortAfter > 0 && failed >= abortAfter {
			return fmt.Sprintf("abort_after_failures = %d reached: %d machines failed", abortAfter, failed)
		}
		if done {
			return ""
		}
		select {
		case <-a.changed:
		case <-tick.C:
		case <-r.stopped:
			return "the core stopped before this batch"
		}
	}
}

// failedStatus reports whether a final machine status counts as a failure
// for abort_after_failures and the success policy.
func failedStatus(s string) bool {
	switch s {
	case store.StatusFailed, store.StatusTimeout, store.StatusKilled, store.StatusLost,
		store.StatusNotStarted, store.StatusError:
		return true
	}
	return false
}

// cancelMachines records machines that will never be launched.
func (r *Runner) cancelMachines(ctx context.Context, job, id string, machines []string, why string) {
	now := r.cfg.Now().UTC()
	status := store.StatusCancelled
	for _, m := range machines {
		err := r.cfg.Store.UpdateMachine(ctx, id, m, store.MachineUpdate{Status: &status, Reason: &why,
			FinishedAt: &now, OnlyIfNotFinal: true})
		if err != nil {
			r.log.Warn("record a machine not launched", "run_id", id, "machine", m, "error", err)
			continue
		}
		r.cfg.Publish(events.Event{Kind: events.MachineUpdated, Job: job, RunID: id, Machine: m, Status: status})
	}
}

// applySuccess turns the aggregate of a finished run's machines into the
// run's status under the job's success policy: "all" keeps the most
// severe status; "any" is succeeded when one machine succeeded; "N%" when
// at least N% of the machines that ran (skipped and cancelled aside)
// succeeded.
func applySuccess(policy string, machines []store.Machine, aggregate string) string {
	if policy == "" || policy == "all" || aggregate == store.StatusSucceeded || aggregate == store.StatusSkipped {
		return aggregate
	}
	ran, ok := 0, 0
	for _, m := range machines {
		switch m.Status {
		case store.StatusSkipped, store.StatusCancelled:
			continue
		case store.StatusSucceeded:
			ok++
		}
		ran++
	}
	switch {
	case policy == "any":
		if ok > 0 {
			return store.StatusSucceeded
		}
	case strings.HasSuffix(policy, "%"):
		pct, err := strconv.ParseFloat(strings.TrimSuffix(policy, "%"), 64)
		if err == nil && ran > 0 && float64(ok)*100 >= pct*float64(ran) {
			return store.StatusSucceeded
		}
	}
	return aggregate
}

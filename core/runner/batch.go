package runner

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
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

// batchWaiting, set only by tests, is told when awaitBatch found machines
// of batch not final and starts waiting for them.
var batchWaiting func(runID string, batch []string)

// awaitBatch waits until every machine of batch is final, and says why
// the next batch must not be launched: the run was killed,
// abort_after_failures was reached, or the core is stopping (errStopped);
// nil to go on.
//
// The store is what it decides on, but it reads the whole run only when
// the machines reported final since its last read (a.ends lists them)
// may have changed the answer: once every machine of the batch that read
// found open was reported, or as many of the open ones failed as
// abort_after_failures had left. Reading it on every machine's end would
// cost a run of n machines n reads of n rows; a report of a machine the
// read already found final (the hub stores a result before it reports
// it) counts for nothing. A kill is seen at the next read; the run's
// machines being killed is what usually brings it.
func (r *Runner) awaitBatch(ctx context.Context, a *activeRun, batch []string, abortAfter int) error {
	in := make(map[string]bool, len(batch))
	for _, m := range batch {
		in[m] = true
	}
	tick := time.NewTicker(batchRecheck)
	defer tick.Stop()
	for {
		// Emptied before the read: what is reported from here on is
		// weighed against what the read finds.
		a.ends.take()
		run, err := r.cfg.Store.GetRun(ctx, a.id)
		if err != nil {
			return fmt.Errorf("the run could not be read: %w", err)
		}
		for _, act := range run.Actions {
			if act.Kind == killq.Kill && act.Machine == "" {
				return errors.New("the run was killed")
			}
		}
		// open: the run's machines not final, each true when of the batch.
		open := make(map[string]bool)
		var left, failed int
		for _, m := range run.Machines {
			switch {
			case failedStatus(m.Status):
				failed++
			case !store.Final(m.Status):
				open[m.Machine] = in[m.Machine]
				if in[m.Machine] {
					left++
				}
			}
		}
		if abortAfter > 0 && failed >= abortAfter {
			return fmt.Errorf("abort_after_failures = %d reached: %d machines failed", abortAfter, failed)
		}
		if left == 0 {
			return nil
		}
		if batchWaiting != nil {
			batchWaiting(a.id, batch)
		}
	wait:
		for {
			select {
			case <-a.changed:
				for _, e := range a.ends.take() {
					ofBatch, ok := open[e.machine]
					if !ok {
						continue // final at the read, or counted already
					}
					delete(open, e.machine)
					if ofBatch {
						left--
					}
					if e.failed {
						failed++
					}
				}
				if left == 0 || (abortAfter > 0 && failed >= abortAfter) {
					break wait
				}
			case <-tick.C:
				break wait
			case <-r.stopped:
				return errStopped
			}
		}
	}
}

// endLog lists a run's machines reported final, for a dispatch waiting
// for a batch (awaitBatch), which takes them. It lists nothing until one
// first takes, so that a run without batches keeps no list.
type endLog struct {
	mu     sync.Mutex
	listed bool
	ends   []machineEnd
}

// machineEnd is a machine reported final, and whether it failed.
type machineEnd struct {
	machine string
	failed  bool
}

func (l *endLog) add(machine string, failed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.listed {
		l.ends = append(l.ends, machineEnd{machine, failed})
	}
}

// take returns the machines listed since the last take, and lists from
// now on.
func (l *endLog) take() []machineEnd {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listed = true
	ends := l.ends
	l.ends = nil
	return ends
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
	// Final in the store, one way or the other: no hub reports them.
	var final []string
	defer func() { r.settle(ctx, id, final) }()
	for _, m := range machines {
		err := r.cfg.Store.UpdateMachine(ctx, id, m, store.MachineUpdate{Status: &status, Reason: &why,
			FinishedAt: &now, OnlyIfNotFinal: true})
		if errors.Is(err, store.ErrFinal) {
			final = append(final, m)
			continue
		}
		if err != nil {
			r.log.Warn("record a machine not launched", "run_id", id, "machine", m, "error", err)
			continue
		}
		final = append(final, m)
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

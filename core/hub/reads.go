package hub

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// storedMachine is what the store holds of one machine, with the fields
// of its run that a rebuild needs (the run's other machines left out, so
// that nothing keeps them).
type storedMachine struct {
	run     store.Run
	machine store.Machine
}

// runReads shares the store's reads of a run among the connections that
// need one at the same time. The store can read a machine only with its
// whole run (GetRun), so when a fleet's wrappers connect to a core that
// must ask the store about each of them (one restarted without Recover,
// or another core's run), a read per connection would cost the square of
// the fleet's size. Here a read answers every caller that asked before it
// started; those who ask while it runs share the next one, so nobody gets
// an answer older than its question: a read of the store is a read of
// its state at some point after the caller asked.
type runReads struct {
	base    context.Context // the hub's: a read ends when the hub does
	store   store.Store
	timeout time.Duration // bounds one read, whoever waits for it

	mu   sync.Mutex
	runs map[string]*runReadQueue
}

// runReadQueue is one run's read in flight and the one waiting behind it.
type runReadQueue struct {
	running, waiting *runRead
}

// runRead is one GetRun and its answer, valid once done is closed.
type runRead struct {
	done  chan struct{}
	run   store.Run
	err   error
	index map[string]int // machine → its place in run.Machines
}

// lookupWaiting, set only by tests, is told of every caller that joined a
// read it did not start.
var lookupWaiting func()

// get returns the run as the store holds it at some point after the call.
func (r *runReads) get(ctx context.Context, runID string) (*runRead, error) {
	r.mu.Lock()
	q := r.runs[runID]
	if q == nil {
		q = &runReadQueue{}
		r.runs[runID] = q
	}
	rd, lead := q.waiting, false
	if rd == nil {
		rd, lead = &runRead{done: make(chan struct{})}, true
		q.waiting = rd
	}
	prev := q.running
	r.mu.Unlock()
	if !lead {
		if lookupWaiting != nil {
			lookupWaiting()
		}
	} else {
		r.lead(q, rd, prev, runID)
	}
	select {
	case <-rd.done:
		return rd, rd.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lead runs the read rd once the one before it, prev, has ended. It runs
// it even if its own caller stops waiting: others may wait for it.
func (r *runReads) lead(q *runReadQueue, rd, prev *runRead, runID string) {
	if prev != nil {
		<-prev.done // bounded by its own timeout
	}
	r.mu.Lock()
	q.running, q.waiting = rd, nil
	r.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.base, r.timeout)
	run, err := r.store.GetRun(ctx, runID)
	cancel()
	rd.run, rd.err = run, err
	if err == nil {
		rd.index = make(map[string]int, len(run.Machines))
		for i, m := range run.Machines {
			rd.index[m.Machine] = i
		}
	}

	r.mu.Lock()
	q.running = nil
	if q.waiting == nil {
		delete(r.runs, runID)
	}
	r.mu.Unlock()
	close(rd.done)
}

// lookup reads what the store holds of one machine, sharing the read of
// its run with other connections (see runReads).
func (h *Hub) lookup(ctx context.Context, k key) (*storedMachine, error) {
	rd, err := h.reads.get(ctx, k.run)
	if err != nil {
		return nil, fmt.Errorf("read run %s: %w", k.run, err)
	}
	i, ok := rd.index[k.machine]
	if !ok {
		return nil, fmt.Errorf("machine %s of run %s: %w", k.machine, k.run, store.ErrNotFound)
	}
	run := rd.run
	run.Machines = nil
	return &storedMachine{run: run, machine: rd.run.Machines[i]}, nil
}

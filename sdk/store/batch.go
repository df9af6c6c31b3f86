package store

import (
	"context"
	"time"
)

// Append is one chunk of a batch.
type Append struct {
	RunID   string
	Machine string
	Chunk   Chunk
}

// AppendResult is what AppendOutput would have returned for one chunk.
type AppendResult struct {
	Next int64
	Err  error
}

// Batcher is the optional ability of a store to commit many output chunks
// in one transaction; the plugin adapter uses it for every batch the core
// sends, so a chatty job costs one commit per batch, not per chunk. Each
// result says what AppendOutput would have said for its chunk, in order.
type Batcher interface {
	AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult
}

// AppendBatch appends batch to s: in one call when s is a Batcher, else
// chunk by chunk, in order. It is what a layer over a store (an adapter,
// a wrapper) does with a batch, so that batches reach the store beneath
// it whole.
func AppendBatch(ctx context.Context, s Store, batch []Append) []AppendResult {
	if b, ok := s.(Batcher); ok {
		return b.AppendOutputBatch(ctx, batch)
	}
	out := make([]AppendResult, len(batch))
	for i, a := range batch {
		out[i].Next, out[i].Err = s.AppendOutput(ctx, a.RunID, a.Machine, a.Chunk)
	}
	return out
}

// MachineChange is one UpdateMachine call of a batch.
type MachineChange struct {
	RunID   string
	Machine string
	Update  MachineUpdate
}

// MachineBatcher is the optional ability of a store to apply many machine
// updates at once (in one transaction, say); the plugin adapter uses it
// for every batch of UpdateMachine calls the core sends. A store without
// it gets the batch's calls side by side, each machine's in order, which
// a store that group-commits concurrent writes (SQLite) can merge by
// itself, though only as far as they overlap. The changes of one (RunID,
// Machine) must be applied in their order; each error says what
// UpdateMachine would have said for its change, in order, nil for
// success.
type MachineBatcher interface {
	UpdateMachines(ctx context.Context, batch []MachineChange) []error
}

// UpdateBatch applies batch to s: in one call when s is a MachineBatcher,
// else its calls side by side, each machine's in order. As AppendBatch,
// it is what a layer over a store does with a batch.
func UpdateBatch(ctx context.Context, s Store, batch []MachineChange) []error {
	if b, ok := s.(MachineBatcher); ok {
		return b.UpdateMachines(ctx, batch)
	}
	return sideBySide(len(batch),
		func(i int) machineKey { return machineKey{batch[i].RunID, batch[i].Machine} },
		func(i int) error {
			c := &batch[i]
			return s.UpdateMachine(ctx, c.RunID, c.Machine, c.Update)
		})
}

// Fire is one RecordFire or FireRun call of a batch: a FireRun when Run
// is set, whose Job, ScheduledFor and ID are then the fire's.
type Fire struct {
	Job   string
	Slot  time.Time
	RunID string
	Run   *Run
}

// FireResult is what a fire's own call would have returned.
type FireResult struct {
	Recorded bool
	Err      error
}

// FireBatcher is the optional ability of a store to record many fires at
// once (in one transaction, say); the plugin adapter uses it for every
// batch of RecordFire and FireRun calls the core sends. A store without
// it gets the batch's calls side by side, each job's in order. Each
// result says what the fire's own call would have said, in order.
type FireBatcher interface {
	Fires(ctx context.Context, batch []Fire) []FireResult
}

// FireBatch records batch in s: in one call when s is a FireBatcher, else
// its calls side by side, each job's in order. As AppendBatch, it is what
// a layer over a store does with a batch.
func FireBatch(ctx context.Context, s Store, batch []Fire) []FireResult {
	if b, ok := s.(FireBatcher); ok {
		return b.Fires(ctx, batch)
	}
	return sideBySide(len(batch),
		func(i int) machineKey { return machineKey{run: batch[i].Job} },
		func(i int) (r FireResult) {
			f := &batch[i]
			if f.Run != nil {
				r.Recorded, r.Err = s.FireRun(ctx, *f.Run)
			} else {
				r.Recorded, r.Err = s.RecordFire(ctx, f.Job, f.Slot, f.RunID)
			}
			return r
		})
}

// RunResult is what GetRun would have returned for one run of a batch.
type RunResult struct {
	Run Run
	Err error
}

// RunBatchReader is the optional ability of a store to read many runs at
// once (in one read transaction and a few queries, say); the plugin
// adapter uses it for every batch of GetRun calls the core sends, which
// are the runs it finalizes together. A store without it gets the calls
// side by side. Each result says what GetRun would have said for its id,
// in order; an id may be named more than once.
type RunBatchReader interface {
	GetRuns(ctx context.Context, ids []string) []RunResult
}

// GetRunBatch reads the runs ids names from s: in one call when s is a
// RunBatchReader, else side by side. As AppendBatch, it is what a layer
// over a store does with a batch.
func GetRunBatch(ctx context.Context, s Store, ids []string) []RunResult {
	if b, ok := s.(RunBatchReader); ok {
		return b.GetRuns(ctx, ids)
	}
	return sideBySide(len(ids),
		func(i int) machineKey { return machineKey{run: ids[i]} },
		func(i int) (r RunResult) {
			r.Run, r.Err = s.GetRun(ctx, ids[i])
			return r
		})
}

// RunChange is one UpdateRun call of a batch.
type RunChange struct {
	RunID  string
	Update RunUpdate
}

// RunBatchUpdater is the optional ability of a store to apply many run
// updates at once (in one transaction, say); the plugin adapter uses it
// for every batch of UpdateRun calls the core sends, the ends of runs
// that ended together. A store without it gets the batch's calls side by
// side, each run's in order. The changes of one run must be applied in
// their order; each error says what UpdateRun would have said for its
// change, in order, nil for success.
type RunBatchUpdater interface {
	UpdateRuns(ctx context.Context, batch []RunChange) []error
}

// UpdateRunBatch applies batch to s: in one call when s is a
// RunBatchUpdater, else its calls side by side, each run's in order. As
// AppendBatch, it is what a layer over a store does with a batch.
func UpdateRunBatch(ctx context.Context, s Store, batch []RunChange) []error {
	if b, ok := s.(RunBatchUpdater); ok {
		return b.UpdateRuns(ctx, batch)
	}
	return sideBySide(len(batch),
		func(i int) machineKey { return machineKey{run: batch[i].RunID} },
		func(i int) error { return s.UpdateRun(ctx, batch[i].RunID, batch[i].Update) })
}

package store

import (
	"context"
	"fmt"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// A schedule's jobs fire together: every job of `0 * * * *` at the top of
// the hour, every job of `@every 1s` each second. The core records each
// firing as it happens (RecordFire for a slot that starts no run, FireRun
// for one that does), so a second with thousands of firings was thousands
// of calls, each with gRPC's cost per call on both ends: 7% of a core's
// CPU at 5,000 jobs a second (BenchmarkSimScheduledRuns). The client
// combines them as it does machine updates (combine.go), in Fires calls.
// The plugin hands a batch to a store.FireBatcher whole (SQLite's joins
// its group commit), else applies its items side by side.

// firesInFlight is how many fire calls (lone or batched) may be in flight
// at once. The core's scheduler holds a bounded number of firings while
// they are recorded, so a fire's latency bounds how many a second it
// fires, and with one batch in flight a queued fire waits for the batch
// ahead of it as well as its own. Side by side, a job's fires may be
// recorded out of order; each is its own slot, so none depends on
// another.
const firesInFlight = 4

// firer is a GRPCClient's queue of RecordFire and FireRun calls.
type firer = combiner[*storepb.FireItem, bool]

func newFirer(client storepb.StoreClient) *firer {
	return &firer{
		one: func(ctx context.Context, item *storepb.FireItem) (bool, error) {
			var resp *storepb.RecordFireResponse
			var err error
			if run := item.GetRun(); run != nil {
				resp, err = client.FireRun(ctx, &storepb.CreateRunRequest{Run: run})
			} else {
				resp, err = client.RecordFire(ctx, item.GetRecord())
			}
			return resp.GetRecorded(), fromStatus(err)
		},
		many: func(ctx context.Context, items []*storepb.FireItem) ([]outcome[bool], error) {
			resp, err := client.Fires(ctx, &storepb.FiresRequest{Items: items})
			if err != nil {
				return nil, err
			}
			outs := make([]outcome[bool], len(resp.GetResults()))
			for i, r := range resp.GetResults() {
				outs[i] = outcome[bool]{res: r.GetRecorded(), err: itemError(r.GetError())}
			}
			return outs, nil
		},
		key:      fireKey,
		what:     "fires",
		parallel: firesInFlight,
	}
}

// fireKey orders a job's fires within a batch: those of one job are
// applied in the order the core made them.
func fireKey(item *storepb.FireItem) machineKey {
	if run := item.GetRun(); run != nil {
		return machineKey{run: run.GetJob()}
	}
	return machineKey{run: item.GetRecord().GetJob()}
}

// Fires implements the gRPC service: a batch of RecordFire and FireRun
// calls, each answered as its own call would have been. A FireBatcher
// gets the whole batch; another store gets the calls side by side, each
// job's in order.
func (s *GRPCServer) Fires(ctx context.Context, req *storepb.FiresRequest) (*storepb.FiresResponse, error) {
	items := req.GetItems()
	batch := make([]Fire, len(items))
	for i, it := range items {
		if r := it.GetRun(); r != nil {
			run := goRun(r)
			batch[i] = Fire{Job: run.Job, Slot: run.ScheduledFor, RunID: run.ID, Run: &run}
		} else {
			r := it.GetRecord()
			batch[i] = Fire{Job: r.GetJob(), Slot: goTime(r.GetSlot()), RunID: r.GetRunId()}
		}
	}
	results := FireBatch(ctx, s.Impl, batch)
	if len(results) != len(batch) {
		return nil, toStatus(fmt.Errorf("store answered %d results for %d fires", len(results), len(batch)))
	}
	resp := &storepb.FiresResponse{Results: make([]*storepb.FireResult, len(results))}
	for i, r := range results {
		resp.Results[i] = &storepb.FireResult{Recorded: r.Recorded, Error: itemResult(r.Err)}
	}
	return resp, nil
}

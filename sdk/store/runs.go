package store

import (
	"context"
	"fmt"
	"math"

	"google.golang.org/grpc"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// A run's end is a GetRun (its machines, to aggregate their statuses) and
// an UpdateRun (its status and notifications), and at a thousand runs a
// second those come many at once, as fires do (fires.go). The client
// combines each kind as it does machine updates (combine.go): GetRuns
// calls, up to four in flight, since reads have no order to keep; and
// UpdateRuns calls, one in flight, since a run's updates must apply in
// their order. The plugin hands a batch to a RunBatchReader or
// RunBatchUpdater whole (SQLite reads one in one transaction, and writes
// one together in its group commit), and serves it otherwise side by
// side, each run's in order.

// runsInFlight is how many GetRun calls (lone or batched) may be in
// flight at once.
const runsInFlight = 4

// runReader is a GRPCClient's queue of GetRun calls.
type runReader = combiner[*storepb.GetRunRequest, *storepb.Run]

func newRunReader(client storepb.StoreClient) *runReader {
	return &runReader{
		one: func(ctx context.Context, item *storepb.GetRunRequest) (*storepb.Run, error) {
			r, err := client.GetRun(ctx, item)
			return r, fromStatus(err)
		},
		many: func(ctx context.Context, items []*storepb.GetRunRequest) ([]outcome[*storepb.Run], error) {
			// Runs of many machines are big, and a batch holds several:
			// the answer may exceed gRPC's default 4 MB.
			resp, err := client.GetRuns(ctx, &storepb.GetRunsRequest{Items: items}, grpc.MaxCallRecvMsgSize(math.MaxInt32))
			if err != nil {
				return nil, err
			}
			outs := make([]outcome[*storepb.Run], len(resp.GetResults()))
			for i, r := range resp.GetResults() {
				outs[i] = outcome[*storepb.Run]{res: r.GetRun(), err: itemError(r.GetError())}
			}
			return outs, nil
		},
		key:      func(item *storepb.GetRunRequest) machineKey { return machineKey{run: item.GetRunId()} },
		what:     "run reads",
		parallel: runsInFlight,
	}
}

// runUpdater is a GRPCClient's queue of UpdateRun calls.
type runUpdater = combiner[*storepb.UpdateRunRequest, struct{}]

func newRunUpdater(client storepb.StoreClient) *runUpdater {
	return &runUpdater{
		one: func(ctx context.Context, item *storepb.UpdateRunRequest) (struct{}, error) {
			// An update that carries notifications goes as
			// UpdateRunNotify, which a plugin built before the outbox
			// refuses (errors.ErrUnsupported) instead of applying the
			// rest and dropping them. A plugin that knows UpdateRuns
			// knows notifications.
			var err error
			if len(item.GetUpdate().GetNotifications()) > 0 {
				_, err = client.UpdateRunNotify(ctx, item)
			} else {
				_, err = client.UpdateRun(ctx, item)
			}
			return struct{}{}, fromStatus(err)
		},
		many: func(ctx context.Context, items []*storepb.UpdateRunRequest) ([]outcome[struct{}], error) {
			resp, err := client.UpdateRuns(ctx, &storepb.UpdateRunsRequest{Items: items})
			if err != nil {
				return nil, err
			}
			return errOutcomes(resp.GetResults()), nil
		},
		key:  func(item *storepb.UpdateRunRequest) machineKey { return machineKey{run: item.GetRunId()} },
		what: "run updates",
	}
}

// GetRuns implements the gRPC service: a batch of GetRun calls, each
// answered as its own call would have been. A RunBatchReader gets the
// whole batch; another store gets the calls side by side.
func (s *GRPCServer) GetRuns(ctx context.Context, req *storepb.GetRunsRequest) (*storepb.GetRunsResponse, error) {
	items := req.GetItems()
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.GetRunId()
	}
	results := GetRunBatch(ctx, s.Impl, ids)
	if len(results) != len(ids) {
		return nil, toStatus(fmt.Errorf("store answered %d results for %d runs", len(results), len(ids)))
	}
	resp := &storepb.GetRunsResponse{Results: make([]*storepb.RunResult, len(results))}
	for i, r := range results {
		res := &storepb.RunResult{Error: itemResult(r.Err)}
		if r.Err == nil {
			res.Run = pbRun(r.Run)
		}
		resp.Results[i] = res
	}
	return resp, nil
}

// UpdateRuns implements the gRPC service: a batch of UpdateRun calls,
// each answered as its own call would have been. A RunBatchUpdater gets
// the whole batch; another store gets the calls side by side, each run's
// in order.
func (s *GRPCServer) UpdateRuns(ctx context.Context, req *storepb.UpdateRunsRequest) (*storepb.UpdateRunsResponse, error) {
	items := req.GetItems()
	batch := make([]RunChange, len(items))
	for i, it := range items {
		u := it.GetUpdate()
		if u == nil {
			u = &storepb.RunUpdate{}
		}
		batch[i] = RunChange{RunID: it.GetRunId(), Update: goRunUpdate(u)}
	}
	errs := UpdateRunBatch(ctx, s.Impl, batch)
	if len(errs) != len(batch) {
		return nil, toStatus(fmt.Errorf("store answered %d results for %d run updates", len(errs), len(batch)))
	}
	resp := &storepb.UpdateRunsResponse{Results: make([]*storepb.ItemResult, len(errs))}
	for i, err := range errs {
		resp.Results[i] = itemResult(err)
	}
	return resp, nil
}

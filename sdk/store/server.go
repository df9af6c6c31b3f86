package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// GRPCServer is the plugin's side: it implements the gRPC service by
// calling Impl. An error from Impl travels as a gRPC status carrying its
// text and its kind (ErrNotFound etc.), which the core's GRPCClient turns
// back into an error that errors.Is recognises.
type GRPCServer struct {
	storepb.UnimplementedStoreServer
	Impl Store
}

// Configure implements the gRPC service: it calls Impl's Configure when
// Impl is a Configurer, and otherwise accepts only an empty config, so
// that an operator's config is never silently ignored.
func (s *GRPCServer) Configure(ctx context.Context, req *storepb.ConfigureRequest) (*storepb.ConfigureResponse, error) {
	if c, ok := s.Impl.(Configurer); ok {
		if err := c.Configure(ctx, req.GetConfig()); err != nil {
			return nil, toStatus(err)
		}
		return &storepb.ConfigureResponse{}, nil
	}
	if !emptyConfig(req.GetConfig()) {
		return nil, toStatus(errors.New("this store takes no config"))
	}
	return &storepb.ConfigureResponse{}, nil
}

// CreateRun implements the gRPC service.
func (s *GRPCServer) CreateRun(ctx context.Context, req *storepb.CreateRunRequest) (*storepb.Empty, error) {
	return empty(s.Impl.CreateRun(ctx, goRun(req.GetRun())))
}

// AddMachines implements the gRPC service.
func (s *GRPCServer) AddMachines(ctx context.Context, req *storepb.AddMachinesRequest) (*storepb.Empty, error) {
	return empty(s.Impl.AddMachines(ctx, req.GetRunId(), goMachines(req.GetMachines())))
}

// UpdateRun implements the gRPC service.
func (s *GRPCServer) UpdateRun(ctx context.Context, req *storepb.UpdateRunRequest) (*storepb.Empty, error) {
	u := req.GetUpdate()
	if u == nil {
		u = &storepb.RunUpdate{}
	}
	return empty(s.Impl.UpdateRun(ctx, req.GetRunId(), goRunUpdate(u)))
}

// UpdateRunNotify implements the gRPC service: UpdateRun, sent for an
// update with notifications (see the proto).
func (s *GRPCServer) UpdateRunNotify(ctx context.Context, req *storepb.UpdateRunRequest) (*storepb.Empty, error) {
	return s.UpdateRun(ctx, req)
}

// UpdateMachine implements the gRPC service.
func (s *GRPCServer) UpdateMachine(ctx context.Context, req *storepb.UpdateMachineRequest) (*storepb.Empty, error) {
	c := goMachineChange(req)
	return empty(s.Impl.UpdateMachine(ctx, c.RunID, c.Machine, c.Update))
}

// UpdateMachines implements the gRPC service: a batch of UpdateMachine
// calls, each item answered with what UpdateMachine would have answered.
// A MachineBatcher gets the whole batch; another store gets the calls
// side by side, each machine's in order (see MachineBatcher).
func (s *GRPCServer) UpdateMachines(ctx context.Context, req *storepb.UpdateMachinesRequest) (*storepb.UpdateMachinesResponse, error) {
	items := req.GetItems()
	batch := make([]MachineChange, len(items))
	for i, it := range items {
		batch[i] = goMachineChange(it)
	}
	errs := UpdateBatch(ctx, s.Impl, batch)
	if len(errs) != len(batch) {
		return nil, toStatus(fmt.Errorf("store answered %d results for %d machine updates", len(errs), len(batch)))
	}
	resp := &storepb.UpdateMachinesResponse{Results: make([]*storepb.ItemResult, len(errs))}
	for i, err := range errs {
		resp.Results[i] = itemResult(err)
	}
	return resp, nil
}

// GetRun implements the gRPC service.
func (s *GRPCServer) GetRun(ctx context.Context, req *storepb.GetRunRequest) (*storepb.Run, error) {
	r, err := s.Impl.GetRun(ctx, req.GetRunId())
	if err != nil {
		return nil, toStatus(err)
	}
	return pbRun(r), nil
}

// ListRuns implements the gRPC service.
func (s *GRPCServer) ListRuns(ctx context.Context, req *storepb.RunFilter) (*storepb.ListRunsResponse, error) {
	runs, err := s.Impl.ListRuns(ctx, RunFilter{Job: req.GetJob(), Status: req.GetStatus(),
		Before: goTime(req.GetBefore()), Limit: int(req.GetLimit()), Active: req.GetActive()})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &storepb.ListRunsResponse{Runs: make([]*storepb.Run, len(runs))}
	for i, r := range runs {
		resp.Runs[i] = pbRun(r)
	}
	return resp, nil
}

// LastRuns implements the gRPC service.
func (s *GRPCServer) LastRuns(ctx context.Context, req *storepb.LastRunsRequest) (*storepb.LastRunsResponse, error) {
	rs, err := s.Impl.LastRuns(ctx, LastRunsQuery{Jobs: req.GetJobs(), Machines: int(req.GetMachines())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.LastRunsResponse{Runs: pbRunSummaries(rs)}, nil
}

// AppendOutput implements the gRPC service: for each batch the core
// sends, it stores the chunks in the order given (so one machine's chunks
// keep their order) and answers with one result per chunk. A store error
// fails that chunk only; the stream ends when the core closes it or the
// connection goes.
func (s *GRPCServer) AppendOutput(stream storepb.Store_AppendOutputServer) error {
	ctx := stream.Context()
	for {
		batch := new(batchIn)
		if err := stream.RecvMsg(batch); err != nil {
			// io.EOF: the core closed its side; anything else: the
			// connection is gone and there is nobody to answer.
			return nil
		}
		ids, appends := batch.items()
		results := AppendBatch(ctx, s.Impl, appends)
		if ctx.Err() == nil {
			// The store returned before ctx ended, so it is done with
			// the chunks' Data; otherwise it may still read them (see
			// Chunk.Data) and the buffer is left to the collector.
			batch.release()
		}
		res := &storepb.AppendResults{Results: make([]*storepb.AppendResult, len(ids))}
		for i, id := range ids {
			r := &storepb.AppendResult{Id: id, Next: results[i].Next}
			if err := results[i].Err; err != nil {
				r.Failed = true
				r.Kind, _ = kindOf(err)
				r.Message = err.Error()
			}
			res.Results[i] = r
		}
		if err := stream.Send(res); err != nil {
			return fmt.Errorf("answer an output batch: %w", err)
		}
	}
}

// ReadOutput implements the gRPC service.
func (s *GRPCServer) ReadOutput(ctx context.Context, req *storepb.OutputQuery) (*storepb.ReadOutputResponse, error) {
	out, err := s.Impl.ReadOutput(ctx, OutputQuery{RunID: req.GetRunId(), Machine: req.GetMachine(),
		Stream: req.GetStream(), Offset: req.GetOffset(), Limit: req.GetLimit()})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.ReadOutputResponse{Data: out.Data, Total: out.Total, Next: out.Next}, nil
}

// SetOverride implements the gRPC service.
func (s *GRPCServer) SetOverride(ctx context.Context, req *storepb.JobOverride) (*storepb.Empty, error) {
	return empty(s.Impl.SetOverride(ctx, goOverride(req)))
}

// DeleteOverride implements the gRPC service.
func (s *GRPCServer) DeleteOverride(ctx context.Context, req *storepb.DeleteOverrideRequest) (*storepb.Empty, error) {
	return empty(s.Impl.DeleteOverride(ctx, req.GetJob()))
}

// Overrides implements the gRPC service.
func (s *GRPCServer) Overrides(ctx context.Context, _ *storepb.Empty) (*storepb.OverridesResponse, error) {
	os, err := s.Impl.Overrides(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &storepb.OverridesResponse{Overrides: make([]*storepb.JobOverride, len(os))}
	for i, o := range os {
		resp.Overrides[i] = pbOverride(o)
	}
	return resp, nil
}

// SetMaintenance implements the gRPC service.
func (s *GRPCServer) SetMaintenance(ctx context.Context, req *storepb.Maintenance) (*storepb.Empty, error) {
	return empty(s.Impl.SetMaintenance(ctx, goMaintenance(req)))
}

// GetMaintenance implements the gRPC service.
func (s *GRPCServer) GetMaintenance(ctx context.Context, _ *storepb.Empty) (*storepb.Maintenance, error) {
	m, err := s.Impl.GetMaintenance(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return pbMaintenance(m), nil
}

// DeleteMaintenance implements the gRPC service.
func (s *GRPCServer) DeleteMaintenance(ctx context.Context, _ *storepb.Empty) (*storepb.Empty, error) {
	return empty(s.Impl.DeleteMaintenance(ctx))
}

// RecordFire implements the gRPC service.
func (s *GRPCServer) RecordFire(ctx context.Context, req *storepb.RecordFireRequest) (*storepb.RecordFireResponse, error) {
	ok, err := s.Impl.RecordFire(ctx, req.GetJob(), goTime(req.GetSlot()), req.GetRunId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.RecordFireResponse{Recorded: ok}, nil
}

// FireRun implements the gRPC service.
func (s *GRPCServer) FireRun(ctx context.Context, req *storepb.CreateRunRequest) (*storepb.RecordFireResponse, error) {
	ok, err := s.Impl.FireRun(ctx, goRun(req.GetRun()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.RecordFireResponse{Recorded: ok}, nil
}

// LastFire implements the gRPC service.
func (s *GRPCServer) LastFire(ctx context.Context, req *storepb.LastFireRequest) (*storepb.LastFireResponse, error) {
	slot, err := s.Impl.LastFire(ctx, req.GetJob())
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.LastFireResponse{Slot: pbTime(slot)}, nil
}

// LastFires implements the gRPC service.
func (s *GRPCServer) LastFires(ctx context.Context, req *storepb.LastFiresRequest) (*storepb.LastFiresResponse, error) {
	slots, err := s.Impl.LastFires(ctx, req.GetJobs())
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.LastFiresResponse{Slots: pbSlots(slots)}, nil
}

// PruneRuns implements the gRPC service.
func (s *GRPCServer) PruneRuns(ctx context.Context, req *storepb.PruneRunsRequest) (*storepb.PruneRunsResponse, error) {
	n, err := s.Impl.PruneRuns(ctx, goTime(req.GetFinishedBefore()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.PruneRunsResponse{Deleted: int64(n)}, nil
}

// EnqueueNotifications implements the gRPC service.
func (s *GRPCServer) EnqueueNotifications(ctx context.Context, req *storepb.EnqueueNotificationsRequest) (*storepb.Empty, error) {
	return empty(s.Impl.EnqueueNotifications(ctx, goNotifications(req.GetNotifications())))
}

// ClaimNotifications implements the gRPC service.
func (s *GRPCServer) ClaimNotifications(ctx context.Context, req *storepb.ClaimNotificationsRequest) (*storepb.NotificationsResponse, error) {
	ns, err := s.Impl.ClaimNotifications(ctx, goClaim(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.NotificationsResponse{Notifications: pbNotifications(ns)}, nil
}

// FinishNotification implements the gRPC service.
func (s *GRPCServer) FinishNotification(ctx context.Context, req *storepb.FinishNotificationRequest) (*storepb.Empty, error) {
	r := req.GetResult()
	if r == nil {
		r = &storepb.NotificationResult{}
	}
	return empty(s.Impl.FinishNotification(ctx, req.GetId(), req.GetOwner(), goResult(r)))
}

// ListNotifications implements the gRPC service.
func (s *GRPCServer) ListNotifications(ctx context.Context, req *storepb.NotificationFilter) (*storepb.NotificationsResponse, error) {
	ns, err := s.Impl.ListNotifications(ctx, NotificationFilter{State: req.GetState(), Job: req.GetJob(), Limit: int(req.GetLimit())})
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.NotificationsResponse{Notifications: pbNotifications(ns)}, nil
}

// AppendAudit implements the gRPC service.
func (s *GRPCServer) AppendAudit(ctx context.Context, req *storepb.AppendAuditRequest) (*storepb.AppendAuditResponse, error) {
	e := req.GetEntry()
	if e == nil {
		e = &storepb.AuditEntry{}
	}
	id, err := s.Impl.AppendAudit(ctx, goAudit(e))
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.AppendAuditResponse{Id: id}, nil
}

// ListAudit implements the gRPC service.
func (s *GRPCServer) ListAudit(ctx context.Context, req *storepb.AuditFilter) (*storepb.ListAuditResponse, error) {
	es, err := s.Impl.ListAudit(ctx, goAuditFilter(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.ListAuditResponse{Entries: pbAudits(es)}, nil
}

// Ping implements the gRPC service.
func (s *GRPCServer) Ping(ctx context.Context, _ *storepb.Empty) (*storepb.Empty, error) {
	return empty(s.Impl.Ping(ctx))
}

// Close implements the gRPC service.
func (s *GRPCServer) Close(context.Context, *storepb.Empty) (*storepb.Empty, error) {
	return empty(s.Impl.Close())
}

func empty(err error) (*storepb.Empty, error) {
	if err != nil {
		return nil, toStatus(err)
	}
	return &storepb.Empty{}, nil
}

// emptyConfig reports whether a plugin block's config says nothing:
// absent, null or an object without a key.
func emptyConfig(config []byte) bool {
	if len(bytes.TrimSpace(config)) == 0 {
		return true
	}
	var m map[string]json.RawMessage
	return json.Unmarshal(config, &m) == nil && len(m) == 0
}

package store

import (
	"context"
	"math"
	"time"

	"google.golang.org/grpc"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// GRPCClient is the core's side of a store plugin: it implements Store by
// calling the plugin over gRPC. A failed call returns an error with the
// plugin's message in which errors.Is finds the store error the plugin
// returned (ErrNotFound, ErrExists, ErrFinal, ErrOutOfOrder,
// ErrUnavailable, ErrLeaseLost) and the context errors; a call that could
// not reach the plugin is ErrUnavailable, a method the plugin does not
// know (it was built with an older SDK) errors.ErrUnsupported, and
// status.Code gives the gRPC code.
//
// AppendOutput, UpdateMachine, RecordFire, FireRun, GetRun and UpdateRun
// are batched: see appender, updater, firer, runReader and runUpdater.
type GRPCClient struct {
	client storepb.StoreClient
	out    *appender
	upd    *updater
	fires  *firer
	runs   *runReader
	runUpd *runUpdater
}

func newGRPCClient(c grpc.ClientConnInterface) *GRPCClient {
	client := storepb.NewStoreClient(c)
	return &GRPCClient{client: client, out: newAppender(client), upd: newUpdater(client),
		fires: newFirer(client), runs: newRunReader(client), runUpd: newRunUpdater(client)}
}

// Configure hands the plugin its plugin block's config; see Configurer.
func (c *GRPCClient) Configure(ctx context.Context, config []byte) error {
	_, err := c.client.Configure(ctx, &storepb.ConfigureRequest{Config: config})
	return fromStatus(err)
}

// CreateRun implements Store.
func (c *GRPCClient) CreateRun(ctx context.Context, run Run) error {
	_, err := c.client.CreateRun(ctx, &storepb.CreateRunRequest{Run: pbRun(run)})
	return fromStatus(err)
}

// AddMachines implements Store.
func (c *GRPCClient) AddMachines(ctx context.Context, runID string, machines []Machine) error {
	_, err := c.client.AddMachines(ctx, &storepb.AddMachinesRequest{RunId: runID, Machines: pbMachines(machines)})
	return fromStatus(err)
}

// UpdateRun implements Store. It is queued as UpdateMachine is: a call
// that finds another in flight goes in one UpdateRuns call with the
// others queued beside it (see runUpdater), each run's in order. Sent
// alone, an update that carries notifications goes as UpdateRunNotify,
// which a plugin built before the outbox refuses (errors.ErrUnsupported)
// instead of applying the rest and dropping them; a plugin that takes
// UpdateRuns knows notifications.
func (c *GRPCClient) UpdateRun(ctx context.Context, runID string, u RunUpdate) error {
	_, err := c.runUpd.call(ctx, &storepb.UpdateRunRequest{RunId: runID, Update: pbRunUpdate(u)})
	return err
}

// UpdateMachine implements Store. A call that finds none in flight goes
// at once, alone; one that finds another in flight joins the client's
// queue and goes in one UpdateMachines call with the others queued beside
// it (see updater). It returns once the plugin has applied (or refused)
// this update, with the error the unary call would have returned. A
// machine's queued updates are applied in the order they queued. A
// cancelled ctx ends the wait, and the batch's call when no other caller
// waits on it; the update may be applied anyway, as a cancelled unary
// call's may.
func (c *GRPCClient) UpdateMachine(ctx context.Context, runID, machine string, u MachineUpdate) error {
	_, err := c.upd.call(ctx, &storepb.UpdateMachineRequest{RunId: runID, Machine: machine, Update: pbMachineUpdate(u)})
	return err
}

// UpdateMachines implements MachineBatcher: the batch joins the client's
// queue of UpdateMachine calls together and in order, so that it goes in
// as few UpdateMachines calls as their bounds allow; each error is what
// UpdateMachine would have returned for its change.
func (c *GRPCClient) UpdateMachines(ctx context.Context, batch []MachineChange) []error {
	items := make([]*storepb.UpdateMachineRequest, len(batch))
	for i, ch := range batch {
		items[i] = &storepb.UpdateMachineRequest{RunId: ch.RunID, Machine: ch.Machine, Update: pbMachineUpdate(ch.Update)}
	}
	outs := c.upd.callAll(ctx, items)
	errs := make([]error, len(outs))
	for i, o := range outs {
		errs[i] = o.err
	}
	return errs
}

var _ MachineBatcher = (*GRPCClient)(nil)

// GetRun implements Store, queued as UpdateRun is (see runReader).
func (c *GRPCClient) GetRun(ctx context.Context, runID string) (Run, error) {
	r, err := c.runs.call(ctx, &storepb.GetRunRequest{RunId: runID})
	if err != nil {
		return Run{}, err
	}
	return goRun(r), nil
}

// ListRuns implements Store.
func (c *GRPCClient) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	resp, err := c.client.ListRuns(ctx, &storepb.RunFilter{Job: f.Job, Status: f.Status,
		Before: pbTime(f.Before), Limit: int64(f.Limit), Active: f.Active})
	if err != nil {
		return nil, fromStatus(err)
	}
	var runs []Run
	for _, r := range resp.GetRuns() {
		runs = append(runs, goRun(r))
	}
	return runs, nil
}

// LastRuns implements Store. The answer may exceed gRPC's default 4 MB
// limit (thousands of jobs, each with its machines), so the client
// accepts any size. A plugin built before LastRuns answers
// errors.ErrUnsupported.
func (c *GRPCClient) LastRuns(ctx context.Context, q LastRunsQuery) ([]RunSummary, error) {
	resp, err := c.client.LastRuns(ctx, &storepb.LastRunsRequest{Jobs: q.Jobs, Machines: int64(q.Machines)},
		grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		return nil, fromStatus(err)
	}
	return goRunSummaries(resp.GetRuns()), nil
}

// AppendOutput implements Store. The chunk joins the client's output
// stream with every other caller's; the call returns once the plugin has
// stored (or refused) this chunk. A cancelled ctx ends the wait, not
// necessarily the write: the chunk may be stored anyway, which is safe
// because appending is idempotent, and its Data may still be read by the
// send. Otherwise the call returns only once the send is done with Data
// (see Chunk.Data), even when the stream failed under it.
func (c *GRPCClient) AppendOutput(ctx context.Context, runID, machine string, ch Chunk) (int64, error) {
	return c.out.append(ctx, &storepb.AppendItem{RunId: runID, Machine: machine, Chunk: pbChunk(ch)})
}

// AppendOutputBatch implements Batcher: the chunks join the output
// stream's queue together and in order, so the plugin commits them in one
// batch (and in their order: one machine's chunks must be).
func (c *GRPCClient) AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult {
	items := make([]*storepb.AppendItem, len(batch))
	for i, a := range batch {
		items[i] = &storepb.AppendItem{RunId: a.RunID, Machine: a.Machine, Chunk: pbChunk(a.Chunk)}
	}
	return c.out.appendAll(ctx, items)
}

var _ Batcher = (*GRPCClient)(nil)

// ReadOutput implements Store. The answer may exceed gRPC's default 4 MB
// limit (a whole machine's output), so the client accepts any size.
func (c *GRPCClient) ReadOutput(ctx context.Context, q OutputQuery) (Output, error) {
	resp, err := c.client.ReadOutput(ctx, &storepb.OutputQuery{RunId: q.RunID, Machine: q.Machine,
		Stream: q.Stream, Offset: q.Offset, Limit: q.Limit}, grpc.MaxCallRecvMsgSize(math.MaxInt32))
	if err != nil {
		return Output{}, fromStatus(err)
	}
	out := Output{Data: resp.GetData(), Next: resp.GetNext(), Total: resp.GetTotal()}
	if out.Data == nil {
		out.Data = []byte{}
	}
	if out.Next == 0 {
		// A plugin built before next existed: it drops nothing, so its
		// data are exactly the bytes from the offset.
		out.Next = max(q.Offset, 0) + int64(len(out.Data))
	}
	return out, nil
}

// SetOverride implements Store.
func (c *GRPCClient) SetOverride(ctx context.Context, o JobOverride) error {
	_, err := c.client.SetOverride(ctx, pbOverride(o))
	return fromStatus(err)
}

// DeleteOverride implements Store.
func (c *GRPCClient) DeleteOverride(ctx context.Context, job string) error {
	_, err := c.client.DeleteOverride(ctx, &storepb.DeleteOverrideRequest{Job: job})
	return fromStatus(err)
}

// Overrides implements Store.
func (c *GRPCClient) Overrides(ctx context.Context) ([]JobOverride, error) {
	resp, err := c.client.Overrides(ctx, &storepb.Empty{})
	if err != nil {
		return nil, fromStatus(err)
	}
	var os []JobOverride
	for _, o := range resp.GetOverrides() {
		os = append(os, goOverride(o))
	}
	return os, nil
}

// SetMaintenance implements Store.
func (c *GRPCClient) SetMaintenance(ctx context.Context, m Maintenance) error {
	_, err := c.client.SetMaintenance(ctx, pbMaintenance(m))
	return fromStatus(err)
}

// GetMaintenance implements Store.
func (c *GRPCClient) GetMaintenance(ctx context.Context) (Maintenance, error) {
	resp, err := c.client.GetMaintenance(ctx, &storepb.Empty{})
	if err != nil {
		return Maintenance{}, fromStatus(err)
	}
	return goMaintenance(resp), nil
}

// DeleteMaintenance implements Store.
func (c *GRPCClient) DeleteMaintenance(ctx context.Context) error {
	_, err := c.client.DeleteMaintenance(ctx, &storepb.Empty{})
	return fromStatus(err)
}

// RecordFire implements Store. It is queued as UpdateMachine is: a call
// that finds another fire in flight goes in one Fires call with the
// others queued beside it (see firer), and returns what the unary call
// would have returned.
func (c *GRPCClient) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	return c.fires.call(ctx, &storepb.FireItem{Record: &storepb.RecordFireRequest{Job: job, Slot: pbTime(slot), RunId: runID}})
}

// FireRun implements Store, queued as RecordFire is.
func (c *GRPCClient) FireRun(ctx context.Context, run Run) (bool, error) {
	return c.fires.call(ctx, &storepb.FireItem{Run: pbRun(run)})
}

// LastFire implements Store.
func (c *GRPCClient) LastFire(ctx context.Context, job string) (time.Time, error) {
	resp, err := c.client.LastFire(ctx, &storepb.LastFireRequest{Job: job})
	if err != nil {
		return time.Time{}, fromStatus(err)
	}
	return goTime(resp.GetSlot()), nil
}

// LastFires implements Store. A plugin built before LastFires answers
// errors.ErrUnsupported.
func (c *GRPCClient) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	resp, err := c.client.LastFires(ctx, &storepb.LastFiresRequest{Jobs: jobs})
	if err != nil {
		return nil, fromStatus(err)
	}
	return goSlots(resp.GetSlots()), nil
}

// PruneRuns implements Store.
func (c *GRPCClient) PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	resp, err := c.client.PruneRuns(ctx, &storepb.PruneRunsRequest{FinishedBefore: pbTime(finishedBefore)})
	if err != nil {
		return 0, fromStatus(err)
	}
	return int(resp.GetDeleted()), nil
}

// EnqueueNotifications implements Store.
func (c *GRPCClient) EnqueueNotifications(ctx context.Context, ns []Notification) error {
	_, err := c.client.EnqueueNotifications(ctx, &storepb.EnqueueNotificationsRequest{Notifications: pbNotifications(ns)})
	return fromStatus(err)
}

// ClaimNotifications implements Store.
func (c *GRPCClient) ClaimNotifications(ctx context.Context, r ClaimRequest) ([]Notification, error) {
	resp, err := c.client.ClaimNotifications(ctx, pbClaim(r))
	if err != nil {
		return nil, fromStatus(err)
	}
	return goNotifications(resp.GetNotifications()), nil
}

// FinishNotification implements Store.
func (c *GRPCClient) FinishNotification(ctx context.Context, id, owner string, r NotificationResult) error {
	_, err := c.client.FinishNotification(ctx, &storepb.FinishNotificationRequest{Id: id, Owner: owner, Result: pbResult(r)})
	return fromStatus(err)
}

// ListNotifications implements Store.
func (c *GRPCClient) ListNotifications(ctx context.Context, f NotificationFilter) ([]Notification, error) {
	resp, err := c.client.ListNotifications(ctx, &storepb.NotificationFilter{State: f.State, Job: f.Job, Limit: int64(f.Limit)})
	if err != nil {
		return nil, fromStatus(err)
	}
	return goNotifications(resp.GetNotifications()), nil
}

// AppendAudit implements Store.
func (c *GRPCClient) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	resp, err := c.client.AppendAudit(ctx, &storepb.AppendAuditRequest{Entry: pbAudit(e)})
	if err != nil {
		return 0, fromStatus(err)
	}
	return resp.GetId(), nil
}

// ListAudit implements Store.
func (c *GRPCClient) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	resp, err := c.client.ListAudit(ctx, pbAuditFilter(f))
	if err != nil {
		return nil, fromStatus(err)
	}
	return goAudits(resp.GetEntries()), nil
}

// Ping implements Store.
func (c *GRPCClient) Ping(ctx context.Context) error {
	_, err := c.client.Ping(ctx, &storepb.Empty{})
	return fromStatus(err)
}

// Close closes the plugin's store and ends this client's output stream;
// AppendOutput fails with ErrUnavailable after it. It does not stop the
// plugin process: the core's plugin host does that.
func (c *GRPCClient) Close() error {
	_, err := c.client.Close(context.Background(), &storepb.Empty{})
	c.out.close()
	return fromStatus(err)
}

var (
	_ Store      = (*GRPCClient)(nil)
	_ Configurer = (*GRPCClient)(nil)
)

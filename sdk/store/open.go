package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// OpenOnConfigure returns a Store that opens the real one when the core
// configures it: a plugin's factory runs before the core has sent the
// plugin block's config, and a durable store cannot open without it
// (a path, a DSN). Until Configure succeeds every call fails with
// ErrUnavailable. A second Configure (the core configures again after a
// plugin restart, or a reload) closes the store it had and opens anew.
// The returned store batches output (Batcher), machine updates
// (MachineBatcher), fires (FireBatcher), run reads (RunBatchReader) and
// run updates (RunBatchUpdater) through the opened one when it can, else
// call by call.
func OpenOnConfigure(open func(ctx context.Context, config []byte) (Store, error)) Store {
	return &lazy{open: open}
}

type lazy struct {
	open func(ctx context.Context, config []byte) (Store, error)
	mu   sync.RWMutex
	s    Store
}

var (
	_ Configurer      = (*lazy)(nil)
	_ Batcher         = (*lazy)(nil)
	_ MachineBatcher  = (*lazy)(nil)
	_ FireBatcher     = (*lazy)(nil)
	_ RunBatchReader  = (*lazy)(nil)
	_ RunBatchUpdater = (*lazy)(nil)
)

func (l *lazy) Configure(ctx context.Context, config []byte) error {
	s, err := l.open(ctx, config)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.s
	l.s = s
	l.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return nil
}

func (l *lazy) get() (Store, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.s == nil {
		return nil, fmt.Errorf("store not configured yet: %w", ErrUnavailable)
	}
	return l.s, nil
}

func (l *lazy) CreateRun(ctx context.Context, run Run) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.CreateRun(ctx, run)
}

func (l *lazy) AddMachines(ctx context.Context, runID string, machines []Machine) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.AddMachines(ctx, runID, machines)
}

func (l *lazy) UpdateRun(ctx context.Context, runID string, u RunUpdate) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.UpdateRun(ctx, runID, u)
}

func (l *lazy) UpdateMachine(ctx context.Context, runID, machine string, u MachineUpdate) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.UpdateMachine(ctx, runID, machine, u)
}

func (l *lazy) GetRun(ctx context.Context, runID string) (Run, error) {
	s, err := l.get()
	if err != nil {
		return Run{}, err
	}
	return s.GetRun(ctx, runID)
}

func (l *lazy) ListRuns(ctx context.Context, f RunFilter) ([]Run, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.ListRuns(ctx, f)
}

func (l *lazy) LastRuns(ctx context.Context, q LastRunsQuery) ([]RunSummary, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.LastRuns(ctx, q)
}

func (l *lazy) AppendOutput(ctx context.Context, runID, machine string, c Chunk) (int64, error) {
	s, err := l.get()
	if err != nil {
		return 0, err
	}
	return s.AppendOutput(ctx, runID, machine, c)
}

// AppendOutputBatch uses the opened store's batches, or appends one by one.
func (l *lazy) AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult {
	return batched(l, len(batch), func(s Store) []AppendResult { return AppendBatch(ctx, s, batch) },
		func(err error) AppendResult { return AppendResult{Err: err} })
}

// UpdateMachines uses the opened store's batches, or updates side by side.
func (l *lazy) UpdateMachines(ctx context.Context, batch []MachineChange) []error {
	return batched(l, len(batch), func(s Store) []error { return UpdateBatch(ctx, s, batch) },
		func(err error) error { return err })
}

// Fires uses the opened store's batches, or records side by side.
func (l *lazy) Fires(ctx context.Context, batch []Fire) []FireResult {
	return batched(l, len(batch), func(s Store) []FireResult { return FireBatch(ctx, s, batch) },
		func(err error) FireResult { return FireResult{Err: err} })
}

// GetRuns uses the opened store's batches, or reads side by side.
func (l *lazy) GetRuns(ctx context.Context, ids []string) []RunResult {
	return batched(l, len(ids), func(s Store) []RunResult { return GetRunBatch(ctx, s, ids) },
		func(err error) RunResult { return RunResult{Err: err} })
}

// UpdateRuns uses the opened store's batches, or updates side by side.
func (l *lazy) UpdateRuns(ctx context.Context, batch []RunChange) []error {
	return batched(l, len(batch), func(s Store) []error { return UpdateRunBatch(ctx, s, batch) },
		func(err error) error { return err })
}

// batched hands a batch of n items to the opened store through do; with
// none opened yet, each item's answer is that error, made by fail.
func batched[R any](l *lazy, n int, do func(Store) []R, fail func(error) R) []R {
	s, err := l.get()
	if err != nil {
		out := make([]R, n)
		for i := range out {
			out[i] = fail(err)
		}
		return out
	}
	return do(s)
}

func (l *lazy) ReadOutput(ctx context.Context, q OutputQuery) (Output, error) {
	s, err := l.get()
	if err != nil {
		return Output{}, err
	}
	return s.ReadOutput(ctx, q)
}

func (l *lazy) SetOverride(ctx context.Context, o JobOverride) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.SetOverride(ctx, o)
}

func (l *lazy) DeleteOverride(ctx context.Context, job string) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.DeleteOverride(ctx, job)
}

func (l *lazy) Overrides(ctx context.Context) ([]JobOverride, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.Overrides(ctx)
}

func (l *lazy) SetMaintenance(ctx context.Context, m Maintenance) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.SetMaintenance(ctx, m)
}

func (l *lazy) GetMaintenance(ctx context.Context) (Maintenance, error) {
	s, err := l.get()
	if err != nil {
		return Maintenance{}, err
	}
	return s.GetMaintenance(ctx)
}

func (l *lazy) DeleteMaintenance(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.DeleteMaintenance(ctx)
}

func (l *lazy) FireRun(ctx context.Context, run Run) (bool, error) {
	s, err := l.get()
	if err != nil {
		return false, err
	}
	return s.FireRun(ctx, run)
}

func (l *lazy) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	s, err := l.get()
	if err != nil {
		return false, err
	}
	return s.RecordFire(ctx, job, slot, runID)
}

func (l *lazy) LastFire(ctx context.Context, job string) (time.Time, error) {
	s, err := l.get()
	if err != nil {
		return time.Time{}, err
	}
	return s.LastFire(ctx, job)
}

func (l *lazy) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.LastFires(ctx, jobs)
}

func (l *lazy) PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	s, err := l.get()
	if err != nil {
		return 0, err
	}
	return s.PruneRuns(ctx, finishedBefore)
}

func (l *lazy) EnqueueNotifications(ctx context.Context, ns []Notification) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.EnqueueNotifications(ctx, ns)
}

func (l *lazy) ClaimNotifications(ctx context.Context, r ClaimRequest) ([]Notification, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.ClaimNotifications(ctx, r)
}

func (l *lazy) FinishNotification(ctx context.Context, id, owner string, r NotificationResult) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.FinishNotification(ctx, id, owner, r)
}

func (l *lazy) ListNotifications(ctx context.Context, f NotificationFilter) ([]Notification, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.ListNotifications(ctx, f)
}

func (l *lazy) AppendAudit(ctx context.Context, e AuditEntry) (int64, error) {
	s, err := l.get()
	if err != nil {
		return 0, err
	}
	return s.AppendAudit(ctx, e)
}

func (l *lazy) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	s, err := l.get()
	if err != nil {
		return nil, err
	}
	return s.ListAudit(ctx, f)
}

func (l *lazy) Ping(ctx context.Context) error {
	s, err := l.get()
	if err != nil {
		return err
	}
	return s.Ping(ctx)
}

func (l *lazy) Close() error {
	l.mu.Lock()
	s := l.s
	l.s = nil
	l.mu.Unlock()
	if s == nil {
		return nil
	}
	return s.Close()
}

// DecodeConfig decodes a store block's config (a JSON object; empty is
// "{}") into v, refusing unknown keys: an operator's typo must be an
// error, not a silently ignored setting.
func DecodeConfig(config []byte, v any) error {
	if len(bytes.TrimSpace(config)) == 0 {
		config = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(config))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode store config: %w", err)
	}
	return nil
}

package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// DefaultListLimit is how many runs ListRuns returns when the filter sets
// no limit.
const DefaultListLimit = 100

// Store is an in-memory store.Store, safe for concurrent use.
//
// Decisions where store.go is silent:
//   - the store keeps what it is told: it does not derive a run's status
//     from its machines (the runner does, with store.Aggregate);
//   - ListRuns orders runs by StartedAt, or ScheduledFor while StartedAt
//     is zero, newest first, ties broken by creation order (newest first);
//     Before keeps runs whose time is strictly before it;
//   - DeleteOverride of a job without an override succeeds (idempotent);
//   - AppendOutput accepts output for a final machine (a lost machine's
//     wrapper may come back and finish sending);
//   - after Close every call returns store.ErrUnavailable;
//   - a cancelled context makes a call fail with its error.
type Store struct {
	mu        sync.RWMutex
	closed    bool
	seq       int64 // creation counter
	runs      map[string]*runRec
	overrides map[string]store.JobOverride
	// fires holds each job's recorded slots, as unix nanoseconds: the
	// instant, whatever zone the slot came in.
	fires map[string]map[int64]string
}

type runRec struct {
	created  int64
	run      store.Run // Machines is always nil here
	machines []*machRec
	byName   map[string]*machRec
}

type machRec struct {
	m      store.Machine
	chunks []store.Chunk
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{runs: map[string]*runRec{}, overrides: map[string]store.JobOverride{}, fires: map[string]map[int64]string{}}
}

// check returns the error a call must fail with before doing anything.
// Call with s.mu held.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed {
		return fmt.Errorf("memory store closed: %w", store.ErrUnavailable)
	}
	return nil
}

// CreateRun stores a new run with its machines.
func (s *Store) CreateRun(ctx context.Context, run store.Run) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if run.ID == "" {
		return fmt.Errorf("create run: empty id")
	}
	if _, ok := s.runs[run.ID]; ok {
		return fmt.Errorf("create run %s: %w", run.ID, store.ErrExists)
	}
	machines := run.Machines
	run.Machines = nil
	run.Spec = bytes.Clone(run.Spec)
	run.Actions = slices.Clone(run.Actions)
	s.seq++
	r := &runRec{created: s.seq, run: run, byName: map[string]*machRec{}}
	if err := r.add(machines); err != nil {
		return fmt.Errorf("create run %s: %w", run.ID, err)
	}
	s.runs[run.ID] = r
	return nil
}

// add adds machines all or none.
func (r *runRec) add(machines []store.Machine) error {
	seen := map[string]bool{}
	for _, m := range machines {
		if m.Machine == "" {
			return fmt.Errorf("machine with empty name")
		}
		if _, ok := r.byName[m.Machine]; ok || seen[m.Machine] {
			return fmt.Errorf("machine %s: %w", m.Machine, store.ErrExists)
		}
		seen[m.Machine] = true
	}
	for _, m := range machines {
		m = copyMachine(m)
		m.RunID = r.run.ID
		if m.Status == "" {
			m.Status = store.StatusPending
		}
		m.NextSeq, m.OutputBytes = 0, 0
		rec := &machRec{m: m}
		r.machines = append(r.machines, rec)
		r.byName[m.Machine] = rec
	}
	return nil
}

// AddMachines adds machines to a run, in pending status unless set.
func (s *Store) AddMachines(ctx context.Context, runID string, machines []store.Machine) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	r, ok := s.runs[runID]
	if !ok {
		return fmt.Errorf("add machines to run %s: %w", runID, store.ErrNotFound)
	}
	if err := r.add(machines); err != nil {
		return fmt.Errorf("add machines to run %s: %w", runID, err)
	}
	return nil
}

// UpdateRun changes the fields u sets.
func (s *Store) UpdateRun(ctx context.Context, runID string, u store.RunUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	r, ok := s.runs[runID]
	if !ok {
		return fmt.Errorf("update run %s: %w", runID, store.ErrNotFound)
	}
	set(&r.run.Status, u.Status)
	set(&r.run.Reason, u.Reason)
	set(&r.run.StartedAt, u.StartedAt)
	set(&r.run.FinishedAt, u.FinishedAt)
	set(&r.run.KilledBy, u.KilledBy)
	set(&r.run.KilledAt, u.KilledAt)
	if u.AddAction != nil {
		r.run.Actions = append(r.run.Actions, *u.AddAction)
	}
	return nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func setPtr(dst **int, v *int) {
	if v != nil {
		c := *v
		*dst = &c
	}
}

// UpdateMachine changes the fields u sets; with OnlyIfNotFinal it fails
// with store.ErrFinal, changing nothing, when the machine is final.
func (s *Store) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	rec, err := s.machine(runID, machine)
	if err != nil {
		return fmt.Errorf("update machine: %w", err)
	}
	m := &rec.m
	if u.OnlyIfNotFinal && store.Final(m.Status) {
		return fmt.Errorf("update machine %s of run %s (%s): %w", machine, runID, m.Status, store.ErrFinal)
	}
	set(&m.Status, u.Status)
	setPtr(&m.ExitCode, u.ExitCode)
	set(&m.Reason, u.Reason)
	set(&m.SignalName, u.SignalName)
	set(&m.Error, u.Error)
	set(&m.PID, u.PID)
	set(&m.DispatchedAt, u.DispatchedAt)
	set(&m.ConnectedAt, u.ConnectedAt)
	set(&m.StartedAt, u.StartedAt)
	set(&m.FinishedAt, u.FinishedAt)
	set(&m.LastHeartbeat, u.LastHeartbeat)
	set(&m.WrapperVersion, u.WrapperVersion)
	set(&m.Protocol, u.Protocol)
	setPtr(&m.LateExitCode, u.LateExitCode)
	set(&m.LateReason, u.LateReason)
	return nil
}

// machine finds a machine record. Call with s.mu held.
func (s *Store) machine(runID, machine string) (*machRec, error) {
	r, ok := s.runs[runID]
	if !ok {
		return nil, fmt.Errorf("run %s: %w", runID, store.ErrNotFound)
	}
	rec, ok := r.byName[machine]
	if !ok {
		return nil, fmt.Errorf("machine %s of run %s: %w", machine, runID, store.ErrNotFound)
	}
	return rec, nil
}

// GetRun returns a copy of a run with its machines.
func (s *Store) GetRun(ctx context.Context, runID string) (store.Run, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return store.Run{}, err
	}
	r, ok := s.runs[runID]
	if !ok {
		return store.Run{}, fmt.Errorf("get run %s: %w", runID, store.ErrNotFound)
	}
	return r.snapshot(), nil
}

func (r *runRec) snapshot() store.Run {
	run := r.run
	run.Spec = bytes.Clone(r.run.Spec)
	run.Actions = slices.Clone(r.run.Actions)
	run.Machines = make([]store.Machine, 0, len(r.machines))
	for _, m := range r.machines {
		run.Machines = append(run.Machines, copyMachine(m.m))
	}
	return run
}

func copyMachine(m store.Machine) store.Machine {
	if m.ExitCode != nil {
		c := *m.ExitCode
		m.ExitCode = &c
	}
	if m.LateExitCode != nil {
		c := *m.LateExitCode
		m.LateExitCode = &c
	}
	return m
}

// when is the time a run is ordered by.
func (r *runRec) when() time.Time {
	if !r.run.StartedAt.IsZero() {
		return r.run.StartedAt
	}
	return r.run.ScheduledFor
}

// ListRuns returns the runs f selects, newest first.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var sel []*runRec
	for _, r := range s.runs {
		switch {
		case f.Job != "" && r.run.Job != f.Job:
		case f.Status != "" && r.run.Status != f.Status:
		case f.Active && store.Final(r.run.Status):
		case !f.Before.IsZero() && !r.when().Before(f.Before):
		default:
			sel = append(sel, r)
		}
	}
	slices.SortFunc(sel, func(a, b *runRec) int {
		if c := b.when().Compare(a.when()); c != 0 {
			return c
		}
		return cmp.Compare(b.created, a.created)
	})
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	if len(sel) > limit {
		sel = sel[:limit]
	}
	out := make([]store.Run, 0, len(sel))
	for _, r := range sel {
		out = append(out, r.snapshot())
	}
	return out, nil
}

// AppendOutput stores c if it is the machine's next seq.
func (s *Store) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	rec, err := s.machine(runID, machine)
	if err != nil {
		return 0, fmt.Errorf("append output: %w", err)
	}
	next := rec.m.NextSeq
	switch {
	case c.Seq < next:
		return next, nil
	case c.Seq > next:
		return next, fmt.Errorf("append output seq %d to %s of run %s, expected %d: %w",
			c.Seq, machine, runID, next, store.ErrOutOfOrder)
	}
	c.Data = bytes.Clone(c.Data)
	rec.chunks = append(rec.chunks, c)
	rec.m.NextSeq++
	rec.m.OutputBytes += int64(len(c.Data))
	return rec.m.NextSeq, nil
}

// ReadOutput returns the selected bytes from q.Offset (at most q.Limit of
// them) and the selection's total size. A negative offset reads from 0.
func (s *Store) ReadOutput(ctx context.Context, q store.OutputQuery) ([]byte, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, 0, err
	}
	rec, err := s.machine(q.RunID, q.Machine)
	if err != nil {
		return nil, 0, fmt.Errorf("read output: %w", err)
	}
	off := max(q.Offset, 0)
	var total int64
	var out []byte
	for _, c := range rec.chunks {
		if q.Stream != "" && c.Stream != q.Stream {
			continue
		}
		start, end := total, total+int64(len(c.Data))
		total = end
		if end <= off {
			continue
		}
		from := max(off-start, 0)
		part := c.Data[from:]
		if q.Limit > 0 {
			room := q.Limit - int64(len(out))
			if room <= 0 {
				continue
			}
			if int64(len(part)) > room {
				part = part[:room]
			}
		}
		out = append(out, part...)
	}
	if out == nil {
		out = []byte{}
	}
	return out, total, nil
}

// SetOverride stores or replaces a job's override.
func (s *Store) SetOverride(ctx context.Context, o store.JobOverride) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if o.Job == "" {
		return fmt.Errorf("set override: empty job name")
	}
	s.overrides[o.Job] = o
	return nil
}

// DeleteOverride drops a job's override; none is fine.
func (s *Store) DeleteOverride(ctx context.Context, job string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	delete(s.overrides, job)
	return nil
}

// Overrides lists every override in job name order.
func (s *Store) Overrides(ctx context.Context) ([]store.JobOverride, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := make([]store.JobOverride, 0, len(s.overrides))
	for _, o := range s.overrides {
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b store.JobOverride) int { return cmp.Compare(a.Job, b.Job) })
	return out, nil
}

// PruneRuns deletes finished runs older than finishedBefore.
func (s *Store) PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	n := 0
	for id, r := range s.runs {
		if store.Final(r.run.Status) && !r.run.FinishedAt.IsZero() && r.run.FinishedAt.Before(finishedBefore) {
			delete(s.runs, id)
			n++
		}
	}
	return n, nil
}

// RecordFire records (job, slot) once.
func (s *Store) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return false, err
	}
	slots := s.fires[job]
	if slots == nil {
		slots = map[int64]string{}
		s.fires[job] = slots
	}
	k := slot.UnixNano()
	if _, done := slots[k]; done {
		return false, nil
	}
	slots[k] = runID
	return true, nil
}

// LastFire returns the job's latest recorded slot.
func (s *Store) LastFire(ctx context.Context, job string) (time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return time.Time{}, err
	}
	var last int64
	found := false
	for k := range s.fires[job] {
		if !found || k > last {
			last, found = k, true
		}
	}
	if !found {
		return time.Time{}, nil
	}
	return time.Unix(0, last).UTC(), nil
}

// Ping fails only after Close.
func (s *Store) Ping(ctx context.Context) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.check(ctx)
}

// Close makes every later call fail with store.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

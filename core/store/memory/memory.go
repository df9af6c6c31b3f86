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
//   - LastRuns picks each job's run in ListRuns's order, and its first
//     machines by name in byte order;
//   - DeleteOverride of a job without an override succeeds (idempotent);
//   - AppendOutput accepts output for a final machine (a lost machine's
//     wrapper may come back and finish sending);
//   - ListNotifications orders by CreatedAt, ties broken by enqueue
//     order, newest first, like ListRuns;
//   - AppendAudit refuses an entry without a time (store.PrepareAudit);
//     ListAudit treats a negative BeforeID as the bound it is (below every
//     id: nothing) and a limit below 1 as none set;
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
	// maintenance is the stored override, nil when none.
	maintenance *store.Maintenance
	// notes is the notification outbox, by id.
	notes map[string]*noteRec
	// audit is the audit log in id order; auditID the last id given, so
	// that a pruned id is never given again.
	audit   []store.AuditEntry
	auditID int64
}

// noteRec is a stored notification with its lease.
type noteRec struct {
	n       store.Notification
	created int64 // creation counter: breaks ties in order
	// owner holds the lease until leaseUntil while leased; once finished
	// it is the owner that finished last, at finishedAt.
	owner      string
	leased     bool
	leaseUntil time.Time
	finishedAt time.Time
}

type runRec struct {
	created  int64
	run      store.Run // Machines is always nil here
	machines []*machRec
	byName   map[string]*machRec
}

type machRec struct {
	m store.Machine
	// chunks are the stored chunks in seq order; the output cap may have
	// dropped some between the head and the tail.
	chunks []memChunk
	// streamEnd is each stream's size, dropped bytes included: a stream's
	// dropped newest chunk must not move the offsets of its next.
	streamEnd map[string]int64
	stored    int64
}

// memChunk is a stored chunk with its offsets in the machine's whole
// output and in its stream.
type memChunk struct {
	store.Chunk
	start, streamStart int64
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{runs: map[string]*runRec{}, overrides: map[string]store.JobOverride{},
		fires: map[string]map[int64]string{}, notes: map[string]*noteRec{}}
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
	return s.createRun(run)
}

// createRun is CreateRun with s.mu held.
func (s *Store) createRun(run store.Run) error {
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
		m.NextSeq, m.OutputBytes, m.OutputDropped = 0, 0, 0
		rec := &machRec{m: m, streamEnd: map[string]int64{}}
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

// UpdateRun changes the fields u sets and enqueues u.Notifications, all
// or nothing.
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
	notes, err := store.PrepareNotifications(u.Notifications)
	if err != nil {
		return fmt.Errorf("update run %s: %w", runID, err)
	}
	s.enqueue(notes)
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

// LastRuns returns each named job's latest run, in ListRuns's order,
// with at most q.Machines machines (the first by name) and all of them
// counted by status; ordered by job name.
func (s *Store) LastRuns(ctx context.Context, q store.LastRunsQuery) ([]store.RunSummary, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var named map[string]bool
	if len(q.Jobs) > 0 {
		named = make(map[string]bool, len(q.Jobs))
		for _, j := range q.Jobs {
			named[j] = true
		}
	}
	latest := map[string]*runRec{}
	for _, r := range s.runs {
		if named != nil && !named[r.run.Job] {
			continue
		}
		if l, ok := latest[r.run.Job]; !ok || newer(r, l) {
			latest[r.run.Job] = r
		}
	}
	out := make([]store.RunSummary, 0, len(latest))
	for _, r := range latest {
		out = append(out, r.summary(q.Machines))
	}
	store.SortRunSummaries(out)
	return out, nil
}

// newer tells whether a comes before b in ListRuns's order.
func newer(a, b *runRec) bool {
	if c := a.when().Compare(b.when()); c != 0 {
		return c > 0
	}
	return a.created > b.created
}

// summary is the run as LastRuns answers it: store.SummarizeRun's, without
// copying every machine of a large run first.
func (r *runRec) summary(machines int) store.RunSummary {
	counts := map[string]int{}
	for _, m := range r.machines {
		counts[m.m.Status]++
	}
	run := r.run
	run.Spec = bytes.Clone(r.run.Spec)
	run.Actions = slices.Clone(r.run.Actions)
	run.Machines = []store.Machine{}
	if machines > 0 {
		recs := slices.Clone(r.machines)
		slices.SortFunc(recs, func(a, b *machRec) int { return cmp.Compare(a.m.Machine, b.m.Machine) })
		for _, m := range recs[:min(machines, len(recs))] {
			run.Machines = append(run.Machines, copyMachine(m.m))
		}
	}
	return store.RunSummary{Run: run, MachineCounts: counts}
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
	c.Data = bytes.Clone(c.Data) // the caller's buffer: see store.Chunk.Data
	n := int64(len(c.Data))
	rec.chunks = append(rec.chunks, memChunk{Chunk: c, start: rec.m.OutputBytes, streamStart: rec.streamEnd[c.Stream]})
	rec.streamEnd[c.Stream] += n
	rec.m.NextSeq++
	rec.m.OutputBytes += n
	rec.stored += n
	rec.capOutput()
	return rec.m.NextSeq, nil
}

// capOutput drops the oldest chunks past the head, never the newest,
// while what stays is at least the cap (see store's package doc).
func (rec *machRec) capOutput() {
	limit := rec.m.OutputCap
	if limit <= 0 || rec.stored <= limit {
		return
	}
	head := store.HeadBytes(limit)
	first := 0
	for first < len(rec.chunks) && rec.chunks[first].start < head {
		first++
	}
	if first >= len(rec.chunks)-1 {
		return
	}
	var sizes []int64
	for _, c := range rec.chunks[first : len(rec.chunks)-1] {
		sizes = append(sizes, int64(len(c.Data)))
	}
	n, freed := store.ToDrop(limit, rec.stored, sizes)
	rec.chunks = slices.Delete(rec.chunks, first, first+n)
	rec.stored -= freed
	rec.m.OutputDropped += freed
}

// ReadOutput returns the selected bytes from q.Offset (at most q.Limit of
// them, dropped stretches marked), where to read on from, and the
// selection's whole size. A negative offset reads from 0.
func (s *Store) ReadOutput(ctx context.Context, q store.OutputQuery) (store.Output, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return store.Output{}, err
	}
	rec, err := s.machine(q.RunID, q.Machine)
	if err != nil {
		return store.Output{}, fmt.Errorf("read output: %w", err)
	}
	total := rec.m.OutputBytes
	if q.Stream != "" {
		total = rec.streamEnd[q.Stream]
	}
	plan := store.NewReadPlan(q, total)
	// The first chunk ending past the offset, found by halving: chunks
	// are in offset order.
	from, _ := slices.BinarySearchFunc(rec.chunks, plan.Offset(), func(c memChunk, off int64) int {
		return cmp.Compare(c.start+int64(len(c.Data)), off+1)
	})
	for _, c := range rec.chunks[from:] {
		start := c.start
		if q.Stream != "" {
			if c.Stream != q.Stream {
				continue
			}
			start = c.streamStart
		}
		if !plan.Add(start, c.Data) {
			break
		}
	}
	return plan.Done(), nil
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

// SetMaintenance stores the maintenance override, replacing any.
func (s *Store) SetMaintenance(ctx context.Context, m store.Maintenance) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	m.Machines = slices.Clone(m.Machines)
	s.maintenance = &m
	return nil
}

// GetMaintenance returns the stored override, store.ErrNotFound when none.
func (s *Store) GetMaintenance(ctx context.Context) (store.Maintenance, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return store.Maintenance{}, err
	}
	if s.maintenance == nil {
		return store.Maintenance{}, fmt.Errorf("maintenance override: %w", store.ErrNotFound)
	}
	m := *s.maintenance
	m.Machines = slices.Clone(m.Machines)
	return m, nil
}

// DeleteMaintenance drops the override; none is fine.
func (s *Store) DeleteMaintenance(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	s.maintenance = nil
	return nil
}

// PruneRuns deletes finished runs older than finishedBefore, the
// delivered and failed notifications created before it, and the audit
// entries recorded before it.
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
	for id, rec := range s.notes {
		if rec.n.State != store.NotificationPending && rec.n.CreatedAt.Before(finishedBefore) {
			delete(s.notes, id)
		}
	}
	s.audit = slices.DeleteFunc(s.audit, func(e store.AuditEntry) bool { return e.At.Before(finishedBefore) })
	return n, nil
}

// AppendAudit stores e with the next id.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	e, err := store.PrepareAudit(e)
	if err != nil {
		return 0, fmt.Errorf("append audit entry: %w", err)
	}
	s.auditID++
	e.ID = s.auditID
	s.audit = append(s.audit, e)
	return e.ID, nil
}

// ListAudit returns the entries f selects, newest (largest id) first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	limit := store.AuditLimit(f.Limit)
	out := []store.AuditEntry{}
	for i := len(s.audit) - 1; i >= 0 && len(out) < limit; i-- {
		e := s.audit[i]
		if (f.BeforeID == 0 || e.ID < f.BeforeID) && (f.Job == "" || e.Job == f.Job) &&
			(f.By == "" || e.By == f.By) && (f.Action == "" || e.Action == f.Action) {
			out = append(out, e)
		}
	}
	return out, nil
}

// EnqueueNotifications stores notifications, pending; an id already
// stored is left as it is.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []store.Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	notes, err := store.PrepareNotifications(ns)
	if err != nil {
		return fmt.Errorf("enqueue notifications: %w", err)
	}
	s.enqueue(notes)
	return nil
}

// enqueue stores prepared notifications whose id is new. Call with s.mu
// held.
func (s *Store) enqueue(ns []store.Notification) {
	for _, n := range ns {
		if _, ok := s.notes[n.ID]; ok {
			continue
		}
		s.seq++
		s.notes[n.ID] = &noteRec{n: n, created: s.seq}
	}
}

// copyNote is a notification as returned: the caller may not reach the
// stored event.
func copyNote(rec *noteRec) store.Notification {
	n := rec.n
	n.Event = bytes.Clone(n.Event)
	return n
}

// ClaimNotifications leases due, unleased notifications to r.Owner,
// oldest DueAt first.
func (s *Store) ClaimNotifications(ctx context.Context, r store.ClaimRequest) ([]store.Notification, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	var due []*noteRec
	for _, rec := range s.notes {
		if rec.n.State == store.NotificationPending && !rec.n.DueAt.After(r.Now) &&
			(!rec.leased || !rec.leaseUntil.After(r.Now)) {
			due = append(due, rec)
		}
	}
	slices.SortFunc(due, func(a, b *noteRec) int {
		if c := a.n.DueAt.Compare(b.n.DueAt); c != 0 {
			return c
		}
		return cmp.Compare(a.created, b.created)
	})
	due = due[:min(len(due), store.NotificationLimit(r.Limit))]
	out := make([]store.Notification, 0, len(due))
	for _, rec := range due {
		rec.owner, rec.leased, rec.leaseUntil = r.Owner, true, r.Now.Add(r.Lease)
		out = append(out, copyNote(rec))
	}
	return out, nil
}

// FinishNotification applies r to a notification leased to owner and
// releases the lease; see store.CheckFinish.
func (s *Store) FinishNotification(ctx context.Context, id, owner string, r store.NotificationResult) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := r.Check(); err != nil {
		return fmt.Errorf("finish notification %s: %w", id, err)
	}
	rec, ok := s.notes[id]
	if !ok {
		return fmt.Errorf("finish notification %s: %w", id, store.ErrNotFound)
	}
	apply, err := store.CheckFinish(store.LeaseRecord{State: rec.n.State, Owner: rec.owner, Leased: rec.leased,
		FinishedAt: rec.finishedAt, DueAt: rec.n.DueAt, LastError: rec.n.LastError}, id, owner, r)
	if err != nil || !apply {
		return err
	}
	r.Apply(&rec.n)
	rec.leased, rec.leaseUntil, rec.finishedAt = false, time.Time{}, r.At
	return nil
}

// ListNotifications returns the notifications f selects, newest first.
func (s *Store) ListNotifications(ctx context.Context, f store.NotificationFilter) ([]store.Notification, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var sel []*noteRec
	for _, rec := range s.notes {
		if (f.State == "" || rec.n.State == f.State) && (f.Job == "" || rec.n.Job == f.Job) {
			sel = append(sel, rec)
		}
	}
	slices.SortFunc(sel, func(a, b *noteRec) int {
		if c := b.n.CreatedAt.Compare(a.n.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.created, a.created)
	})
	sel = sel[:min(len(sel), store.NotificationLimit(f.Limit))]
	out := make([]store.Notification, 0, len(sel))
	for _, rec := range sel {
		out = append(out, copyNote(rec))
	}
	return out, nil
}

// RecordFire records (job, slot) once.
func (s *Store) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return false, err
	}
	return s.recordFire(job, slot, runID), nil
}

// FireRun records the run's slot and creates the run, both or neither.
func (s *Store) FireRun(ctx context.Context, run store.Run) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(ctx); err != nil {
		return false, err
	}
	if run.Job == "" || run.ScheduledFor.IsZero() {
		return false, fmt.Errorf("fire run %s: no job or no slot", run.ID)
	}
	if _, done := s.fires[run.Job][run.ScheduledFor.UnixNano()]; done {
		return false, nil
	}
	if err := s.createRun(run); err != nil {
		return false, err
	}
	return s.recordFire(run.Job, run.ScheduledFor, run.ID), nil
}

// recordFire is RecordFire with s.mu held.
func (s *Store) recordFire(job string, slot time.Time, runID string) bool {
	slots := s.fires[job]
	if slots == nil {
		slots = map[int64]string{}
		s.fires[job] = slots
	}
	k := slot.UnixNano()
	if _, done := slots[k]; done {
		return false
	}
	slots[k] = runID
	return true
}

// LastFire returns the job's latest recorded slot.
func (s *Store) LastFire(ctx context.Context, job string) (time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return time.Time{}, err
	}
	last, _ := s.lastFire(job)
	return last, nil
}

// LastFires returns the latest recorded slot of each named job that has
// one.
func (s *Store) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(jobs))
	for _, job := range jobs {
		if last, ok := s.lastFire(job); ok {
			out[job] = last
		}
	}
	return out, nil
}

// lastFire is the job's latest recorded slot, false when none. Call with
// s.mu held.
func (s *Store) lastFire(job string) (time.Time, bool) {
	var last int64
	found := false
	for k := range s.fires[job] {
		if !found || k > last {
			last, found = k, true
		}
	}
	if !found {
		return time.Time{}, false
	}
	return time.Unix(0, last).UTC(), true
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

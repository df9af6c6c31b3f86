package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// enc turns times into stored values: unix nanoseconds, NULL for the zero
// time. It keeps the first time it cannot store exactly.
type enc struct{ err error }

// minTime and maxTime bound what an int64 of nanoseconds holds.
var (
	minTime = time.Unix(0, -1<<63+1)
	maxTime = time.Unix(0, 1<<63-1)
)

func (e *enc) t(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		if e.err == nil {
			e.err = fmt.Errorf("time %s outside what the store keeps (years 1678 to 2262)", t)
		}
		return nil
	}
	return t.UnixNano()
}

func (e *enc) tp(t *time.Time) any { return e.t(*t) }

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func intPtr(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

func nullInt(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// read runs fn in a read transaction, so that what it reads is one
// snapshot.
func (s *Store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	tx, err := s.r.BeginTx(ctx, nil)
	if err != nil {
		return s.dbErr(ctx, err)
	}
	defer tx.Rollback() //nolint:errcheck // read only
	return fn(tx)
}

// dbErr wraps a database error with the file, preferring the context's
// error when it is done.
func (s *Store) dbErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w (%v)", cerr, err)
	}
	return fmt.Errorf("sqlite store %s: %w", s.path, wrapErr(err))
}

// CreateRun stores a new run with its machines.
func (s *Store) CreateRun(ctx context.Context, run store.Run) error {
	if run.ID == "" {
		return errors.New("create run: empty id")
	}
	return s.write(ctx, func(tx *sql.Tx) error { return s.createRunTx(ctx, tx, run) })
}

// createRunTx is CreateRun in tx.
func (s *Store) createRunTx(ctx context.Context, tx *sql.Tx, run store.Run) error {
	var one int
	switch err := s.wq.queryRow(ctx, tx, runExistsSQL, run.ID).Scan(&one); {
	case err == nil:
		return fmt.Errorf("create run %s: %w", run.ID, store.ErrExists)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("create run %s: %w", run.ID, s.dbErr(ctx, err))
	}
	var e enc
	args := []any{run.ID, run.Job, run.Trigger, e.t(run.ScheduledFor), e.t(run.StartedAt), e.t(run.FinishedAt),
		run.Status, run.Reason, run.RequestedBy, run.KilledBy, e.t(run.KilledAt), run.Spec}
	if e.err != nil {
		return fmt.Errorf("create run %s: %w", run.ID, e.err)
	}
	if _, err := s.wq.exec(ctx, tx, insertRunSQL, args...); err != nil {
		return fmt.Errorf("create run %s: %w", run.ID, s.dbErr(ctx, err))
	}
	for _, a := range run.Actions {
		if err := s.addAction(ctx, tx, run.ID, a); err != nil {
			return fmt.Errorf("create run %s: %w", run.ID, s.dbErr(ctx, err))
		}
	}
	if err := s.addMachines(ctx, tx, run.ID, run.Machines); err != nil {
		return fmt.Errorf("create run %s: %w", run.ID, err)
	}
	return nil
}

func (s *Store) addAction(ctx context.Context, tx *sql.Tx, runID string, a store.Action) error {
	var e enc
	at := e.t(a.At)
	if e.err != nil {
		return e.err
	}
	_, err := s.wq.exec(ctx, tx, insertActionSQL, runID, a.Kind, a.Machine, a.Signal, int64(a.Grace), a.By, at)
	return err
}

// addMachines adds machines to a run, all or none.
func (s *Store) addMachines(ctx context.Context, tx *sql.Tx, runID string, machines []store.Machine) error {
	seen := map[string]bool{}
	for _, m := range machines {
		if m.Machine == "" {
			return errors.New("machine with empty name")
		}
		if seen[m.Machine] {
			return fmt.Errorf("machine %s: %w", m.Machine, store.ErrExists)
		}
		seen[m.Machine] = true
		var one int
		switch err := s.wq.queryRow(ctx, tx, machineExistsSQL, runID, m.Machine).Scan(&one); {
		case err == nil:
			return fmt.Errorf("machine %s: %w", m.Machine, store.ErrExists)
		case !errors.Is(err, sql.ErrNoRows):
			return s.dbErr(ctx, err)
		}
	}
	for _, m := range machines {
		status := m.Status
		if status == "" {
			status = store.StatusPending
		}
		var e enc
		args := []any{runID, m.Machine, status, nullInt(m.ExitCode), m.Reason, m.SignalName, m.Error, m.PID,
			e.t(m.DispatchedAt), e.t(m.ConnectedAt), e.t(m.StartedAt), e.t(m.FinishedAt), e.t(m.LastHeartbeat),
			m.WrapperVersion, m.Protocol, nullInt(m.LateExitCode), m.LateReason, max(m.OutputCap, 0)}
		if e.err != nil {
			return fmt.Errorf("machine %s: %w", m.Machine, e.err)
		}
		if _, err := s.wq.exec(ctx, tx, insertMachineSQL, args...); err != nil {
			return fmt.Errorf("machine %s: %w", m.Machine, s.dbErr(ctx, err))
		}
	}
	return nil
}

// runExists fails with store.ErrNotFound when the run is missing; tx is
// on c's pool.
func (s *Store) runExists(ctx context.Context, c *stmtCache, tx *sql.Tx, runID string) error {
	var one int
	switch err := c.queryRow(ctx, tx, runExistsSQL, runID).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("run %s: %w", runID, store.ErrNotFound)
	case err != nil:
		return s.dbErr(ctx, err)
	}
	return nil
}

// AddMachines adds machines to a run, in pending status unless set; all
// or none.
func (s *Store) AddMachines(ctx context.Context, runID string, machines []store.Machine) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := s.runExists(ctx, s.wq, tx, runID); err != nil {
			return fmt.Errorf("add machines: %w", err)
		}
		if err := s.addMachines(ctx, tx, runID, machines); err != nil {
			return fmt.Errorf("add machines to run %s: %w", runID, err)
		}
		return nil
	})
}

// sets collects the assignments of an UPDATE.
type sets struct {
	names []string
	cols  []string
	args  []any
}

func (u *sets) add(col string, v any) {
	u.names = append(u.names, col)
	u.cols = append(u.cols, col+" = ?")
	u.args = append(u.args, v)
}

func setIf[T any](u *sets, col string, p *T, conv func(*T) any) {
	if p == nil {
		return
	}
	if conv == nil {
		u.add(col, *p)
		return
	}
	u.add(col, conv(p))
}

// UpdateRun changes the fields u sets, adds u.AddAction and enqueues
// u.Notifications, in one transaction.
func (s *Store) UpdateRun(ctx context.Context, runID string, u store.RunUpdate) error {
	fn, err := s.runWrite(ctx, runID, u)
	if err != nil {
		return err
	}
	return s.write(ctx, fn)
}

// UpdateRuns applies a batch of run updates (store.RunBatchUpdater):
// every update's write joins the shared transaction's queue at once, in
// order, as Fires's do, each in its own savepoint.
func (s *Store) UpdateRuns(ctx context.Context, batch []store.RunChange) []error {
	errs := make([]error, len(batch))
	var fns []func(*sql.Tx) error
	var idx []int
	for i, c := range batch {
		fn, err := s.runWrite(ctx, c.RunID, c.Update)
		if err != nil {
			errs[i] = err
			continue
		}
		fns, idx = append(fns, fn), append(idx, i)
	}
	for j, err := range s.writeAll(ctx, fns) {
		errs[idx[j]] = err
	}
	return errs
}

// runWrite is UpdateRun's write, or why there can be none.
func (s *Store) runWrite(ctx context.Context, runID string, u store.RunUpdate) (func(*sql.Tx) error, error) {
	notes, err := store.PrepareNotifications(u.Notifications)
	if err != nil {
		return nil, fmt.Errorf("update run %s: %w", runID, err)
	}
	var e enc
	var st sets
	setIf(&st, "status", u.Status, nil)
	setIf(&st, "reason", u.Reason, nil)
	setIf(&st, "started_at", u.StartedAt, e.tp)
	setIf(&st, "finished_at", u.FinishedAt, e.tp)
	setIf(&st, "killed_by", u.KilledBy, nil)
	setIf(&st, "killed_at", u.KilledAt, e.tp)
	var q string
	if len(st.cols) > 0 {
		// The columns set, and no other: naming a column that is not set
		// would rewrite the runs indexes over it (status, sort_at and
		// active are indexed). The texts are a few (a run's end, a kill,
		// a queued run's start), each prepared the first time it comes,
		// before the transaction (the writer has one connection); one
		// that cannot be runs as text.
		q = "UPDATE runs SET " + strings.Join(st.cols, ", ") + " WHERE id = ?"
		_ = s.wq.prepare(ctx, q)
	}
	return func(tx *sql.Tx) error {
		if q == "" || e.err != nil {
			if err := s.runExists(ctx, s.wq, tx, runID); err != nil {
				return fmt.Errorf("update run: %w", err)
			}
		}
		if e.err != nil {
			return fmt.Errorf("update run %s: %w", runID, e.err)
		}
		if q != "" {
			// The update finds the run or says it is not there: no read
			// before it.
			res, err := s.wq.exec(ctx, tx, q, append(st.args[:len(st.args):len(st.args)], runID)...)
			if err != nil {
				return fmt.Errorf("update run %s: %w", runID, s.dbErr(ctx, err))
			}
			switch n, err := res.RowsAffected(); {
			case err != nil:
				return fmt.Errorf("update run %s: %w", runID, s.dbErr(ctx, err))
			case n == 0:
				return fmt.Errorf("update run: run %s: %w", runID, store.ErrNotFound)
			}
		}
		if u.AddAction != nil {
			if err := s.addAction(ctx, tx, runID, *u.AddAction); err != nil {
				return fmt.Errorf("update run %s: add action: %w", runID, s.dbErr(ctx, err))
			}
		}
		if err := s.enqueueTx(ctx, tx, notes); err != nil {
			return fmt.Errorf("update run %s: %w", runID, err)
		}
		return nil
	}, nil
}

// machRow is what a write to a machine reads first.
type machRow struct {
	status string
	// next is the next output seq; size the whole output's size; stored
	// what the output cap (0: none) left of it.
	next, size, stored, cap int64
}

// machineRow reads what a write to a machine needs, failing with
// store.ErrNotFound for a missing run or machine.
func (s *Store) machineRow(ctx context.Context, tx *sql.Tx, runID, machine string) (machRow, error) {
	var r machRow
	err := tx.StmtContext(ctx, s.stmts.machine).QueryRowContext(ctx, runID, machine).Scan(&r.status, &r.next, &r.size, &r.stored, &r.cap)
	if errors.Is(err, sql.ErrNoRows) {
		if err := s.runExists(ctx, s.wq, tx, runID); err != nil {
			return r, err
		}
		return r, fmt.Errorf("machine %s of run %s: %w", machine, runID, store.ErrNotFound)
	}
	if err != nil {
		return r, s.dbErr(ctx, err)
	}
	return r, nil
}

// UpdateMachine changes the fields u sets; with OnlyIfNotFinal it fails
// with store.ErrFinal, changing nothing, when the machine is final.
func (s *Store) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	return s.write(ctx, s.machineWrite(ctx, runID, machine, u))
}

// UpdateMachines applies a batch of machine updates (store.MachineBatcher):
// its writes join the group commit's queue together, so that they share
// transactions as far as its bounds allow.
func (s *Store) UpdateMachines(ctx context.Context, batch []store.MachineChange) []error {
	fns := make([]func(*sql.Tx) error, len(batch))
	for i, c := range batch {
		fns[i] = s.machineWrite(ctx, c.RunID, c.Machine, c.Update)
	}
	return s.writeAll(ctx, fns)
}

// machineWrite is UpdateMachine's write.
func (s *Store) machineWrite(ctx context.Context, runID, machine string, u store.MachineUpdate) func(*sql.Tx) error {
	var e enc
	var st sets
	setIf(&st, "status", u.Status, nil)
	setIf(&st, "exit_code", u.ExitCode, func(p *int) any { return int64(*p) })
	setIf(&st, "reason", u.Reason, nil)
	setIf(&st, "signal_name", u.SignalName, nil)
	setIf(&st, "error", u.Error, nil)
	setIf(&st, "pid", u.PID, nil)
	setIf(&st, "dispatched_at", u.DispatchedAt, e.tp)
	setIf(&st, "connected_at", u.ConnectedAt, e.tp)
	setIf(&st, "started_at", u.StartedAt, e.tp)
	setIf(&st, "finished_at", u.FinishedAt, e.tp)
	setIf(&st, "last_heartbeat", u.LastHeartbeat, e.tp)
	setIf(&st, "wrapper_version", u.WrapperVersion, nil)
	setIf(&st, "protocol", u.Protocol, nil)
	setIf(&st, "late_exit_code", u.LateExitCode, func(p *int) any { return int64(*p) })
	setIf(&st, "late_reason", u.LateReason, nil)
	var cols uint32
	args := make([]any, 0, len(st.args)+2)
	for i, col := range machineSetCols {
		if j := slices.Index(st.names, col); j >= 0 {
			cols |= 1 << i
			args = append(args, st.args[j])
		}
	}
	args = append(args, runID, machine)
	q := updateMachineSQL(cols, u.OnlyIfNotFinal)
	if cols != 0 {
		// Before the transaction: the writer has one connection.
		_ = s.wq.prepare(ctx, q)
	}
	// why reads the machine to say why it was not (or is not to be)
	// updated: not there, or final when u says only if not.
	why := func(tx *sql.Tx) error {
		row, err := s.machineRow(ctx, tx, runID, machine)
		if err != nil {
			return fmt.Errorf("update machine: %w", err)
		}
		if u.OnlyIfNotFinal && store.Final(row.status) {
			return fmt.Errorf("update machine %s of run %s (%s): %w", machine, runID, row.status, store.ErrFinal)
		}
		return nil
	}
	return func(tx *sql.Tx) error {
		if e.err != nil || len(st.cols) == 0 {
			// Nothing to write: the machine's absence or finality is
			// still the answer, before a bad value's.
			if err := why(tx); err != nil {
				return err
			}
			if e.err != nil {
				return fmt.Errorf("update machine %s of run %s: %w", machine, runID, e.err)
			}
			return nil
		}
		// The common case is one statement: the read that would tell why
		// nothing was updated is made only when nothing was.
		res, err := s.wq.exec(ctx, tx, q, args...)
		if err != nil {
			return fmt.Errorf("update machine %s of run %s: %w", machine, runID, s.dbErr(ctx, err))
		}
		switch n, err := res.RowsAffected(); {
		case err != nil:
			return fmt.Errorf("update machine %s of run %s: %w", machine, runID, s.dbErr(ctx, err))
		case n > 0:
			return nil
		}
		if err := why(tx); err != nil {
			return err
		}
		// Not expected: the transaction sees the machine, not final.
		return fmt.Errorf("update machine %s of run %s: no row updated", machine, runID)
	}
}

const runCols = `id, job, trigger, scheduled_for, started_at, finished_at, status, reason,
	requested_by, killed_by, killed_at, spec`

type scanner interface{ Scan(...any) error }

func scanRun(sc scanner) (store.Run, error) {
	var r store.Run
	var sched, started, finished, killed sql.NullInt64
	if err := sc.Scan(&r.ID, &r.Job, &r.Trigger, &sched, &started, &finished, &r.Status, &r.Reason,
		&r.RequestedBy, &r.KilledBy, &killed, &r.Spec); err != nil {
		return r, err
	}
	r.ScheduledFor, r.StartedAt, r.FinishedAt, r.KilledAt =
		fromNanos(sched), fromNanos(started), fromNanos(finished), fromNanos(killed)
	return r, nil
}

const machCols = `run_id, machine, status, exit_code, reason, signal_name, error, pid, dispatched_at,
	connected_at, started_at, finished_at, last_heartbeat, wrapper_version, protocol, output_bytes,
	next_seq, late_exit_code, late_reason, output_bytes - stored_bytes, output_cap`

func scanMachine(sc scanner) (store.Machine, error) {
	var m store.Machine
	var exit, late, disp, conn, started, finished, hb sql.NullInt64
	if err := sc.Scan(&m.RunID, &m.Machine, &m.Status, &exit, &m.Reason, &m.SignalName, &m.Error, &m.PID,
		&disp, &conn, &started, &finished, &hb, &m.WrapperVersion, &m.Protocol, &m.OutputBytes,
		&m.NextSeq, &late, &m.LateReason, &m.OutputDropped, &m.OutputCap); err != nil {
		return m, err
	}
	m.ExitCode, m.LateExitCode = intPtr(exit), intPtr(late)
	m.DispatchedAt, m.ConnectedAt, m.StartedAt, m.FinishedAt, m.LastHeartbeat =
		fromNanos(disp), fromNanos(conn), fromNanos(started), fromNanos(finished), fromNanos(hb)
	return m, nil
}

// GetRun returns a run with its machines.
func (s *Store) GetRun(ctx context.Context, runID string) (store.Run, error) {
	// One run's rows, read quickly: once ctx is seen not to have ended,
	// the read does without it, which costs goroutines (see quiet). The
	// core reads every run it finalizes.
	if err := ctx.Err(); err != nil {
		return store.Run{}, fmt.Errorf("get run %s: %w", runID, err)
	}
	ctx = quiet(ctx)
	var run store.Run
	err := s.read(ctx, func(tx *sql.Tx) error {
		var err error
		run, err = scanRun(s.rq.queryRow(ctx, tx, getRunSQL, runID))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("get run %s: %w", runID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("get run %s: %w", runID, s.dbErr(ctx, err))
		}
		runs := []*store.Run{&run}
		if err := s.fill(ctx, tx, runs); err != nil {
			return fmt.Errorf("get run %s: %w", runID, err)
		}
		return nil
	})
	return run, err
}

// GetRuns reads many runs with their machines (store.RunBatchReader): in
// one read transaction and three queries, whatever their number, where
// as many GetRun calls would each take a transaction and three queries.
// The core reads together the runs it finalizes together.
func (s *Store) GetRuns(ctx context.Context, ids []string) []store.RunResult {
	out := make([]store.RunResult, len(ids))
	if len(ids) == 1 {
		out[0].Run, out[0].Err = s.GetRun(ctx, ids[0])
		return out
	}
	fail := func(err error) []store.RunResult {
		for i, id := range ids {
			out[i].Err = fmt.Errorf("get run %s: %w", id, err)
		}
		return out
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	ctx = quiet(ctx) // as GetRun's
	list, err := json.Marshal(ids)
	if err != nil {
		return fail(err)
	}
	found := make(map[string]*store.Run, len(ids))
	err = s.read(ctx, func(tx *sql.Tx) error {
		rows, err := s.rq.query(ctx, tx, getRunsSQL, string(list))
		if err != nil {
			return s.dbErr(ctx, err)
		}
		var runs []*store.Run
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return s.dbErr(ctx, err)
			}
			runs = append(runs, &r)
			found[r.ID] = &r
		}
		if err := rows.Close(); err != nil {
			return s.dbErr(ctx, err)
		}
		if err := rows.Err(); err != nil {
			return s.dbErr(ctx, err)
		}
		return s.fill(ctx, tx, runs)
	})
	if err != nil {
		return fail(err)
	}
	given := make(map[string]bool, len(ids))
	for i, id := range ids {
		r, ok := found[id]
		if !ok {
			out[i].Err = fmt.Errorf("get run %s: %w", id, store.ErrNotFound)
			continue
		}
		out[i].Run = *r
		if given[id] {
			// A run named twice: each answer its own, as two calls'.
			out[i].Run.Machines = slices.Clone(r.Machines)
			out[i].Run.Actions = slices.Clone(r.Actions)
		}
		given[id] = true
	}
	return out
}

// fill loads the machines and actions of runs, which are distinct.
func (s *Store) fill(ctx context.Context, tx *sql.Tx, runs []*store.Run) error {
	if len(runs) == 0 {
		return nil
	}
	byID := make(map[string]*store.Run, len(runs))
	ids := make([]string, len(runs))
	for i, r := range runs {
		byID[r.ID] = r
		r.Machines = []store.Machine{}
		ids[i] = r.ID
	}
	machinesSQL, actionsSQL, arg := fillMachinesOneSQL, fillActionsOneSQL, ids[0]
	if len(runs) > 1 {
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		machinesSQL, actionsSQL, arg = fillMachinesOfSQL, fillActionsOfSQL, string(b)
	}
	rows, err := s.rq.query(ctx, tx, machinesSQL, arg)
	if err != nil {
		return s.dbErr(ctx, err)
	}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			rows.Close()
			return s.dbErr(ctx, err)
		}
		r := byID[m.RunID]
		r.Machines = append(r.Machines, m)
	}
	if err := rows.Close(); err != nil {
		return s.dbErr(ctx, err)
	}
	if err := rows.Err(); err != nil {
		return s.dbErr(ctx, err)
	}
	rows, err = s.rq.query(ctx, tx, actionsSQL, arg)
	if err != nil {
		return s.dbErr(ctx, err)
	}
	defer rows.Close()
	err = scanActions(rows, func(id string, a store.Action) {
		r := byID[id]
		r.Actions = append(r.Actions, a)
	})
	if err != nil {
		return s.dbErr(ctx, err)
	}
	return nil
}

// ListRuns returns the runs f selects, newest first: by StartedAt, or
// ScheduledFor while StartedAt is zero, ties broken by creation order
// (newest first). Before keeps runs whose time is strictly before it.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	var where []string
	var args []any
	if f.Job != "" {
		where, args = append(where, "job = ?"), append(args, f.Job)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.Active {
		where = append(where, "active = 1")
	}
	if !f.Before.IsZero() {
		var e enc
		b := e.t(f.Before)
		if e.err != nil {
			// Beyond the range: every stored time is before it, or none.
			if f.Before.After(maxTime) {
				b = int64(1<<63 - 1)
			} else {
				return []store.Run{}, nil
			}
		}
		where, args = append(where, "sort_at < ?"), append(args, b)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	q := "SELECT " + runCols + " FROM runs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY sort_at DESC, seq DESC LIMIT ?"
	args = append(args, limit)
	// One text per filter shape (a few), kept prepared up to maxStmts.
	s.prepareFor(ctx, s.rq, q)
	var out []store.Run
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := s.rq.query(ctx, tx, q, args...)
		if err != nil {
			return fmt.Errorf("list runs: %w", s.dbErr(ctx, err))
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("list runs: %w", s.dbErr(ctx, err))
			}
			out = append(out, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list runs: %w", s.dbErr(ctx, err))
		}
		ptrs := make([]*store.Run, len(out))
		for i := range out {
			ptrs[i] = &out[i]
		}
		if err := s.fill(ctx, tx, ptrs); err != nil {
			return fmt.Errorf("list runs: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []store.Run{}
	}
	return out, nil
}

// SetOverride stores or replaces a job's override.
func (s *Store) SetOverride(ctx context.Context, o store.JobOverride) error {
	if o.Job == "" {
		return errors.New("set override: empty job name")
	}
	var e enc
	at := e.t(o.SetAt)
	if e.err != nil {
		return fmt.Errorf("set override %s: %w", o.Job, e.err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO overrides (job, enabled, set_by, set_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (job) DO UPDATE SET enabled = excluded.enabled, set_by = excluded.set_by, set_at = excluded.set_at`,
			o.Job, o.Enabled, o.SetBy, at); err != nil {
			return fmt.Errorf("set override %s: %w", o.Job, s.dbErr(ctx, err))
		}
		return nil
	})
}

// DeleteOverride drops a job's override; none is fine.
func (s *Store) DeleteOverride(ctx context.Context, job string) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM overrides WHERE job = ?`, job); err != nil {
			return fmt.Errorf("delete override %s: %w", job, s.dbErr(ctx, err))
		}
		return nil
	})
}

// Overrides lists every override in job name order.
func (s *Store) Overrides(ctx context.Context) ([]store.JobOverride, error) {
	out := []store.JobOverride{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT job, enabled, set_by, set_at FROM overrides ORDER BY job`)
		if err != nil {
			return fmt.Errorf("overrides: %w", s.dbErr(ctx, err))
		}
		defer rows.Close()
		for rows.Next() {
			var o store.JobOverride
			var at sql.NullInt64
			if err := rows.Scan(&o.Job, &o.Enabled, &o.SetBy, &at); err != nil {
				return fmt.Errorf("overrides: %w", s.dbErr(ctx, err))
			}
			o.SetAt = fromNanos(at)
			out = append(out, o)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("overrides: %w", s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// scanActions reads rows of (run id, kind, machine, signal, grace, by,
// at), as the fill and last-runs queries select a run's actions, handing
// each to add.
func scanActions(rows *sql.Rows, add func(runID string, a store.Action)) error {
	for rows.Next() {
		var id string
		var a store.Action
		var grace int64
		var at sql.NullInt64
		if err := rows.Scan(&id, &a.Kind, &a.Machine, &a.Signal, &grace, &a.By, &at); err != nil {
			return err
		}
		a.Grace, a.At = time.Duration(grace), fromNanos(at)
		add(id, a)
	}
	return rows.Err()
}

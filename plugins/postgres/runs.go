package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// notFinalSQL is store.Final's complement as a condition on status.
const notFinalSQL = `status IN ('', 'pending', 'running')`

// times collects the first conversion error of several times.
type times struct{ err error }

func (c *times) ns(t time.Time) *int64 {
	n, err := nanos(t)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n
}

func (c *times) nsPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	return c.ns(*t)
}

// CreateRun stores a new run with its machines, all or nothing.
func (s *Store) CreateRun(ctx context.Context, run store.Run) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if run.ID == "" {
		return fmt.Errorf("create run: empty id")
	}
	var c times
	c.ns(run.ScheduledFor)
	c.ns(run.StartedAt)
	c.ns(run.FinishedAt)
	c.ns(run.KilledAt)
	if c.err != nil {
		return fmt.Errorf("create run %s: %w", run.ID, c.err)
	}
	if err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { return createRunTx(ctx, tx, run) }); err != nil {
		return s.fail("create run "+run.ID, err)
	}
	return nil
}

// createRunTx is CreateRun in tx; its times were checked.
func createRunTx(ctx context.Context, tx pgx.Tx, run store.Run) error {
	var c times
	sched, started, finished, killed := c.ns(run.ScheduledFor), c.ns(run.StartedAt), c.ns(run.FinishedAt), c.ns(run.KilledAt)
	if _, err := tx.Exec(ctx, `
INSERT INTO runs (id, job, trigger, scheduled_for_ns, started_at_ns, finished_at_ns, status,
	reason, requested_by, killed_by, killed_at_ns, spec)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		run.ID, run.Job, run.Trigger, sched, started, finished, run.Status,
		run.Reason, run.RequestedBy, run.KilledBy, killed, run.Spec); err != nil {
		return err
	}
	for _, a := range run.Actions {
		if err := insertAction(ctx, tx, run.ID, a); err != nil {
			return err
		}
	}
	return insertMachines(ctx, tx, run.ID, run.Machines)
}

func insertAction(ctx context.Context, tx pgx.Tx, runID string, a store.Action) error {
	at, err := nanos(a.At)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `
INSERT INTO run_actions (run_id, kind, machine, signal, grace_ns, by_name, at_ns)
VALUES ($1, $2, $3, $4, $5, $6, $7)`, runID, a.Kind, a.Machine, a.Signal, int64(a.Grace), a.By, at)
	return err
}

// insertMachines adds machines in order, pending unless a status is set;
// the primary key refuses a name the run already has.
func insertMachines(ctx context.Context, tx pgx.Tx, runID string, machines []store.Machine) error {
	for _, m := range machines {
		if m.Machine == "" {
			return fmt.Errorf("machine with empty name")
		}
		if m.Status == "" {
			m.Status = store.StatusPending
		}
		var c times
		disp, conn, start, fin, hb := c.ns(m.DispatchedAt), c.ns(m.ConnectedAt), c.ns(m.StartedAt),
			c.ns(m.FinishedAt), c.ns(m.LastHeartbeat)
		if c.err != nil {
			return fmt.Errorf("machine %s: %w", m.Machine, c.err)
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO machines (run_id, machine, status, exit_code, reason, signal_name, error, pid,
	dispatched_at_ns, connected_at_ns, started_at_ns, finished_at_ns, last_heartbeat_ns,
	wrapper_version, protocol, late_exit_code, late_reason, output_cap)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
			runID, m.Machine, m.Status, m.ExitCode, m.Reason, m.SignalName, m.Error, m.PID,
			disp, conn, start, fin, hb, m.WrapperVersion, m.Protocol, m.LateExitCode, m.LateReason,
			max(m.OutputCap, 0)); err != nil {
			return fmt.Errorf("machine %s: %w", m.Machine, err)
		}
	}
	return nil
}

// AddMachines adds machines to a run, all or none.
func (s *Store) AddMachines(ctx context.Context, runID string, machines []store.Machine) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	op := "add machines to run " + runID
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM runs WHERE id = $1`, runID).Scan(&one); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		return insertMachines(ctx, tx, runID, machines)
	})
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// setter builds an UPDATE's SET list from the fields an update sets.
type setter struct {
	sets []string
	args []any
}

func (b *setter) set(col string, v any) {
	b.args = append(b.args, v)
	b.sets = append(b.sets, fmt.Sprintf("%s = $%d", col, len(b.args)))
}

func setIf[T any](b *setter, col string, v *T) {
	if v != nil {
		b.set(col, *v)
	}
}

func (b *setter) list(keep string) string {
	if len(b.sets) == 0 {
		return keep + " = " + keep
	}
	return strings.Join(b.sets, ", ")
}

// UpdateRun changes the fields u sets, adds u.AddAction and enqueues
// u.Notifications, in one transaction.
func (s *Store) UpdateRun(ctx context.Context, runID string, u store.RunUpdate) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	op := "update run " + runID
	var c times
	b := setter{args: []any{runID}}
	setIf(&b, "status", u.Status)
	setIf(&b, "reason", u.Reason)
	if u.StartedAt != nil {
		b.set("started_at_ns", c.nsPtr(u.StartedAt))
	}
	if u.FinishedAt != nil {
		b.set("finished_at_ns", c.nsPtr(u.FinishedAt))
	}
	setIf(&b, "killed_by", u.KilledBy)
	if u.KilledAt != nil {
		b.set("killed_at_ns", c.nsPtr(u.KilledAt))
	}
	if c.err != nil {
		return fmt.Errorf("%s: %w", op, c.err)
	}
	notes, err := store.PrepareNotifications(u.Notifications)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE runs SET `+b.list("status")+` WHERE id = $1`, b.args...)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		if u.AddAction != nil {
			if err := insertAction(ctx, tx, runID, *u.AddAction); err != nil {
				return err
			}
		}
		return enqueueTx(ctx, tx, notes)
	})
	var r refusal
	if errors.As(err, &r) {
		return fmt.Errorf("%s: %w", op, r.err)
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if err != nil {
		return s.fail(op, err)
	}
	return nil
}

// UpdateMachine changes the fields u sets; with OnlyIfNotFinal the
// update's WHERE clause keeps it off a final machine, which fails with
// store.ErrFinal, changing nothing.
func (s *Store) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	op := fmt.Sprintf("update machine %s of run %s", machine, runID)
	var c times
	b := setter{args: []any{runID, machine}}
	setIf(&b, "status", u.Status)
	if u.ExitCode != nil {
		b.set("exit_code", *u.ExitCode)
	}
	setIf(&b, "reason", u.Reason)
	setIf(&b, "signal_name", u.SignalName)
	setIf(&b, "error", u.Error)
	setIf(&b, "pid", u.PID)
	for _, f := range []struct {
		col string
		t   *time.Time
	}{
		{"dispatched_at_ns", u.DispatchedAt}, {"connected_at_ns", u.ConnectedAt},
		{"started_at_ns", u.StartedAt}, {"finished_at_ns", u.FinishedAt},
		{"last_heartbeat_ns", u.LastHeartbeat},
	} {
		if f.t != nil {
			b.set(f.col, c.nsPtr(f.t))
		}
	}
	setIf(&b, "wrapper_version", u.WrapperVersion)
	setIf(&b, "protocol", u.Protocol)
	if u.LateExitCode != nil {
		b.set("late_exit_code", *u.LateExitCode)
	}
	setIf(&b, "late_reason", u.LateReason)
	if c.err != nil {
		return fmt.Errorf("%s: %w", op, c.err)
	}
	q := `UPDATE machines SET ` + b.list("status") + ` WHERE run_id = $1 AND machine = $2`
	if u.OnlyIfNotFinal {
		q += ` AND ` + notFinalSQL
	}
	tag, err := s.pool.Exec(ctx, q, b.args...)
	if err != nil {
		return s.fail(op, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	// Nothing changed: say why.
	var status string
	err = s.pool.QueryRow(ctx, `SELECT status FROM machines WHERE run_id = $1 AND machine = $2`,
		runID, machine).Scan(&status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("%s: %w", op, store.ErrNotFound)
	case err != nil:
		return s.fail(op, err)
	}
	return fmt.Errorf("%s (%s): %w", op, status, store.ErrFinal)
}

const runCols = `id, job, trigger, scheduled_for_ns, started_at_ns, finished_at_ns, status,
	reason, requested_by, killed_by, killed_at_ns, spec`

func scanRun(row pgx.Row) (store.Run, error) {
	var r store.Run
	var sched, started, finished, killed *int64
	err := row.Scan(&r.ID, &r.Job, &r.Trigger, &sched, &started, &finished, &r.Status,
		&r.Reason, &r.RequestedBy, &r.KilledBy, &killed, &r.Spec)
	r.ScheduledFor, r.StartedAt, r.FinishedAt, r.KilledAt = fromNanos(sched), fromNanos(started),
		fromNanos(finished), fromNanos(killed)
	return r, err
}

const machineCols = `run_id, machine, status, exit_code, reason, signal_name, error, pid,
	dispatched_at_ns, connected_at_ns, started_at_ns, finished_at_ns, last_heartbeat_ns,
	wrapper_version, protocol, output_bytes, next_seq, late_exit_code, late_reason,
	output_bytes - stored_bytes, output_cap`

func scanMachine(row pgx.Row) (store.Machine, error) {
	var m store.Machine
	var disp, conn, start, fin, hb *int64
	err := row.Scan(&m.RunID, &m.Machine, &m.Status, &m.ExitCode, &m.Reason, &m.SignalName, &m.Error,
		&m.PID, &disp, &conn, &start, &fin, &hb, &m.WrapperVersion, &m.Protocol, &m.OutputBytes,
		&m.NextSeq, &m.LateExitCode, &m.LateReason, &m.OutputDropped, &m.OutputCap)
	m.DispatchedAt, m.ConnectedAt, m.StartedAt, m.FinishedAt, m.LastHeartbeat = fromNanos(disp),
		fromNanos(conn), fromNanos(start), fromNanos(fin), fromNanos(hb)
	return m, err
}

// GetRun returns a run with its machines and actions, read in one
// snapshot.
func (s *Store) GetRun(ctx context.Context, runID string) (store.Run, error) {
	if err := s.check(ctx); err != nil {
		return store.Run{}, err
	}
	var runs []store.Run
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		r, err := scanRun(tx.QueryRow(ctx, `SELECT `+runCols+` FROM runs WHERE id = $1`, runID))
		if err != nil {
			return err
		}
		runs = []store.Run{r}
		return fillRuns(ctx, tx, runs)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Run{}, fmt.Errorf("get run %s: %w", runID, store.ErrNotFound)
	case err != nil:
		return store.Run{}, s.fail("get run "+runID, err)
	}
	return runs[0], nil
}

// fillRuns reads the machines and actions of runs.
func fillRuns(ctx context.Context, tx pgx.Tx, runs []store.Run) error {
	if len(runs) == 0 {
		return nil
	}
	ids := make([]string, len(runs))
	at := make(map[string]int, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
		at[r.ID] = i
		runs[i].Machines = []store.Machine{}
	}
	rows, err := tx.Query(ctx, `SELECT `+machineCols+` FROM machines WHERE run_id = ANY($1) ORDER BY run_id, ord`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			rows.Close()
			return err
		}
		i := at[m.RunID]
		runs[i].Machines = append(runs[i].Machines, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows, err = tx.Query(ctx, `
SELECT run_id, kind, machine, signal, grace_ns, by_name, at_ns
FROM run_actions WHERE run_id = ANY($1) ORDER BY run_id, seq`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var id string
		var a store.Action
		var grace int64
		var atNs *int64
		if err := rows.Scan(&id, &a.Kind, &a.Machine, &a.Signal, &grace, &a.By, &atNs); err != nil {
			rows.Close()
			return err
		}
		a.Grace, a.At = time.Duration(grace), fromNanos(atNs)
		i := at[id]
		runs[i].Actions = append(runs[i].Actions, a)
	}
	return rows.Err()
}

// ListRuns returns the runs f selects, newest first: by started_at, or
// scheduled_for while it is unset, ties broken by creation order.
func (s *Store) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Job != "" {
		where = append(where, "job = "+arg(f.Job))
	}
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.Active {
		where = append(where, notFinalSQL)
	}
	if !f.Before.IsZero() {
		// Clamp: a bound beyond what the store keeps selects everything
		// (or nothing) as it would in memory.
		b := f.Before
		if b.Before(minTime) {
			b = minTime
		}
		if b.After(maxTime) {
			b = maxTime
		}
		where = append(where, "sort_ns < "+arg(b.UnixNano()))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	q := `SELECT ` + runCols + ` FROM runs`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY sort_ns DESC, created DESC LIMIT ` + arg(limit)
	var runs []store.Run
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return err
			}
			runs = append(runs, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return fillRuns(ctx, tx, runs)
	})
	if err != nil {
		return nil, s.fail("list runs", err)
	}
	return runs, nil
}

// SetOverride stores or replaces a job's override.
func (s *Store) SetOverride(ctx context.Context, o store.JobOverride) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if o.Job == "" {
		return fmt.Errorf("set override: empty job name")
	}
	at, err := nanos(o.SetAt)
	if err != nil {
		return fmt.Errorf("set override %s: %w", o.Job, err)
	}
	if _, err := s.pool.Exec(ctx, `
INSERT INTO overrides (job, enabled, set_by, set_at_ns) VALUES ($1, $2, $3, $4)
ON CONFLICT (job) DO UPDATE SET enabled = EXCLUDED.enabled, set_by = EXCLUDED.set_by,
	set_at_ns = EXCLUDED.set_at_ns`, o.Job, o.Enabled, o.SetBy, at); err != nil {
		return s.fail("set override "+o.Job, err)
	}
	return nil
}

// DeleteOverride drops a job's override; none is fine.
func (s *Store) DeleteOverride(ctx context.Context, job string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM overrides WHERE job = $1`, job); err != nil {
		return s.fail("delete override "+job, err)
	}
	return nil
}

// Overrides lists every override in job name order.
func (s *Store) Overrides(ctx context.Context) ([]store.JobOverride, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT job, enabled, set_by, set_at_ns FROM overrides ORDER BY job COLLATE "C"`)
	if err != nil {
		return nil, s.fail("list overrides", err)
	}
	out := []store.JobOverride{}
	for rows.Next() {
		var o store.JobOverride
		var at *int64
		if err := rows.Scan(&o.Job, &o.Enabled, &o.SetBy, &at); err != nil {
			rows.Close()
			return nil, s.fail("list overrides", err)
		}
		o.SetAt = fromNanos(at)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("list overrides", err)
	}
	return out, nil
}

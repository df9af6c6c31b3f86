package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The audit log, shared by every core on the database. Ids come from the
// table's identity sequence: unique across cores, never given twice, and
// larger for an append that starts after another returned. Two appends
// in flight at once may commit out of id order, so a listing made
// meanwhile can show the larger id before the smaller one is visible.

const auditCols = `id, at_ns, by_name, action, via, remote, job, run_id, machine, detail, outcome, error`

func scanAudit(row pgx.Row) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at *int64
	if err := row.Scan(&e.ID, &at, &e.By, &e.Action, &e.Via, &e.Remote, &e.Job, &e.RunID, &e.Machine,
		&e.Detail, &e.Outcome, &e.Error); err != nil {
		return e, err
	}
	e.At = fromNanos(at)
	return e, nil
}

// AppendAudit stores e and returns the id it gave it; e.ID is ignored.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	e, err := store.PrepareAudit(e)
	if err != nil {
		return 0, fmt.Errorf("append audit entry: %w", err)
	}
	op := fmt.Sprintf("append audit entry %s by %s", e.Action, e.By)
	at, err := nanos(e.At)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	var id int64
	if err := s.pool.QueryRow(ctx, `
INSERT INTO audit (at_ns, by_name, action, via, remote, job, run_id, machine, detail, outcome, error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
RETURNING id`,
		at, e.By, e.Action, e.Via, e.Remote, e.Job, e.RunID, e.Machine, e.Detail, e.Outcome, e.Error).Scan(&id); err != nil {
		return 0, s.fail(op, err)
	}
	return id, nil
}

// auditQuery is ListAudit's query for f: the conditions f sets, newest
// (largest id) first.
func auditQuery(f store.AuditFilter) (string, []any) {
	var where []string
	args := []any{store.AuditLimit(f.Limit)}
	for _, c := range []struct {
		col string
		v   any
		set bool
	}{
		{"job", f.Job, f.Job != ""},
		{"by_name", f.By, f.By != ""},
		{"action", f.Action, f.Action != ""},
	} {
		if c.set {
			args = append(args, c.v)
			where = append(where, fmt.Sprintf("%s = $%d", c.col, len(args)))
		}
	}
	if f.BeforeID != 0 {
		args = append(args, f.BeforeID)
		where = append(where, fmt.Sprintf("id < $%d", len(args)))
	}
	q := "SELECT " + auditCols + " FROM audit"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	return q + " ORDER BY id DESC LIMIT $1", args
}

// ListAudit returns the entries f selects, newest (largest id) first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	q, args := auditQuery(f)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail("list audit entries", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditEntry, error) { return scanAudit(row) })
	if err != nil {
		return nil, s.fail("list audit entries", err)
	}
	if out == nil {
		out = []store.AuditEntry{}
	}
	return out, nil
}

// pruneAuditTx deletes at most limit audit entries recorded before before
// (unix nanoseconds) and returns how many. Rows another core's prune
// holds are skipped, so cores pruning at once split the work.
func pruneAuditTx(ctx context.Context, tx pgx.Tx, before int64, limit int) (int, error) {
	tag, err := tx.Exec(ctx, `
DELETE FROM audit WHERE id IN (
	SELECT id FROM audit
	WHERE at_ns < $1
	LIMIT $2
	FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

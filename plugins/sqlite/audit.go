package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The audit log. Entries are appended through the one writer connection
// like every write; the id is SQLite's AUTOINCREMENT rowid, so one
// process's appends get ids in the order they commit, and a pruned id is
// never given again.

const auditCols = `id, at, by, action, via, remote, job, run_id, machine, detail, outcome, error`

func scanAudit(sc scanner) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at sql.NullInt64
	if err := sc.Scan(&e.ID, &at, &e.By, &e.Action, &e.Via, &e.Remote, &e.Job, &e.RunID, &e.Machine,
		&e.Detail, &e.Outcome, &e.Error); err != nil {
		return e, err
	}
	e.At = fromNanos(at)
	return e, nil
}

// AppendAudit stores e and returns the id it gave it; e.ID is ignored.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) (int64, error) {
	e, err := store.PrepareAudit(e)
	if err != nil {
		return 0, fmt.Errorf("append audit entry: %w", err)
	}
	op := fmt.Sprintf("append audit entry %s by %s", e.Action, e.By)
	var c enc
	at := c.t(e.At)
	if c.err != nil {
		return 0, fmt.Errorf("%s: %w", op, c.err)
	}
	var id int64
	err = s.write(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `INSERT INTO audit (at, by, action, via, remote, job, run_id, machine,
			detail, outcome, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			at, e.By, e.Action, e.Via, e.Remote, e.Job, e.RunID, e.Machine, e.Detail, e.Outcome, e.Error).Scan(&id)
		if err != nil {
			return fmt.Errorf("%s: %w", op, s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

// auditQuery is ListAudit's query for f: the conditions f sets, newest
// (largest id) first. With one equality it seeks that column's index
// (job, id) from BeforeID down; with none, the table by id.
func auditQuery(f store.AuditFilter) (string, []any) {
	var where []string
	var args []any
	for _, c := range []struct{ col, v string }{{"job", f.Job}, {"by", f.By}, {"action", f.Action}} {
		if c.v != "" {
			where, args = append(where, c.col+" = ?"), append(args, c.v)
		}
	}
	if f.BeforeID != 0 {
		where, args = append(where, "id < ?"), append(args, f.BeforeID)
	}
	q := "SELECT " + auditCols + " FROM audit"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY id DESC LIMIT ?"
	return q, append(args, store.AuditLimit(f.Limit))
}

// ListAudit returns the entries f selects, newest (largest id) first.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error) {
	q, args := auditQuery(f)
	out := []store.AuditEntry{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list audit entries: %w", s.dbErr(ctx, err))
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				return fmt.Errorf("list audit entries: %w", s.dbErr(ctx, err))
			}
			out = append(out, e)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list audit entries: %w", s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pruneAuditWhere selects the entries recorded before ?1, at most ?2,
// through audit_at.
const pruneAuditWhere = `SELECT id FROM audit WHERE at < ?1 LIMIT ?2`

// pruneAudit deletes at most limit audit entries recorded before before
// (unix nanoseconds) and returns how many.
func (s *Store) pruneAudit(ctx context.Context, before any, limit int) (int64, error) {
	var n int64
	err := s.writeAlone(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE id IN (`+pruneAuditWhere+`)`, before, limit)
		if err != nil {
			return fmt.Errorf("prune audit entries: %w", s.dbErr(ctx, err))
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("prune audit entries: %w", s.dbErr(ctx, err))
		}
		return nil
	})
	return n, err
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The notification outbox. One process has the database (the lock file),
// and every write goes through its one writer connection, so a claim's
// select and update in one write transaction see no other claim between
// them: leases are exclusive without row locks.

const noteCols = `id, notifier, job, run_id, kind, event, created_at, due_at, attempts, last_error,
	state, delivered_at`

func scanNote(sc scanner) (store.Notification, error) {
	var n store.Notification
	var created, due, delivered sql.NullInt64
	if err := sc.Scan(&n.ID, &n.Notifier, &n.Job, &n.RunID, &n.Kind, &n.Event, &created, &due,
		&n.Attempts, &n.LastError, &n.State, &delivered); err != nil {
		return n, err
	}
	n.CreatedAt, n.DueAt, n.DeliveredAt = fromNanos(created), fromNanos(due), fromNanos(delivered)
	return n, nil
}

// enqueueTx inserts notifications PrepareNotifications returned; an id
// already stored keeps its row.
func (s *Store) enqueueTx(ctx context.Context, tx *sql.Tx, ns []store.Notification) error {
	for _, n := range ns {
		var e enc
		created, due := e.t(n.CreatedAt), e.t(n.DueAt)
		if e.err != nil {
			return fmt.Errorf("notification %s: %w", n.ID, e.err)
		}
		if _, err := s.wq.exec(ctx, tx, insertNoteSQL, n.ID, n.Notifier, n.Job, n.RunID, n.Kind, n.Event, created, due, store.NotificationPending); err != nil {
			return fmt.Errorf("notification %s: %w", n.ID, s.dbErr(ctx, err))
		}
	}
	return nil
}

// EnqueueNotifications stores notifications, pending, all or none; an id
// already stored is left as it is.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []store.Notification) error {
	notes, err := store.PrepareNotifications(ns)
	if err != nil {
		return fmt.Errorf("enqueue notifications: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if err := s.enqueueTx(ctx, tx, notes); err != nil {
			return fmt.Errorf("enqueue notifications: %w", err)
		}
		return nil
	})
}

// claimWhere selects what a claim takes, in order, through
// notifications_due (state = 'pending' is its condition): without
// statistics the planner prefers notifications_state's equality and then
// sorts every pending row, so the index is named.
const claimWhere = `FROM notifications INDEXED BY notifications_due
	WHERE state = 'pending' AND due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)
	ORDER BY due_at, seq LIMIT ?2`

// ClaimNotifications leases to r.Owner up to r.Limit due notifications
// that no lease holds, oldest due first, and returns them.
func (s *Store) ClaimNotifications(ctx context.Context, r store.ClaimRequest) ([]store.Notification, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	var e enc
	now, until := e.t(r.Now), e.t(r.Now.Add(r.Lease))
	if e.err != nil {
		return nil, fmt.Errorf("claim notifications for %s: %w", r.Owner, e.err)
	}
	limit := store.NotificationLimit(r.Limit)
	out := []store.Notification{}
	err := s.write(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+noteCols+` `+claimWhere, now, limit)
		if err != nil {
			return fmt.Errorf("claim notifications for %s: %w", r.Owner, s.dbErr(ctx, err))
		}
		for rows.Next() {
			n, err := scanNote(rows)
			if err != nil {
				rows.Close()
				return fmt.Errorf("claim notifications for %s: %w", r.Owner, s.dbErr(ctx, err))
			}
			out = append(out, n)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("claim notifications for %s: %w", r.Owner, s.dbErr(ctx, err))
		}
		if len(out) == 0 {
			return nil
		}
		// The same selection again, in the same transaction: the rows
		// just read, however many.
		if _, err := tx.ExecContext(ctx, `UPDATE notifications SET lease_owner = ?3, lease_until = ?4
			WHERE seq IN (SELECT seq `+claimWhere+`)`, now, limit, r.Owner, until); err != nil {
			return fmt.Errorf("claim notifications for %s: %w", r.Owner, s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FinishNotification applies r to notification id when owner holds it,
// and releases the lease; store.CheckFinish decides.
func (s *Store) FinishNotification(ctx context.Context, id, owner string, r store.NotificationResult) error {
	op := fmt.Sprintf("finish notification %s for %s", id, owner)
	if err := r.Check(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var rec store.LeaseRecord
		var n store.Notification
		var seq int64
		var due, delivered, finished sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT seq, state, lease_owner, lease_until IS NOT NULL, finished_at,
			due_at, last_error, attempts, delivered_at FROM notifications WHERE id = ?`, id).
			Scan(&seq, &rec.State, &rec.Owner, &rec.Leased, &finished, &due, &rec.LastError, &n.Attempts, &delivered)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: %w", op, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", op, s.dbErr(ctx, err))
		}
		rec.FinishedAt, rec.DueAt = fromNanos(finished), fromNanos(due)
		apply, err := store.CheckFinish(rec, id, owner, r)
		if err != nil || !apply {
			return err
		}
		n.State, n.DueAt, n.LastError, n.DeliveredAt = rec.State, rec.DueAt, rec.LastError, fromNanos(delivered)
		r.Apply(&n)
		var e enc
		args := []any{n.State, n.Attempts, n.LastError, e.t(n.DueAt), e.t(n.DeliveredAt), owner, e.t(r.At), seq}
		if e.err != nil {
			return fmt.Errorf("%s: %w", op, e.err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE notifications SET state = ?, attempts = ?, last_error = ?,
			due_at = ?, delivered_at = ?, lease_owner = ?, lease_until = NULL, finished_at = ? WHERE seq = ?`,
			args...); err != nil {
			return fmt.Errorf("%s: %w", op, s.dbErr(ctx, err))
		}
		return nil
	})
}

// ListNotifications returns the notifications f selects, newest (by
// CreatedAt, then enqueue order) first.
func (s *Store) ListNotifications(ctx context.Context, f store.NotificationFilter) ([]store.Notification, error) {
	var where []string
	var args []any
	if f.State != "" {
		where, args = append(where, "state = ?"), append(args, f.State)
	}
	if f.Job != "" {
		where, args = append(where, "job = ?"), append(args, f.Job)
	}
	q := "SELECT " + noteCols + " FROM notifications"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, seq DESC LIMIT ?"
	args = append(args, store.NotificationLimit(f.Limit))
	out := []store.Notification{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("list notifications: %w", s.dbErr(ctx, err))
		}
		defer rows.Close()
		for rows.Next() {
			n, err := scanNote(rows)
			if err != nil {
				return fmt.Errorf("list notifications: %w", s.dbErr(ctx, err))
			}
			out = append(out, n)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("list notifications: %w", s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pruneNotes deletes at most limit delivered or failed notifications
// created before before (unix nanoseconds) and returns how many.
// notifications_state serves it, one seek per state.
func (s *Store) pruneNotes(ctx context.Context, before any, limit int) (int64, error) {
	var n int64
	err := s.writeAlone(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM notifications WHERE seq IN (
			SELECT seq FROM notifications WHERE state IN ('delivered', 'failed') AND created_at < ? LIMIT ?)`,
			before, limit)
		if err != nil {
			return fmt.Errorf("prune notifications: %w", s.dbErr(ctx, err))
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("prune notifications: %w", s.dbErr(ctx, err))
		}
		return nil
	})
	return n, err
}

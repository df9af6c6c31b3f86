package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The notification outbox, shared by every core on the database: row
// locks, not anything in process, keep two cores from holding one
// notification. A claim locks the rows it takes FOR UPDATE SKIP LOCKED and
// leases them in the same statement; a finish locks its row and checks
// the lease before it writes.

const noteCols = `seq, id, notifier, job, run_id, kind, event, created_at_ns, due_at_ns, attempts,
	last_error, state, delivered_at_ns`

// noteRow is a notification with its enqueue order.
type noteRow struct {
	seq int64
	n   store.Notification
}

func scanNote(row pgx.Row) (noteRow, error) {
	var r noteRow
	n := &r.n
	var created, due, delivered *int64
	if err := row.Scan(&r.seq, &n.ID, &n.Notifier, &n.Job, &n.RunID, &n.Kind, &n.Event, &created, &due,
		&n.Attempts, &n.LastError, &n.State, &delivered); err != nil {
		return r, err
	}
	n.CreatedAt, n.DueAt, n.DeliveredAt = fromNanos(created), fromNanos(due), fromNanos(delivered)
	return r, nil
}

func collectNotes(rows pgx.Rows) ([]noteRow, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (noteRow, error) { return scanNote(row) })
}

// enqueueTx inserts notifications PrepareNotifications returned; an id
// already stored, by this core or another, keeps its row.
func enqueueTx(ctx context.Context, tx pgx.Tx, ns []store.Notification) error {
	for _, n := range ns {
		var c times
		created, due := c.ns(n.CreatedAt), c.ns(n.DueAt)
		if c.err != nil {
			return refusal{fmt.Errorf("notification %s: %w", n.ID, c.err)}
		}
		if _, err := tx.Exec(ctx, `
INSERT INTO notifications (id, notifier, job, run_id, kind, event, created_at_ns, due_at_ns, state)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (id) DO NOTHING`,
			n.ID, n.Notifier, n.Job, n.RunID, n.Kind, n.Event, created, due, store.NotificationPending); err != nil {
			return fmt.Errorf("notification %s: %w", n.ID, err)
		}
	}
	return nil
}

// EnqueueNotifications stores notifications, pending, all or none; an id
// already stored is left as it is.
func (s *Store) EnqueueNotifications(ctx context.Context, ns []store.Notification) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	const op = "enqueue notifications"
	notes, err := store.PrepareNotifications(ns)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	err = s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error { return enqueueTx(ctx, tx, notes) })
	var r refusal
	switch {
	case errors.As(err, &r):
		return fmt.Errorf("%s: %w", op, r.err)
	case err != nil:
		return s.fail(op, err)
	}
	return nil
}

// ClaimNotifications leases to r.Owner up to r.Limit due notifications
// that no lease holds, oldest due first, and returns them. The rows are
// picked FOR UPDATE SKIP LOCKED: a row another core is claiming at the
// same moment is left to it, and one it has just leased no longer
// matches once its lease is seen.
func (s *Store) ClaimNotifications(ctx context.Context, r store.ClaimRequest) ([]store.Notification, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if err := r.Check(); err != nil {
		return nil, err
	}
	op := "claim notifications for " + r.Owner
	var c times
	now, until := c.ns(r.Now), c.ns(r.Now.Add(r.Lease))
	if c.err != nil {
		return nil, fmt.Errorf("%s: %w", op, c.err)
	}
	// The state condition repeats notifications_due's so that the planner
	// can use it.
	rows, err := s.pool.Query(ctx, `
WITH picked AS (
	SELECT id FROM notifications
	WHERE state = 'pending' AND due_at_ns <= $1 AND (lease_until_ns IS NULL OR lease_until_ns <= $1)
	ORDER BY due_at_ns, seq
	LIMIT $2
	FOR UPDATE SKIP LOCKED
)
UPDATE notifications n SET lease_owner = $3, lease_until_ns = $4
FROM picked WHERE n.id = picked.id
RETURNING `+prefixed("n.", noteCols), now, store.NotificationLimit(r.Limit), r.Owner, until)
	if err != nil {
		return nil, s.fail(op, err)
	}
	got, err := collectNotes(rows)
	if err != nil {
		return nil, s.fail(op, err)
	}
	// RETURNING keeps no order.
	slices.SortFunc(got, func(a, b noteRow) int {
		if c := a.n.DueAt.Compare(b.n.DueAt); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	out := make([]store.Notification, len(got))
	for i, g := range got {
		out[i] = g.n
	}
	return out, nil
}

// prefixed qualifies each column of a column list.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ",")
	for i, p := range parts {
		parts[i] = prefix + strings.TrimSpace(p)
	}
	return strings.Join(parts, ", ")
}

// FinishNotification applies r to notification id when owner holds it,
// and releases the lease; store.CheckFinish decides, with the row locked
// so that no claim moves the lease meanwhile.
func (s *Store) FinishNotification(ctx context.Context, id, owner string, r store.NotificationResult) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	op := fmt.Sprintf("finish notification %s for %s", id, owner)
	if err := r.Check(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	var c times
	at := c.ns(r.At)
	if c.err != nil {
		return fmt.Errorf("%s: %w", op, c.err)
	}
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var rec store.LeaseRecord
		var n store.Notification
		var finished, dueNs, deliveredNs *int64
		err := tx.QueryRow(ctx, `
SELECT state, lease_owner, lease_until_ns IS NOT NULL, finished_at_ns, due_at_ns, last_error, attempts,
	delivered_at_ns
FROM notifications WHERE id = $1 FOR UPDATE`, id).
			Scan(&rec.State, &rec.Owner, &rec.Leased, &finished, &dueNs, &rec.LastError, &n.Attempts, &deliveredNs)
		if errors.Is(err, pgx.ErrNoRows) {
			return refusal{fmt.Errorf("%s: %w", op, store.ErrNotFound)}
		}
		if err != nil {
			return err
		}
		rec.FinishedAt, rec.DueAt = fromNanos(finished), fromNanos(dueNs)
		apply, err := store.CheckFinish(rec, id, owner, r)
		if err != nil {
			return refusal{err}
		}
		if !apply {
			return nil
		}
		n.State, n.DueAt, n.LastError, n.DeliveredAt = rec.State, rec.DueAt, rec.LastError, fromNanos(deliveredNs)
		r.Apply(&n)
		var c times
		due, delivered := c.ns(n.DueAt), c.ns(n.DeliveredAt)
		if c.err != nil {
			return refusal{fmt.Errorf("%s: %w", op, c.err)}
		}
		_, err = tx.Exec(ctx, `
UPDATE notifications SET state = $2, attempts = $3, last_error = $4, due_at_ns = $5, delivered_at_ns = $6,
	lease_owner = $7, lease_until_ns = NULL, finished_at_ns = $8
WHERE id = $1`, id, n.State, n.Attempts, n.LastError, due, delivered, owner, at)
		return err
	})
	var rf refusal
	switch {
	case errors.As(err, &rf):
		return rf.err
	case err != nil:
		return s.fail(op, err)
	}
	return nil
}

// ListNotifications returns the notifications f selects, newest (by
// CreatedAt, then enqueue order) first.
func (s *Store) ListNotifications(ctx context.Context, f store.NotificationFilter) ([]store.Notification, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var where []string
	args := []any{store.NotificationLimit(f.Limit)}
	if f.State != "" {
		args = append(args, f.State)
		where = append(where, fmt.Sprintf("state = $%d", len(args)))
	}
	if f.Job != "" {
		args = append(args, f.Job)
		where = append(where, fmt.Sprintf("job = $%d", len(args)))
	}
	q := "SELECT " + noteCols + " FROM notifications"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at_ns DESC, seq DESC LIMIT $1"
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, s.fail("list notifications", err)
	}
	got, err := collectNotes(rows)
	if err != nil {
		return nil, s.fail("list notifications", err)
	}
	out := make([]store.Notification, len(got))
	for i, g := range got {
		out[i] = g.n
	}
	return out, nil
}

// pruneNotesTx deletes at most limit delivered or failed notifications
// created before before (unix nanoseconds) and returns how many. Rows a
// core holds (it is finishing them) are skipped, so cores pruning at once
// split the work instead of waiting for each other.
func pruneNotesTx(ctx context.Context, tx pgx.Tx, before int64, limit int) (int, error) {
	tag, err := tx.Exec(ctx, `
DELETE FROM notifications WHERE id IN (
	SELECT id FROM notifications
	WHERE state IN ('delivered', 'failed') AND created_at_ns < $1
	LIMIT $2
	FOR UPDATE SKIP LOCKED)`, before, limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// RecordFire records that job fired for slot as run runID. The insert
// does nothing when the (job, slot) primary key already holds a row, so
// of several calls for one slot, from this core or another sharing the
// database, exactly one reports true.
func (s *Store) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, err
	}
	op := fmt.Sprintf("record fire of %s for %s", job, slot.UTC().Format(time.RFC3339Nano))
	if job == "" {
		return false, fmt.Errorf("%s: empty job name", op)
	}
	if slot.IsZero() {
		return false, fmt.Errorf("%s: zero slot", op)
	}
	at, err := nanos(slot)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	ok, err := recordFire(ctx, s.pool, job, *at, runID)
	if err != nil {
		return false, s.fail(op, err)
	}
	return ok, nil
}

// recordFire inserts the fire record unless its slot holds one.
func recordFire(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, job string, slot int64, runID string) (bool, error) {
	tag, err := db.Exec(ctx, `
INSERT INTO fires (job, slot, run_id, recorded_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (job, slot) DO NOTHING`, job, slot, runID, time.Now().UnixNano())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

// errSlotTaken rolls FireRun's transaction back when the slot is
// recorded already.
var errSlotTaken = errors.New("slot already recorded")

// FireRun records the run's slot and creates the run in one transaction,
// both or neither; false when the slot is recorded already, by this core
// or another.
func (s *Store) FireRun(ctx context.Context, run store.Run) (bool, error) {
	if err := s.check(ctx); err != nil {
		return false, err
	}
	op := "fire run " + run.ID
	if run.ID == "" || run.Job == "" || run.ScheduledFor.IsZero() {
		return false, fmt.Errorf("%s: needs an id, a job and a slot", op)
	}
	var c times
	slot := c.ns(run.ScheduledFor)
	c.ns(run.StartedAt)
	c.ns(run.FinishedAt)
	c.ns(run.KilledAt)
	if c.err != nil {
		return false, fmt.Errorf("%s: %w", op, c.err)
	}
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		ok, err := recordFire(ctx, tx, run.Job, *slot, run.ID)
		if err != nil {
			return err
		}
		if !ok {
			return errSlotTaken
		}
		return createRunTx(ctx, tx, run)
	})
	switch {
	case errors.Is(err, errSlotTaken):
		return false, nil
	case err != nil:
		return false, s.fail(op, err)
	}
	return true, nil
}

// LastFire returns the latest slot recorded for job (not the one
// recorded last: a catch-up may record an older slot later), zero when
// none.
func (s *Store) LastFire(ctx context.Context, job string) (time.Time, error) {
	if err := s.check(ctx); err != nil {
		return time.Time{}, err
	}
	var last *int64
	if err := s.pool.QueryRow(ctx, `SELECT max(slot) FROM fires WHERE job = $1`, job).Scan(&last); err != nil {
		return time.Time{}, s.fail("last fire of "+job, err)
	}
	return fromNanos(last), nil
}

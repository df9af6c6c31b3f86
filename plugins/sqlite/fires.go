package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// RecordFire records that job fired for slot, making the run runID. It
// returns false, recording nothing, when (job, slot) is already recorded:
// the table's primary key, not a check before the insert, decides, so
// racing callers (in this process or, sharing the file, in another) get
// exactly one true. The slot is stored as its instant, whatever its zone.
func (s *Store) RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error) {
	if job == "" {
		return false, errors.New("record fire: empty job name")
	}
	if slot.IsZero() {
		return false, fmt.Errorf("record fire %s: zero slot", job)
	}
	var inserted bool
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		inserted, err = s.recordFireTx(ctx, tx, job, slot, runID)
		return err
	})
	if err != nil {
		return false, err
	}
	return inserted, nil
}

// recordFireTx is RecordFire in tx.
func (s *Store) recordFireTx(ctx context.Context, tx *sql.Tx, job string, slot time.Time, runID string) (bool, error) {
	var e enc
	at := e.t(slot)
	now := e.t(time.Now())
	if e.err != nil {
		return false, fmt.Errorf("record fire %s: %w", job, e.err)
	}
	res, err := s.wq.exec(ctx, tx, insertFireSQL, job, at, runID, now)
	if err != nil {
		return false, fmt.Errorf("record fire %s at %s: %w", job, slot, s.dbErr(ctx, err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record fire %s at %s: %w", job, slot, s.dbErr(ctx, err))
	}
	return n == 1, nil
}

// errSlotTaken rolls FireRun's transaction back when the slot is
// recorded already.
var errSlotTaken = errors.New("slot already recorded")

// FireRun records the run's slot and creates the run in one transaction,
// both or neither; false when the slot is recorded already.
func (s *Store) FireRun(ctx context.Context, run store.Run) (bool, error) {
	if run.ID == "" || run.Job == "" || run.ScheduledFor.IsZero() {
		return false, fmt.Errorf("fire run %q: needs an id, a job and a slot", run.ID)
	}
	err := s.write(ctx, func(tx *sql.Tx) error {
		ok, err := s.recordFireTx(ctx, tx, run.Job, run.ScheduledFor, run.ID)
		if err != nil {
			return err
		}
		if !ok {
			return errSlotTaken
		}
		return s.createRunTx(ctx, tx, run)
	})
	if errors.Is(err, errSlotTaken) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// LastFire returns the latest slot recorded for job (not the one recorded
// last), the zero time when none.
func (s *Store) LastFire(ctx context.Context, job string) (time.Time, error) {
	var last sql.NullInt64
	err := s.read(ctx, func(tx *sql.Tx) error {
		if err := s.rq.queryRow(ctx, tx, lastFireSQL, job).Scan(&last); err != nil {
			return fmt.Errorf("last fire %s: %w", job, s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return fromNanos(last), nil
}

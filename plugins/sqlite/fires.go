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
	var f fireWrite
	if err := f.record(s, ctx, job, slot, runID); err != nil {
		return false, err
	}
	return f.answer(s.write(ctx, f.fn))
}

// FireRun records the run's slot and creates the run in one transaction,
// both or neither; false when the slot is recorded already.
func (s *Store) FireRun(ctx context.Context, run store.Run) (bool, error) {
	var f fireWrite
	if err := f.run(s, ctx, run); err != nil {
		return false, err
	}
	return f.answer(s.write(ctx, f.fn))
}

// Fires records a batch of fires (store.FireBatcher): every fire's write
// joins the shared transaction's queue at once, in order, so that a
// second's burst of firings costs a few commits rather than one each.
// Each write has its own savepoint: a slot taken or refused changes
// nothing of the others.
func (s *Store) Fires(ctx context.Context, batch []store.Fire) []store.FireResult {
	out := make([]store.FireResult, len(batch))
	writes := make([]fireWrite, len(batch))
	var fns []func(*sql.Tx) error
	var idx []int
	for i, f := range batch {
		w := &writes[i]
		if f.Run != nil {
			out[i].Err = w.run(s, ctx, *f.Run)
		} else {
			out[i].Err = w.record(s, ctx, f.Job, f.Slot, f.RunID)
		}
		if out[i].Err == nil {
			fns, idx = append(fns, w.fn), append(idx, i)
		}
	}
	for j, err := range s.writeAll(ctx, fns) {
		i := idx[j]
		out[i].Recorded, out[i].Err = writes[i].answer(err)
	}
	return out
}

// fireWrite is one RecordFire's or FireRun's write and its answer.
type fireWrite struct {
	fn       func(tx *sql.Tx) error
	inserted bool
}

// record makes f RecordFire's write, or says why it cannot be.
func (f *fireWrite) record(s *Store, ctx context.Context, job string, slot time.Time, runID string) error {
	if job == "" {
		return errors.New("record fire: empty job name")
	}
	if slot.IsZero() {
		return fmt.Errorf("record fire %s: zero slot", job)
	}
	f.fn = func(tx *sql.Tx) error {
		var err error
		f.inserted, err = s.recordFireTx(ctx, tx, job, slot, runID)
		return err
	}
	return nil
}

// run makes f FireRun's write, or says why it cannot be.
func (f *fireWrite) run(s *Store, ctx context.Context, run store.Run) error {
	if run.ID == "" || run.Job == "" || run.ScheduledFor.IsZero() {
		return fmt.Errorf("fire run %q: needs an id, a job and a slot", run.ID)
	}
	f.fn = func(tx *sql.Tx) error {
		ok, err := s.recordFireTx(ctx, tx, run.Job, run.ScheduledFor, run.ID)
		if err != nil {
			return err
		}
		if !ok {
			return errSlotTaken
		}
		f.inserted = true
		return s.createRunTx(ctx, tx, run)
	}
	return nil
}

// answer is the fire's answer once its write returned err.
func (f *fireWrite) answer(err error) (bool, error) {
	if errors.Is(err, errSlotTaken) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return f.inserted, nil
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

package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// pruneBatch is how many runs one PruneRuns transaction deletes at most,
// so that no transaction holds its locks for long.
var pruneBatch = 500

// PruneRuns deletes the runs that finished before finishedBefore, with
// their machines, actions and output (the foreign keys cascade), and
// returns how many it deleted. A run counts as finished when its status
// is final and its finish time is set; fire records are left alone. It
// then deletes the delivered and failed notifications created before
// finishedBefore, in batches the same way; pending ones stay, and none is
// counted; and the audit entries recorded before finishedBefore, in
// batches too, uncounted.
//
// It deletes in transactions of at most pruneBatch runs, oldest first,
// until a batch finds nothing. The runs are picked FOR UPDATE SKIP
// LOCKED, so cores pruning at once split the work (each run is deleted,
// and counted, by one of them) and a run another writer holds is left for
// a later prune. Their machines are then locked in (run_id, machine) byte
// order, the order AppendOutputBatch locks machines in, so a prune waits
// for an append in progress instead of deadlocking with it.
func (s *Store) PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var before int64
	switch {
	case finishedBefore.Before(minTime) || finishedBefore.Equal(minTime):
		return 0, nil // nothing the store keeps finished before then
	case finishedBefore.After(maxTime):
		before = maxTime.UnixNano()
	default:
		before = finishedBefore.UnixNano()
	}
	op := "prune runs finished before " + finishedBefore.UTC().Format(time.RFC3339Nano)
	total := 0
	for {
		var n int
		err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			n, err = pruneBatchTx(ctx, tx, before, pruneBatch)
			return err
		})
		if err != nil {
			if total > 0 {
				return total, fmt.Errorf("%w (%d pruned before)", s.fail(op, err), total)
			}
			return 0, s.fail(op, err)
		}
		total += n
		if n == 0 {
			break
		}
	}
	for {
		var n int
		err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			n, err = pruneNotesTx(ctx, tx, before, pruneBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("%w (%d runs pruned before)", s.fail("prune notifications", err), total)
		}
		if n == 0 {
			break
		}
	}
	for {
		var n int
		err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			n, err = pruneAuditTx(ctx, tx, before, pruneBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("%w (%d runs pruned before)", s.fail("prune audit entries", err), total)
		}
		if n == 0 {
			return total, nil
		}
	}
}

// pruneBatchTx deletes at most limit finished runs in tx and returns how
// many. The status condition repeats migration 3's partial index
// runs_finished so that the planner can use it.
func pruneBatchTx(ctx context.Context, tx pgx.Tx, before int64, limit int) (int, error) {
	rows, err := tx.Query(ctx, `
SELECT id FROM runs
WHERE finished_at_ns < $1 AND status NOT IN ('', 'pending', 'running')
ORDER BY finished_at_ns
LIMIT $2
FOR UPDATE SKIP LOCKED`, before, limit)
	if err != nil {
		return 0, err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		return 0, nil
	}
	// Lock the machines before the cascade does, in a fixed order.
	rows, err = tx.Query(ctx, `
SELECT 1 FROM machines WHERE run_id = ANY($1)
ORDER BY run_id COLLATE "C", machine COLLATE "C"
FOR UPDATE`, ids)
	if err != nil {
		return 0, err
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, `DELETE FROM runs WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Bounds on the work PruneRuns does while it holds the writer.
const (
	// pruneBatch is how many runs one write transaction deletes, with
	// their machines, actions and output.
	pruneBatch = 500
	// vacuumStep is how many free pages one incremental vacuum step gives
	// back to the file system.
	vacuumStep = 2048
)

// PruneRuns deletes the runs that finished before finishedBefore, with
// their machines, actions and output (which cascade), and returns how many
// it deleted. Runs still active are never pruned, whatever their
// finished_at; fire records stay. It then deletes the delivered and failed
// notifications created before finishedBefore (pending ones stay, and
// none is counted), and the audit entries recorded before it (not
// counted either). It deletes at most pruneBatch rows per write
// transaction and releases the writer between batches, so other writers
// wait for one batch at most. It then gives the freed pages back to the
// file system in steps of vacuumStep pages, each its own transaction. On
// error it returns how many runs it had deleted so far.
func (s *Store) PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error) {
	var e enc
	before := e.t(finishedBefore)
	if e.err != nil {
		return 0, fmt.Errorf("prune runs: %w", e.err)
	}
	if before == nil {
		return 0, nil // nothing finished before the zero time
	}
	total := 0
	for {
		var n int64
		err := s.writeAlone(ctx, func(tx *sql.Tx) error {
			n = 0
			fail := func(err error) error {
				return fmt.Errorf("prune runs finished before %s: %w", finishedBefore, s.dbErr(ctx, err))
			}
			// active = 0 lets the planner use the partial index
			// runs_finished; finished_at < ? excludes NULL. Each
			// pruned run's output file goes once this commits.
			rows, err := tx.QueryContext(ctx, `DELETE FROM runs WHERE seq IN (
				SELECT seq FROM runs WHERE active = 0 AND finished_at < ?
				ORDER BY finished_at, seq LIMIT ?) RETURNING id`, before, pruneBatch)
			if err != nil {
				return fail(err)
			}
			defer rows.Close()
			for rows.Next() {
				var id string
				if err := rows.Scan(&id); err != nil {
					return fail(err)
				}
				s.files.free(reclaim{runID: id})
				n++
			}
			if err := rows.Err(); err != nil {
				return fail(err)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < pruneBatch {
			break
		}
	}
	notes := int64(0)
	for {
		n, err := s.pruneNotes(ctx, before, pruneBatch)
		if err != nil {
			return total, err
		}
		notes += n
		if n < pruneBatch {
			break
		}
	}
	audit := int64(0)
	for {
		n, err := s.pruneAudit(ctx, before, pruneBatch)
		if err != nil {
			return total, err
		}
		audit += n
		if n < pruneBatch {
			break
		}
	}
	if total == 0 && notes == 0 && audit == 0 {
		return 0, nil
	}
	if err := s.vacuum(ctx); err != nil {
		return total, err
	}
	return total, nil
}

// vacuum gives free pages back to the file system, vacuumStep pages per
// write transaction, until none are left or a step frees none.
func (s *Store) vacuum(ctx context.Context) error {
	prev := int64(-1)
	for {
		var free int64
		err := s.writeAlone(ctx, func(tx *sql.Tx) error {
			if err := tx.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
				return fmt.Errorf("vacuum: %w", s.dbErr(ctx, err))
			}
			if free == 0 || free == prev {
				return nil
			}
			// PRAGMA takes no parameters; vacuumStep is ours, not input.
			if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", vacuumStep)); err != nil {
				return fmt.Errorf("vacuum: %w", s.dbErr(ctx, err))
			}
			return nil
		})
		if err != nil {
			return err
		}
		if free == 0 || free == prev {
			return nil
		}
		prev = free
	}
}

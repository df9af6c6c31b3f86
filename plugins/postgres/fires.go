package postgres

import (
	"context"
	"fmt"
	"time"
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
	tag, err := s.pool.Exec(ctx, `
INSERT INTO fires (job, slot, run_id, recorded_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (job, slot) DO NOTHING`, job, *at, runID, time.Now().UnixNano())
	if err != nil {
		return false, s.fail(op, err)
	}
	return tag.RowsAffected() == 1, nil
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

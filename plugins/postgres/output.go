package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Append is one chunk for AppendOutputBatch.
type Append = store.Append

// AppendResult is what AppendOutput would have returned for one chunk of
// a batch.
type AppendResult = store.AppendResult

var _ store.Batcher = (*Store)(nil)

// refusal is an append the store answers without a database error
// (unknown machine, out of order): it leaves the transaction usable.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// AppendOutput stores c if it is the machine's next seq and returns after
// the transaction commits. A seq below the next is a duplicate: nothing is
// stored and the current next seq is returned; a seq above it fails with
// store.ErrOutOfOrder and the expected seq.
func (s *Store) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	var next int64
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		next, err = appendTx(ctx, tx, Append{RunID: runID, Machine: machine, Chunk: c})
		return err
	})
	var r refusal
	switch {
	case errors.As(err, &r):
		return next, r.err
	case err != nil:
		return 0, s.fail(fmt.Sprintf("append output seq %d to %s of run %s", c.Seq, machine, runID), err)
	}
	return next, nil
}

// AppendOutputBatch stores many chunks in one transaction, in order, and
// returns one result per chunk after the commit. A chunk refused on its
// own (unknown machine, out of order) does not stop the others; a
// database failure fails every chunk not refused, since none of them was
// stored.
func (s *Store) AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult {
	res := make([]AppendResult, len(batch))
	failAll := func(err error) []AppendResult {
		for i := range res {
			if res[i].Err == nil {
				res[i] = AppendResult{Err: err}
			}
		}
		return res
	}
	if len(batch) == 0 {
		return res
	}
	if err := s.check(ctx); err != nil {
		return failAll(err)
	}
	// Lock every machine first, in one order, so that two cores' batches
	// over the same machines cannot deadlock.
	type key struct{ run, machine string }
	var keys []key
	for _, a := range batch {
		keys = append(keys, key{a.RunID, a.Machine})
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.run, b.run), cmp.Compare(a.machine, b.machine))
	})
	keys = slices.Compact(keys)
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for _, k := range keys {
			rows, err := tx.Query(ctx, `SELECT 1 FROM machines WHERE run_id = $1 AND machine = $2 FOR UPDATE`, k.run, k.machine)
			if err != nil {
				return err
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
		}
		for i, a := range batch {
			next, err := appendTx(ctx, tx, a)
			var r refusal
			switch {
			case errors.As(err, &r):
				res[i] = AppendResult{Next: next, Err: r.err}
			case err != nil:
				return err
			default:
				res[i] = AppendResult{Next: next}
			}
		}
		return nil
	})
	if err != nil {
		return failAll(s.fail(fmt.Sprintf("append output batch of %d", len(batch)), err))
	}
	return res
}

// appendTx appends one chunk in tx. The machine row's lock orders
// appenders from every core; the guarded UPDATE and the output primary
// key make a second store of a seq impossible even so.
func appendTx(ctx context.Context, tx pgx.Tx, a Append) (int64, error) {
	c := a.Chunk
	var next, size, stored, capBytes int64
	err := tx.QueryRow(ctx, `
SELECT next_seq, output_bytes, stored_bytes, output_cap FROM machines
WHERE run_id = $1 AND machine = $2 FOR UPDATE`,
		a.RunID, a.Machine).Scan(&next, &size, &stored, &capBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, refusal{fmt.Errorf("append output: machine %s of run %s: %w", a.Machine, a.RunID, store.ErrNotFound)}
	}
	if err != nil {
		return 0, err
	}
	switch {
	case c.Seq < next:
		return next, nil
	case c.Seq > next:
		return next, refusal{fmt.Errorf("append output seq %d to %s of run %s, expected %d: %w",
			c.Seq, a.Machine, a.RunID, next, store.ErrOutOfOrder)}
	}
	at, err := nanos(c.At)
	if err != nil {
		return next, refusal{fmt.Errorf("append output seq %d to %s of run %s: %w", c.Seq, a.Machine, a.RunID, err)}
	}
	data := c.Data
	if data == nil {
		data = []byte{}
	}
	n := int64(len(data))
	// The stream's size grows and gives the chunk its stream offset in
	// the same statement.
	if _, err := tx.Exec(ctx, `
WITH s AS (
	INSERT INTO output_streams (run_id, machine, stream, bytes) VALUES ($1, $2, $4, $8)
	ON CONFLICT (run_id, machine, stream) DO UPDATE SET bytes = output_streams.bytes + EXCLUDED.bytes
	RETURNING bytes
)
INSERT INTO output (run_id, machine, seq, stream, data, at_ns, end_off, stream_end)
SELECT $1, $2, $3, $4, $5, $6, $7, s.bytes FROM s`,
		a.RunID, a.Machine, c.Seq, c.Stream, data, at, size+n, n); err != nil {
		return next, err
	}
	stored += n
	if capBytes > 0 && stored > capBytes {
		if stored, err = capOutput(ctx, tx, a.RunID, a.Machine, c.Seq, capBytes, stored); err != nil {
			return next, err
		}
	}
	tag, err := tx.Exec(ctx, `
UPDATE machines SET next_seq = next_seq + 1, output_bytes = output_bytes + $4, stored_bytes = $5
WHERE run_id = $1 AND machine = $2 AND next_seq = $3`, a.RunID, a.Machine, c.Seq, n, stored)
	if err != nil {
		return next, err
	}
	if tag.RowsAffected() != 1 {
		return next, fmt.Errorf("machine %s of run %s moved past seq %d while locked", a.Machine, a.RunID, c.Seq)
	}
	return next + 1, nil
}

// capOutput drops the oldest chunks past the head, never the newest
// (newest), while what stays is at least the cap, and returns what the
// machine then stores (see the output cap in sdk/store's package doc).
// Past its cap a machine drops about one chunk per chunk appended, so a
// few candidates at a time are plenty.
func capOutput(ctx context.Context, tx pgx.Tx, runID, machine string, newest, capBytes, stored int64) (int64, error) {
	oldest := func() ([]store.Droppable, error) {
		rows, err := tx.Query(ctx, `
SELECT seq, octet_length(data) FROM output
WHERE run_id = $1 AND machine = $2 AND end_off > $3 AND end_off - octet_length(data) >= $3 AND seq < $4
ORDER BY end_off LIMIT 32`, runID, machine, store.HeadBytes(capBytes), newest)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []store.Droppable
		for rows.Next() {
			var d store.Droppable
			if err := rows.Scan(&d.Seq, &d.Size); err != nil {
				return nil, err
			}
			out = append(out, d)
		}
		return out, rows.Err()
	}
	drop := func(first, last int64) error {
		_, err := tx.Exec(ctx, `DELETE FROM output WHERE run_id = $1 AND machine = $2 AND seq BETWEEN $3 AND $4`,
			runID, machine, first, last)
		return err
	}
	return store.DropOldest(capBytes, stored, oldest, drop)
}

// ReadOutput returns the selected bytes from q.Offset (at most q.Limit of
// them, dropped stretches marked), where to read on from, and the
// selection's whole size, from one snapshot. The chunks' stored end
// offsets let it seek to q.Offset through an index.
func (s *Store) ReadOutput(ctx context.Context, q store.OutputQuery) (store.Output, error) {
	if err := s.check(ctx); err != nil {
		return store.Output{}, err
	}
	off := max(q.Offset, 0)
	stop := int64(math.MaxInt64)
	if q.Limit > 0 && off <= math.MaxInt64-q.Limit {
		stop = off + q.Limit
	}
	// endCol is the offset column of the selection; stream filters it.
	endCol, filter := "end_off", ""
	args := []any{q.RunID, q.Machine, off, stop}
	if q.Stream != "" {
		endCol, filter = "stream_end", " AND stream = $5"
		args = append(args, q.Stream)
	}
	var out store.Output
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		var total int64
		err := tx.QueryRow(ctx, `SELECT output_bytes FROM machines WHERE run_id = $1 AND machine = $2`,
			q.RunID, q.Machine).Scan(&total)
		if err != nil {
			return err
		}
		if q.Stream != "" {
			if err := tx.QueryRow(ctx, `
SELECT COALESCE((SELECT bytes FROM output_streams WHERE run_id = $1 AND machine = $2 AND stream = $3), 0)`,
				q.RunID, q.Machine, q.Stream).Scan(&total); err != nil {
				return err
			}
		}
		plan := store.NewReadPlan(q, total)
		defer func() { out = plan.Done() }()
		if off >= total {
			return nil
		}
		// From the first chunk ending past off to the first ending at
		// or past stop: both bounds seek the index.
		rows, err := tx.Query(ctx, `
SELECT data, `+endCol+` FROM output
WHERE run_id = $1 AND machine = $2`+filter+` AND `+endCol+` > $3
	AND seq <= COALESCE((SELECT seq FROM output
		WHERE run_id = $1 AND machine = $2`+filter+` AND `+endCol+` >= $4
		ORDER BY `+endCol+` LIMIT 1), 9223372036854775807)
ORDER BY seq`, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var data []byte
			var end int64
			if err := rows.Scan(&data, &end); err != nil {
				return err
			}
			if !plan.Add(end-int64(len(data)), data) {
				break
			}
		}
		return rows.Err()
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return store.Output{}, fmt.Errorf("read output: machine %s of run %s: %w", q.Machine, q.RunID, store.ErrNotFound)
	case err != nil:
		return store.Output{}, s.fail(fmt.Sprintf("read output of %s of run %s", q.Machine, q.RunID), err)
	}
	return out, nil
}

package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Append is one chunk of a batch (the SDK's type).
type Append = store.Append

// AppendResult answers one Append: Next and Err as AppendOutput would
// have returned them.
type AppendResult = store.AppendResult

var _ store.Batcher = (*Store)(nil)

// AppendOutputBatch implements store.Batcher: AppendBatch, with a failure
// of the whole batch given to every chunk.
func (s *Store) AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult {
	res, err := s.AppendBatch(ctx, batch)
	if err != nil {
		res = make([]AppendResult, len(batch))
		for i := range res {
			res[i].Err = err
		}
	}
	return res
}

// AppendOutput stores c if it is the machine's next seq, and returns the
// machine's next expected seq once the chunk is committed. A chunk below
// it is a duplicate and stores nothing; one above it fails with
// store.ErrOutOfOrder and the expected seq. Output is taken for a final
// machine too (a lost wrapper's late chunks).
func (s *Store) AppendOutput(ctx context.Context, runID, machine string, c store.Chunk) (int64, error) {
	var res AppendResult
	err := s.write(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = s.appendTx(ctx, tx, Append{RunID: runID, Machine: machine, Chunk: c})
		if err != nil {
			return err
		}
		// Nothing to commit for a refused chunk; rolling back is the same.
		return nil
	})
	if err != nil {
		return 0, err
	}
	return res.Next, res.Err
}

// AppendBatch stores many chunks, of any runs and machines, in one
// transaction, in order, so that a chunk may follow another of the same
// machine in the batch. Each chunk gets the result AppendOutput would have
// given it; a chunk's refusal (store.ErrNotFound, store.ErrOutOfOrder)
// does not stop the others. The returned error is for the batch as a
// whole (the context, the database): then nothing of it was stored and
// the results are nil. It returns once the transaction is committed.
func (s *Store) AppendBatch(ctx context.Context, batch []Append) ([]AppendResult, error) {
	if len(batch) == 0 {
		return []AppendResult{}, nil
	}
	results := make([]AppendResult, len(batch))
	err := s.write(ctx, func(tx *sql.Tx) error {
		for i, a := range batch {
			res, err := s.appendTx(ctx, tx, a)
			if err != nil {
				return err
			}
			results[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// appendTx stores one chunk in tx. The chunk's own refusal is in the
// result; the error is the transaction's failure.
func (s *Store) appendTx(ctx context.Context, tx *sql.Tx, a Append) (AppendResult, error) {
	var status string
	var next, size int64
	if err := s.machineRow(ctx, tx, a.RunID, a.Machine, &status, &next, &size); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return AppendResult{Err: fmt.Errorf("append output: %w", err)}, nil
		}
		return AppendResult{}, fmt.Errorf("append output to %s of run %s: %w", a.Machine, a.RunID, err)
	}
	c := a.Chunk
	switch {
	case c.Seq < next:
		return AppendResult{Next: next}, nil
	case c.Seq > next:
		return AppendResult{Next: next, Err: fmt.Errorf("append output seq %d to %s of run %s, expected %d: %w",
			c.Seq, a.Machine, a.RunID, next, store.ErrOutOfOrder)}, nil
	}
	var e enc
	at := e.t(c.At)
	if e.err != nil {
		return AppendResult{Next: next, Err: fmt.Errorf("append output seq %d to %s of run %s: %w",
			c.Seq, a.Machine, a.RunID, e.err)}, nil
	}
	var streamEnd int64
	if err := tx.StmtContext(ctx, s.stmts.streamEnd).QueryRowContext(ctx, a.RunID, a.Machine, c.Stream).Scan(&streamEnd); err != nil {
		return AppendResult{}, fmt.Errorf("append output to %s of run %s: %w", a.Machine, a.RunID, s.dbErr(ctx, err))
	}
	n := int64(len(c.Data))
	data := c.Data
	if data == nil {
		data = []byte{}
	}
	if _, err := tx.StmtContext(ctx, s.stmts.insertChunk).ExecContext(ctx, a.RunID, a.Machine, c.Seq, c.Stream, at, n, size+n, streamEnd+n, data); err != nil {
		return AppendResult{}, fmt.Errorf("append output to %s of run %s: %w", a.Machine, a.RunID, s.dbErr(ctx, err))
	}
	if _, err := tx.StmtContext(ctx, s.stmts.advance).ExecContext(ctx, next+1, size+n, a.RunID, a.Machine); err != nil {
		return AppendResult{}, fmt.Errorf("append output to %s of run %s: %w", a.Machine, a.RunID, s.dbErr(ctx, err))
	}
	return AppendResult{Next: next + 1}, nil
}

// ReadOutput returns the selected bytes from q.Offset (at most q.Limit of
// them) and the selection's total size. A negative offset reads from 0.
// It seeks to the chunk holding the offset through an index rather than
// reading the chunks before it.
func (s *Store) ReadOutput(ctx context.Context, q store.OutputQuery) ([]byte, int64, error) {
	var out []byte
	var total int64
	err := s.read(ctx, func(tx *sql.Tx) error {
		var status string
		var next int64
		err := tx.QueryRowContext(ctx, `SELECT status, next_seq, output_bytes FROM machines
			WHERE run_id = ? AND machine = ?`, q.RunID, q.Machine).Scan(&status, &next, &total)
		if errors.Is(err, sql.ErrNoRows) {
			if err := s.runExists(ctx, tx, q.RunID); err != nil {
				return fmt.Errorf("read output: %w", err)
			}
			return fmt.Errorf("read output: machine %s of run %s: %w", q.Machine, q.RunID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, s.dbErr(ctx, err))
		}
		var rows *sql.Rows
		off := max(q.Offset, 0)
		if q.Stream == "" {
			if off >= total {
				return nil
			}
			rows, err = tx.QueryContext(ctx, `SELECT end_off - size, data FROM output_chunks
				WHERE run_id = ? AND machine = ? AND end_off > ? ORDER BY end_off, seq`, q.RunID, q.Machine, off)
		} else {
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(stream_end), 0) FROM output_chunks
				WHERE run_id = ? AND machine = ? AND stream = ?`, q.RunID, q.Machine, q.Stream).Scan(&total); err != nil {
				return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, s.dbErr(ctx, err))
			}
			if off >= total {
				return nil
			}
			rows, err = tx.QueryContext(ctx, `SELECT stream_end - size, data FROM output_chunks
				WHERE run_id = ? AND machine = ? AND stream = ? AND stream_end > ? ORDER BY stream_end, seq`,
				q.RunID, q.Machine, q.Stream, off)
		}
		if err != nil {
			return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, s.dbErr(ctx, err))
		}
		defer rows.Close()
		want := total - off
		if q.Limit > 0 {
			want = min(want, q.Limit)
		}
		out = make([]byte, 0, want)
		for int64(len(out)) < want && rows.Next() {
			var start int64
			var data []byte
			if err := rows.Scan(&start, &data); err != nil {
				return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, s.dbErr(ctx, err))
			}
			part := data[max(off-start, 0):]
			if room := want - int64(len(out)); int64(len(part)) > room {
				part = part[:room]
			}
			out = append(out, part...)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, s.dbErr(ctx, err))
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if out == nil {
		out = []byte{}
	}
	return out, total, nil
}

// appendStmts are the writer's prepared statements for the output path,
// parsed once rather than per chunk.
type appendStmts struct {
	machine, streamEnd, insertChunk, advance *sql.Stmt
}

func (a *appendStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&a.machine, `SELECT status, next_seq, output_bytes FROM machines WHERE run_id = ? AND machine = ?`},
		{&a.streamEnd, `SELECT coalesce(max(stream_end), 0) FROM output_chunks
			WHERE run_id = ? AND machine = ? AND stream = ?`},
		{&a.insertChunk, `INSERT INTO output_chunks (run_id, machine, seq, stream, at, size, end_off, stream_end, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&a.advance, `UPDATE machines SET next_seq = ?, output_bytes = ? WHERE run_id = ? AND machine = ?`},
	} {
		st, err := db.PrepareContext(ctx, p.q)
		if err != nil {
			return err
		}
		*p.dst = st
	}
	return nil
}

func (a *appendStmts) close() {
	for _, st := range []*sql.Stmt{a.machine, a.streamEnd, a.insertChunk, a.advance} {
		if st != nil {
			_ = st.Close()
		}
	}
}

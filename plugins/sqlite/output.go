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
	res, err := s.AppendBatch(ctx, []Append{{RunID: runID, Machine: machine, Chunk: c}})
	if err != nil {
		return 0, err
	}
	return res[0].Next, res[0].Err
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
	size := 0
	for _, a := range batch {
		size += len(a.Chunk.Data)
	}
	err := s.writeSized(ctx, size, func(tx *sql.Tx) error {
		ap := outputBatch{s: s, ctx: ctx, tx: tx}
		for i, a := range batch {
			res, err := ap.append(a)
			if err != nil {
				return err
			}
			results[i] = res
		}
		return ap.flush()
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// outputBatch stores the chunks of one batch in its transaction. It reads a
// machine's row, and each stream's size, once per batch, keeps them as
// its chunks go in, and writes them back once, in flush: a batch of one
// job's output is mostly chunks of one machine, each of which cost four
// statements besides its own insert when every chunk read and wrote them.
type outputBatch struct {
	s   *Store
	ctx context.Context
	tx  *sql.Tx
	// machines are the rows of the machines the batch wrote to, as they
	// stand after its chunks so far.
	machines map[machineKey]*machineOut
}

type machineKey struct{ run, machine string }

type machineOut struct {
	row     machRow
	dirty   bool
	streams map[string]*streamOut
}

// streamOut is a stream's size as the batch found it and what it added.
type streamOut struct{ bytes, added int64 }

// machine returns the machine's row as the batch's chunks left it.
func (ap *outputBatch) machine(runID, machine string) (*machineOut, error) {
	k := machineKey{runID, machine}
	if m := ap.machines[k]; m != nil {
		return m, nil
	}
	row, err := ap.s.machineRow(ap.ctx, ap.tx, runID, machine)
	if err != nil {
		return nil, err
	}
	m := &machineOut{row: row, streams: map[string]*streamOut{}}
	if ap.machines == nil {
		ap.machines = map[machineKey]*machineOut{}
	}
	ap.machines[k] = m
	return m, nil
}

// stream returns the stream's size as the batch's chunks left it.
func (ap *outputBatch) stream(m *machineOut, runID, machine, stream string) (*streamOut, error) {
	if st := m.streams[stream]; st != nil {
		return st, nil
	}
	st := &streamOut{}
	err := ap.tx.StmtContext(ap.ctx, ap.s.stmts.streamBytes).QueryRowContext(ap.ctx, runID, machine, stream).Scan(&st.bytes)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	m.streams[stream] = st
	return st, nil
}

// append stores one chunk. The chunk's own refusal is in the result; the
// error is the transaction's failure.
func (ap *outputBatch) append(a Append) (AppendResult, error) {
	s, ctx, tx := ap.s, ap.ctx, ap.tx
	m, err := ap.machine(a.RunID, a.Machine)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return AppendResult{Err: fmt.Errorf("append output: %w", err)}, nil
		}
		return AppendResult{}, fmt.Errorf("append output to %s of run %s: %w", a.Machine, a.RunID, err)
	}
	row := &m.row
	next, size := row.next, row.size
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
	n := int64(len(c.Data))
	data := c.Data
	if data == nil {
		data = []byte{}
	}
	fail := func(err error) (AppendResult, error) {
		return AppendResult{}, fmt.Errorf("append output to %s of run %s: %w", a.Machine, a.RunID, s.dbErr(ctx, err))
	}
	st, err := ap.stream(m, a.RunID, a.Machine, c.Stream)
	if err != nil {
		return fail(err)
	}
	streamEnd := st.bytes + st.added + n
	var fileOff *int64
	if len(data) >= s.files.min {
		off, err := s.files.write(a.RunID, data)
		if err != nil {
			return fail(err)
		}
		fileOff, data = &off, []byte{}
	}
	if _, err := tx.StmtContext(ctx, s.stmts.insertChunk).ExecContext(ctx, a.RunID, a.Machine, c.Seq, c.Stream, at, n, size+n, streamEnd, data, fileOff); err != nil {
		return fail(err)
	}
	st.added += n
	stored := row.stored + n
	if row.cap > 0 && stored > row.cap {
		var err error
		if stored, err = s.capOutput(ctx, tx, a.RunID, a.Machine, c.Seq, row.cap, stored); err != nil {
			return fail(err)
		}
	}
	row.next, row.size, row.stored = next+1, size+n, stored
	m.dirty = true
	return AppendResult{Next: next + 1}, nil
}

// flush writes back the rows the batch's chunks changed.
func (ap *outputBatch) flush() error {
	s, ctx, tx := ap.s, ap.ctx, ap.tx
	for k, m := range ap.machines {
		if !m.dirty {
			continue
		}
		fail := func(err error) error {
			return fmt.Errorf("append output to %s of run %s: %w", k.machine, k.run, s.dbErr(ctx, err))
		}
		for stream, st := range m.streams {
			if st.added == 0 {
				continue
			}
			if _, err := tx.StmtContext(ctx, s.stmts.streamGrow).ExecContext(ctx, k.run, k.machine, stream, st.added); err != nil {
				return fail(err)
			}
		}
		if _, err := tx.StmtContext(ctx, s.stmts.advance).ExecContext(ctx, m.row.next, m.row.size, m.row.stored, k.run, k.machine); err != nil {
			return fail(err)
		}
	}
	return nil
}

// capOutput drops the oldest chunks past the head, never the newest
// (newest), while what stays is at least the cap, and returns what the
// machine then stores (see the output cap in sdk/store's package doc).
// Past its cap a machine drops about one chunk per chunk appended, so a
// few candidates at a time are plenty.
func (s *Store) capOutput(ctx context.Context, tx *sql.Tx, runID, machine string, newest, capBytes, stored int64) (int64, error) {
	oldest := func() ([]store.Droppable, error) {
		rows, err := tx.StmtContext(ctx, s.stmts.droppable).QueryContext(ctx, runID, machine, store.HeadBytes(capBytes), newest)
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
		rows, err := tx.StmtContext(ctx, s.stmts.drop).QueryContext(ctx, runID, machine, first, last)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var off, n int64
			if err := rows.Scan(&off, &n); err != nil {
				return err
			}
			if off >= 0 {
				s.files.free(reclaim{runID: runID, off: off, n: n})
			}
		}
		return rows.Err()
	}
	return store.DropOldest(capBytes, stored, oldest, drop)
}

// ReadOutput returns the selected bytes from q.Offset (at most q.Limit of
// them, dropped stretches marked), where to read on from, and the
// selection's whole size. A negative offset reads from 0. It seeks to the
// chunk holding the offset through an index rather than reading the
// chunks before it.
func (s *Store) ReadOutput(ctx context.Context, q store.OutputQuery) (store.Output, error) {
	var out store.Output
	err := s.read(ctx, func(tx *sql.Tx) error {
		// Before the first statement, where SQLite takes the snapshot:
		// the bytes the snapshot's rows name in the run's file are not
		// freed until the reads below are done.
		s.files.gate.RLock()
		defer s.files.gate.RUnlock()
		fail := func(err error) error {
			return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, s.dbErr(ctx, err))
		}
		var total int64
		err := s.rq.queryRow(ctx, tx, outputBytesSQL, q.RunID, q.Machine).Scan(&total)
		if errors.Is(err, sql.ErrNoRows) {
			if err := s.runExists(ctx, s.rq, tx, q.RunID); err != nil {
				return fmt.Errorf("read output: %w", err)
			}
			return fmt.Errorf("read output: machine %s of run %s: %w", q.Machine, q.RunID, store.ErrNotFound)
		}
		if err != nil {
			return fail(err)
		}
		if q.Stream != "" {
			err := s.rq.queryRow(ctx, tx, streamBytesSQL, q.RunID, q.Machine, q.Stream).Scan(&total)
			if errors.Is(err, sql.ErrNoRows) {
				total, err = 0, nil
			}
			if err != nil {
				return fail(err)
			}
		}
		plan := store.NewReadPlan(q, total)
		defer func() { out = plan.Done() }()
		if plan.Offset() >= total {
			return nil
		}
		var rows *sql.Rows
		if q.Stream == "" {
			rows, err = s.rq.query(ctx, tx, readChunksSQL, q.RunID, q.Machine, plan.Offset())
		} else {
			rows, err = s.rq.query(ctx, tx, readStreamChunksSQL, q.RunID, q.Machine, q.Stream, plan.Offset())
		}
		if err != nil {
			return fail(err)
		}
		defer rows.Close()
		file := fileReader{o: s.files, runID: q.RunID}
		defer file.close()
		for rows.Next() {
			var start, size int64
			var data []byte
			var fileOff sql.NullInt64
			if err := rows.Scan(&start, &data, &fileOff, &size); err != nil {
				return fail(err)
			}
			more := true
			if !fileOff.Valid {
				more = plan.Add(start, data)
			} else if data, ok, err := file.read(fileOff.Int64, size); err != nil {
				return fmt.Errorf("read output of %s of run %s: %w", q.Machine, q.RunID, err)
			} else if ok {
				more = plan.Add(start, data)
			} else {
				more = plan.AddLost(start, size)
			}
			if !more {
				break
			}
		}
		if err := rows.Err(); err != nil {
			return fail(err)
		}
		return nil
	})
	if err != nil {
		return store.Output{}, err
	}
	return out, nil
}

// appendStmts are the writer's prepared statements for the output path,
// parsed once rather than per chunk.
type appendStmts struct {
	machine, streamBytes, streamGrow, insertChunk, advance, droppable, drop *sql.Stmt
}

func (a *appendStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&a.machine, `SELECT status, next_seq, output_bytes, stored_bytes, output_cap FROM machines
			WHERE run_id = ? AND machine = ?`},
		{&a.streamBytes, `SELECT bytes FROM output_streams WHERE run_id = ? AND machine = ? AND stream = ?`},
		// Grows the stream by what a batch added to it.
		{&a.streamGrow, `INSERT INTO output_streams (run_id, machine, stream, bytes) VALUES (?1, ?2, ?3, ?4)
			ON CONFLICT (run_id, machine, stream) DO UPDATE SET bytes = bytes + excluded.bytes`},
		{&a.insertChunk, `INSERT INTO output_chunks (run_id, machine, seq, stream, at, size, end_off, stream_end, data, file_off)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&a.advance, `UPDATE machines SET next_seq = ?, output_bytes = ?, stored_bytes = ? WHERE run_id = ? AND machine = ?`},
		// The oldest chunks the cap may drop: past the head (starting at
		// or after ?3, so ending after it: the index bound), not the
		// newest.
		{&a.droppable, `SELECT seq, size FROM output_chunks
			WHERE run_id = ?1 AND machine = ?2 AND end_off > ?3 AND end_off - size >= ?3 AND seq < ?4
			ORDER BY end_off, seq LIMIT 32`},
		// Answers the dropped chunks that were in the run's file, whose
		// bytes are freed once the drop commits.
		{&a.drop, `DELETE FROM output_chunks WHERE run_id = ? AND machine = ? AND seq BETWEEN ? AND ?
			RETURNING coalesce(file_off, -1), size`},
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
	for _, st := range []*sql.Stmt{a.machine, a.streamBytes, a.streamGrow, a.insertChunk, a.advance, a.droppable, a.drop} {
		if st != nil {
			_ = st.Close()
		}
	}
}

package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	sqlite "modernc.org/sqlite"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Group commit. Every write transaction costs a BEGIN, a COMMIT and WAL
// frames for each page it touched; under fleet load many small writes
// touch the same few pages, so writes that arrive while another
// transaction runs wait and then share one transaction, each in its own
// savepoint.

// Bounds on one shared transaction.
const (
	// maxBatch is how many writes one transaction combines.
	maxBatch = 256
	// maxBatchBytes bounds the output data (what callers declare) one
	// transaction combines, so that many output batches do not make one
	// huge transaction; a write larger than it runs alone.
	maxBatchBytes = 4 << 20
	// batchTimeout bounds a shared transaction, which no caller's context
	// ends: a write that would start past it waits for the next one, and
	// this one commits what ran. A statement runs to its end.
	batchTimeout = time.Minute
)

// What became of a write. It leaves reqQueued once: for reqLead or
// reqRunning, moved by a leader, or for reqDropped, by its caller.
const (
	reqQueued  int32 = iota // waiting in the queue
	reqLead                 // out of the queue, told to lead the next batch
	reqRunning              // taken by a batch: its answer comes with the batch's
	reqDropped              // its caller's context ended first: the fn never runs
)

// writeReq is one caller's write, waiting for a batch or in one.
type writeReq struct {
	ctx   context.Context
	fn    func(*sql.Tx) error
	bytes int
	state atomic.Int32
	// wake, for a write that queued, gets one token: leadership (state
	// reqLead) or the answer (reqRunning).
	wake chan struct{}
	err  error
	// panicked is what fn panicked with, which its caller panics with.
	panicked any
}

// claim marks r as run by this batch, false when its caller dropped it.
func (r *writeReq) claim() bool {
	return r.state.CompareAndSwap(reqQueued, reqRunning) || r.state.Load() == reqRunning
}

// call runs fn. A panic is caught, so that the leader (which may not be
// fn's caller) keeps the combiner going, and rethrown by fn's caller.
func (r *writeReq) call(tx *sql.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			r.panicked = fmt.Sprintf("%v\n\nwrite function's stack:\n%s", v, debug.Stack())
			err = errors.New("write function panicked")
		}
	}()
	return r.fn(tx)
}

func (r *writeReq) result() error {
	if r.panicked != nil {
		panic(r.panicked)
	}
	return r.err
}

// combiner queues the writes waiting for the writer connection. One
// caller at a time leads: it runs the next batch from the queue, then
// hands the lead to the first caller still waiting, so that no caller
// runs batches for others indefinitely.
type combiner struct {
	mu    sync.Mutex
	queue []*writeReq
	// busy: a leader runs a batch or has been told to; while it is false
	// the queue is empty and the next write leads at once.
	busy bool

	// shield is set while a transaction of the combiner is open; see
	// writerConn.
	shield shield

	// Test hooks: onQueued after a write joins the queue, onBatch with
	// how many writes a transaction took, onParse with each SQL text the
	// writer's driver parses (prepared, or run as text). Set them before
	// the writes they watch.
	onQueued func()
	onBatch  func(n int)
	onParse  func(query string)
	// timeout is batchTimeout unless a test sets it.
	timeout time.Duration
}

// handOff gives the lead to the first write still queued, or ends it.
// Call it with g.mu held.
func (g *combiner) handOff() {
	for len(g.queue) > 0 {
		r := g.queue[0]
		g.queue[0] = nil
		g.queue = g.queue[1:]
		if r.state.CompareAndSwap(reqQueued, reqLead) {
			r.wake <- struct{}{}
			return
		}
	}
	g.queue = nil
	g.busy = false
}

// take moves the writes the next batch runs from the queue to batch, in
// arrival order. Call it with g.mu held.
func (g *combiner) take(batch []*writeReq, bytes int) []*writeReq {
	n := 0
	for _, r := range g.queue {
		if len(batch) == maxBatch || bytes+r.bytes > maxBatchBytes {
			break
		}
		n++
		if r.state.Load() == reqDropped {
			continue
		}
		batch = append(batch, r)
		bytes += r.bytes
	}
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return batch
}

// write runs fn in a write transaction and returns once that committed,
// or with fn's error, fn's changes then undone. The transaction may be
// shared with other callers' writes, each in its own savepoint: fn must
// not begin, commit or roll back itself, nor run what SQLite refuses in a
// transaction (VACUUM, a journal_mode change). A write that has not
// started when ctx ends is dropped with ctx's error, fn never run. Once
// fn has started, database/sql still checks ctx before each statement,
// but a statement runs to its end: SQLite interrupted mid-write would
// roll back the whole shared transaction.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) error) error {
	return s.writeSized(ctx, 0, fn)
}

// writeSized is write for fn storing about bytes of output data, which
// bounds how much one shared transaction takes.
func (s *Store) writeSized(ctx context.Context, bytes int, fn func(tx *sql.Tx) error) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	r := &writeReq{ctx: ctx, fn: fn, bytes: bytes}
	g := &s.group
	g.mu.Lock()
	if !g.busy {
		g.busy = true
		g.mu.Unlock()
		return s.lead(r)
	}
	r.wake = make(chan struct{}, 1)
	g.queue = append(g.queue, r)
	hook := g.onQueued
	g.mu.Unlock()
	if hook != nil {
		hook()
	}
	return s.await(r)
}

// await waits for a queued write's answer, or for the lead (then runs
// the batch it leads), or drops the write when its context ends first.
func (s *Store) await(r *writeReq) error {
	select {
	case <-r.wake:
	case <-r.ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqDropped) {
			return r.ctx.Err()
		}
		// Told to lead, or in a batch: the token is on its way.
		<-r.wake
	}
	if r.state.Load() == reqLead {
		return s.lead(r)
	}
	return r.result()
}

// writeAll runs fns as writes that join the queue together, in order, so
// that they share a transaction as far as its bounds allow, rather than
// as far as their callers happen to overlap; each answer is what write
// would have answered for its fn. fns of the same machine keep their
// order: a batch takes the queue in order, and runs its savepoints so.
func (s *Store) writeAll(ctx context.Context, fns []func(tx *sql.Tx) error) []error {
	errs := make([]error, len(fns))
	done, err := s.begin(ctx)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	defer done()
	if len(fns) == 0 {
		return errs
	}
	reqs := make([]*writeReq, len(fns))
	for i, fn := range fns {
		reqs[i] = &writeReq{ctx: ctx, fn: fn, wake: make(chan struct{}, 1)}
	}
	g := &s.group
	g.mu.Lock()
	lead := !g.busy
	if lead {
		// The queue is empty: the first leads and takes the rest.
		g.busy = true
		g.queue = append(g.queue, reqs[1:]...)
	} else {
		g.queue = append(g.queue, reqs...)
	}
	hook := g.onQueued
	g.mu.Unlock()
	if hook != nil {
		hook()
	}
	for i, r := range reqs {
		if i == 0 && lead {
			errs[i] = s.lead(r)
			continue
		}
		// In order: the lead goes to the first write still queued, and
		// a later one told to lead waits only for this loop to reach it.
		errs[i] = s.await(r)
	}
	return errs
}

// writeAlone runs fn in a transaction of its own, outside the combiner:
// for long maintenance (pruning, vacuuming) that should not hold a batch
// of other writes open. The writer's one connection still keeps it apart
// from batches.
func (s *Store) writeAlone(ctx context.Context, fn func(tx *sql.Tx) error) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	r := &writeReq{ctx: ctx, fn: fn}
	r.state.Store(reqRunning)
	s.runAlone(r, false)
	return r.result()
}

// lead runs a batch led by r: r and the writes queued behind it. It then
// hands the lead on and answers the batch.
func (s *Store) lead(r *writeReq) error {
	g := &s.group
	r.state.Store(reqRunning)
	g.mu.Lock()
	if err := r.ctx.Err(); err != nil {
		g.handOff()
		g.mu.Unlock()
		return err
	}
	all := g.take([]*writeReq{r}, r.bytes)
	g.mu.Unlock()

	for batch := all; len(batch) > 0; {
		if len(batch) == 1 {
			if g.onBatch != nil {
				g.onBatch(1)
			}
			s.runAlone(batch[0], true)
			break
		}
		batch = s.runShared(batch)
	}

	// The next batch may start while this one's callers wake.
	g.mu.Lock()
	g.handOff()
	g.mu.Unlock()
	for _, q := range all[1:] {
		if q.state.Load() == reqRunning {
			q.wake <- struct{}{}
		}
	}
	return r.result()
}

// runAlone runs r in a transaction of its own. A write of the combiner
// (shielded) runs as in a shared transaction: r's context is checked
// before each statement, and a statement runs to its end (see quiet);
// maintenance (writeAlone) runs under r's context, which interrupts a
// long statement when it ends.
func (s *Store) runAlone(r *writeReq, shielded bool) {
	if !r.claim() {
		return
	}
	if err := r.ctx.Err(); err != nil {
		r.err = err
		return
	}
	ctx := r.ctx
	if shielded {
		ctx = quiet(ctx)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		r.err = s.dbErr(r.ctx, err)
		return
	}
	if shielded {
		s.group.shield.set(ctx)
	}
	err = r.call(tx)
	if shielded {
		s.group.shield.set(nil)
	}
	if err != nil {
		s.rollback(tx)
		r.err = err
		return
	}
	if err := s.commit(tx); err != nil {
		r.err = s.dbErr(r.ctx, err)
		return
	}
	s.ckpt.poke()
}

// commit commits tx after the output files it wrote are as durable as the
// commit will be, and then has what it freed in them freed.
func (s *Store) commit(tx *sql.Tx) error {
	freed, err := s.files.beforeCommit()
	if err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.files.committed(freed)
	return nil
}

// rollback rolls tx back, and forgets what it would have freed in the
// output files while it still holds the writer.
func (s *Store) rollback(tx *sql.Tx) {
	s.files.rolledBack()
	_ = tx.Rollback()
}

// runShared runs batch in one transaction, each write in a savepoint so
// that its failure undoes its changes alone, and commits once. Should the
// transaction be lost on the way (SQLite rolls all of it back when a
// write fails on I/O, a full disk or an interrupt), the writes it ran
// fail and it returns those it had not reached, for a new transaction;
// so it does, after committing those it ran, past batchTimeout.
func (s *Store) runShared(batch []*writeReq) (rest []*writeReq) {
	g := &s.group
	if g.onBatch != nil {
		g.onBatch(len(batch))
	}
	// No caller's context: one caller's cancellation must not end the
	// others' transaction. Nor a deadline (see quiet): batchTimeout is
	// checked between writes.
	ctx := quiet(batch[0].ctx)
	timeout := batchTimeout
	if g.timeout > 0 {
		timeout = g.timeout
	}
	deadline := time.Now().Add(timeout)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		for _, r := range batch {
			if r.claim() {
				r.err = s.dbErr(r.ctx, err)
			}
		}
		return nil
	}
	g.shield.set(ctx)

	var ran []*writeReq // whose fn succeeded, so far
	for i, r := range batch {
		if len(ran) > 0 && time.Now().After(deadline) {
			rest = batch[i:]
			break
		}
		if !r.claim() {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.err = err
			continue
		}
		if _, err := s.wq.exec(ctx, tx, savepointSQL); err != nil {
			// The writes that ran may still commit; the rest fail.
			for _, r := range batch[i:] {
				if r.claim() {
					r.err = s.dbErr(r.ctx, fmt.Errorf("savepoint: %w", err))
				}
			}
			break
		}
		mark := s.files.mark()
		err := r.call(tx)
		var end error
		if err == nil {
			_, end = s.wq.exec(ctx, tx, releaseSQL)
		} else if _, end = s.wq.exec(ctx, tx, rollbackToSQL); end == nil {
			s.files.undo(mark)
			_, end = s.wq.exec(ctx, tx, releaseSQL)
		}
		r.err = err
		if end != nil {
			cause := err
			if cause == nil {
				cause = end
			}
			// %v, not %w: the others must not match this write's error
			// (store.ErrFinal and such).
			lost := fmt.Errorf("sqlite store %s: the transaction this write shared was lost, all of it rolled back (%v): %w",
				s.path, cause, store.ErrUnavailable)
			for _, q := range ran {
				q.err = lost
			}
			if r.err == nil {
				r.err = lost
			}
			g.shield.set(nil)
			s.rollback(tx)
			return batch[i+1:]
		}
		if err == nil {
			ran = append(ran, r)
		}
	}
	g.shield.set(nil)
	if len(ran) == 0 {
		s.rollback(tx)
		return rest
	}
	if err := s.commit(tx); err != nil {
		for _, r := range ran {
			r.err = s.dbErr(r.ctx, err)
		}
		return rest
	}
	s.ckpt.poke()
	return rest
}

// quiet is ctx without its cancellation or deadline, for statements that
// should run to their end. It is also cheaper: for a statement whose
// context can end, the driver starts a goroutine to interrupt it, and
// database/sql one per transaction and per query to watch it (together
// 8% of the store's CPU at 1,000 sim runs a second).
func quiet(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// shield holds the context of the transaction open on the writer that
// its statements run under, if any.
type shield struct {
	p atomic.Pointer[context.Context]
}

func (sh *shield) set(ctx context.Context) {
	if ctx == nil {
		sh.p.Store(nil)
		return
	}
	sh.p.Store(&ctx)
}

// ctx is what a statement on the writer runs under: the shared
// transaction's context while one is open, else the statement's own.
func (sh *shield) ctx(ctx context.Context) context.Context {
	if p := sh.p.Load(); p != nil {
		return *p
	}
	return ctx
}

// openWriter opens the writer's pool on dsn, its connections wrapped in
// writerConn, shielded by g's shield.
func openWriter(dsn string, g *combiner) (*sql.DB, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(writerConnector{Connector: c, g: g}), nil
}

// writerConnector opens writerConns.
type writerConnector struct {
	driver.Connector
	g *combiner
}

// ctxConn is what the driver's connections implement; database/sql falls
// back to worse paths for a wrapper that hides any of it.
type ctxConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

func (c writerConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	cc, ok := conn.(ctxConn)
	if !ok {
		_ = conn.Close()
		return nil, fmt.Errorf("sqlite driver connection %T lacks the context methods the writer needs", conn)
	}
	return &writerConn{ctxConn: cc, shield: &c.g.shield, g: c.g}, nil
}

// writerConn is a connection of the writer that runs statements under the
// context of the combiner's transaction while one is open (see shield),
// rather than under the statement's own. The driver interrupts a
// statement whose context ends, and SQLite rolls the whole transaction
// back when a write statement is interrupted: one caller's cancellation
// would undo every write of its batch. database/sql still checks the
// statement's own context before it starts.
type writerConn struct {
	ctxConn
	shield *shield
	g      *combiner // for its onParse hook
}

// parsed calls the onParse hook.
func (c *writerConn) parsed(query string) {
	if f := c.g.onParse; f != nil {
		f(query)
	}
}

// Unwrap is the driver's connection (the driver's own helpers look
// through a wrapper with it).
func (c *writerConn) Unwrap() driver.Conn { return c.ctxConn }

func (c *writerConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.ctxConn.BeginTx(c.shield.ctx(ctx), opts)
}

func (c *writerConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	c.parsed(query)
	return c.ctxConn.ExecContext(c.shield.ctx(ctx), query, args)
}

func (c *writerConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	c.parsed(query)
	return c.ctxConn.QueryContext(c.shield.ctx(ctx), query, args)
}

func (c *writerConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *writerConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	c.parsed(query)
	st, err := c.ctxConn.PrepareContext(c.shield.ctx(ctx), query)
	if err != nil {
		return nil, err
	}
	cs, ok := st.(ctxStmt)
	if !ok {
		_ = st.Close()
		return nil, fmt.Errorf("sqlite driver statement %T lacks the context methods the writer needs", st)
	}
	return &writerStmt{ctxStmt: cs, shield: c.shield}, nil
}

// ctxStmt is what the driver's statements implement.
type ctxStmt interface {
	driver.Stmt
	driver.StmtExecContext
	driver.StmtQueryContext
}

// writerStmt is a prepared statement of a writerConn, run likewise.
type writerStmt struct {
	ctxStmt
	shield *shield
}

func (s *writerStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.ctxStmt.ExecContext(s.shield.ctx(ctx), args)
}

func (s *writerStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.ctxStmt.QueryContext(s.shield.ctx(ctx), args)
}

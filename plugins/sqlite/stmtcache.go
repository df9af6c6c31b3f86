package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Prepared statements. The driver parses a statement's SQL text every
// time it runs it as text (tx.ExecContext and such); a *sql.Stmt is
// parsed once per connection: tx.StmtContext finds the driver statement
// already prepared on the transaction's connection (or prepares it there
// once, and keeps it), and the transaction's copy is released with the
// transaction. Under fleet load parsing was about a third of the store's
// CPU.

// The statements of the hot paths, each prepared at Open on its pool.
const (
	runExistsSQL     = `SELECT 1 FROM runs WHERE id = ?`
	machineExistsSQL = `SELECT 1 FROM machines WHERE run_id = ? AND machine = ?`
	insertRunSQL     = `INSERT INTO runs (id, job, trigger, scheduled_for, started_at,
		finished_at, status, reason, requested_by, killed_by, killed_at, spec)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertActionSQL = `INSERT INTO run_actions (run_id, n, kind, machine, signal, grace_ns, by, at)
		VALUES (?1, (SELECT coalesce(max(n) + 1, 0) FROM run_actions WHERE run_id = ?1), ?2, ?3, ?4, ?5, ?6, ?7)`
	insertMachineSQL = `INSERT INTO machines (run_id, n, machine, status, exit_code, reason,
		signal_name, error, pid, dispatched_at, connected_at, started_at, finished_at, last_heartbeat,
		wrapper_version, protocol, late_exit_code, late_reason, output_cap)
		VALUES (?1, (SELECT coalesce(max(n) + 1, 0) FROM machines WHERE run_id = ?1),
		?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)`
	insertFireSQL = `INSERT INTO fires (job, slot, run_id, recorded_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (job, slot) DO NOTHING`
	insertNoteSQL = `INSERT INTO notifications (id, notifier, job, run_id, kind, event,
		created_at, due_at, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	// A combined write's savepoint (commit.go).
	savepointSQL  = `SAVEPOINT w`
	releaseSQL    = `RELEASE w`
	rollbackToSQL = `ROLLBACK TO w`

	getRunSQL      = "SELECT " + runCols + " FROM runs WHERE id = ?"
	lastFireSQL    = `SELECT max(slot) FROM fires WHERE job = ?`
	outputBytesSQL = `SELECT output_bytes FROM machines WHERE run_id = ? AND machine = ?`
	streamBytesSQL = `SELECT bytes FROM output_streams WHERE run_id = ? AND machine = ? AND stream = ?`
	readChunksSQL  = `SELECT end_off - size, data, file_off, size FROM output_chunks
		WHERE run_id = ? AND machine = ? AND end_off > ? ORDER BY end_off, seq`
	readStreamChunksSQL = `SELECT stream_end - size, data, file_off, size FROM output_chunks
		WHERE run_id = ? AND machine = ? AND stream = ? AND stream_end > ? ORDER BY stream_end, seq`
)

// machineSetCols are the columns UpdateMachine may set.
var machineSetCols = []string{"status", "exit_code", "reason", "signal_name", "error", "pid",
	"dispatched_at", "connected_at", "started_at", "finished_at", "last_heartbeat", "wrapper_version",
	"protocol", "late_exit_code", "late_reason"}

// updateMachineSQL is the text of an UpdateMachine that sets the columns
// of machineSetCols whose bits are set in cols, in that order, to its
// first parameters, in the machine (run_id, machine) given after them,
// and, when onlyIfNotFinal, only if that machine is not final (store.Final:
// the statuses of a machine still in flight are the IN list): one
// statement, the guard in its WHERE rather than a read before it. The
// texts are a few (a heartbeat, a bind, a start, an end), each prepared
// the first time it comes and kept (stmtCache). One text with a flag and a
// value for every column was tried: binding its 33 parameters, each under
// the connection's mutex, was a sixth of a heartbeat's CPU.
func updateMachineSQL(cols uint32, onlyIfNotFinal bool) string {
	key := cols << 1
	if onlyIfNotFinal {
		key |= 1
	}
	if q, ok := machineTexts.Load(key); ok {
		return q.(string)
	}
	var b strings.Builder
	b.WriteString("UPDATE machines SET ")
	n := 0
	for i, col := range machineSetCols {
		if cols&(1<<i) == 0 {
			continue
		}
		if n > 0 {
			b.WriteString(", ")
		}
		n++
		fmt.Fprintf(&b, "%s = ?%d", col, n)
	}
	fmt.Fprintf(&b, " WHERE run_id = ?%d AND machine = ?%d", n+1, n+2)
	if onlyIfNotFinal {
		fmt.Fprintf(&b, " AND status IN ('%s', '%s', '')", store.StatusPending, store.StatusRunning)
	}
	q, _ := machineTexts.LoadOrStore(key, b.String())
	return q.(string)
}

// machineTexts holds updateMachineSQL's texts by their columns and guard.
var machineTexts sync.Map

// machineCols is the columns named, as updateMachineSQL takes them.
func machineCols(names ...string) uint32 {
	var cols uint32
	for _, n := range names {
		if i := slices.Index(machineSetCols, n); i >= 0 {
			cols |= 1 << i
		}
	}
	return cols
}

// hotMachineSQL are the texts of the machine updates every run makes
// (the core's, by the hub and the runner), prepared at Open: preparing
// one takes the writer's one connection, so a text met first under load
// waits for a transaction to end. Any other is prepared when it comes.
var hotMachineSQL = []string{
	updateMachineSQL(machineCols("dispatched_at"), false),
	updateMachineSQL(machineCols("status", "protocol", "connected_at", "last_heartbeat", "wrapper_version"), true),
	updateMachineSQL(machineCols("started_at", "pid", "wrapper_version"), true),
	updateMachineSQL(machineCols("last_heartbeat"), true),
	updateMachineSQL(machineCols("status", "exit_code", "reason", "finished_at"), true),
	updateMachineSQL(machineCols("status", "exit_code", "reason", "signal_name", "finished_at"), true),
}

// fillMachinesSQL selects the machines of the runs in, a list of
// placeholders ("(?, ?)").
func fillMachinesSQL(in string) string {
	return "SELECT " + machCols + " FROM machines WHERE run_id IN " + in + " ORDER BY run_id, n"
}

// fillActionsSQL selects the actions of the runs in.
func fillActionsSQL(in string) string {
	return `SELECT run_id, kind, machine, signal, grace_ns, by, at FROM run_actions
		WHERE run_id IN ` + in + ` ORDER BY run_id, n`
}

// The runs of ?1, a JSON array of ids, with their machines and actions:
// one text each for any number of runs, so each is prepared at Open
// rather than parsed per call, as a list of placeholders would be.
const inJSON = "(SELECT value FROM json_each(?1))"

var (
	getRunsSQL        = "SELECT " + runCols + " FROM runs WHERE id IN " + inJSON
	fillMachinesOfSQL = fillMachinesSQL(inJSON)
	fillActionsOfSQL  = fillActionsSQL(inJSON)
	// Those of one run (GetRun), made once: fill runs for every read.
	fillMachinesOneSQL = fillMachinesSQL("(?)")
	fillActionsOneSQL  = fillActionsSQL("(?)")
)

// writeSQL and readSQL are prepared at Open on the writer and the readers.
var (
	writeSQL = append([]string{runExistsSQL, machineExistsSQL, insertRunSQL, insertActionSQL, insertMachineSQL,
		insertFireSQL, insertNoteSQL, savepointSQL, releaseSQL, rollbackToSQL}, hotMachineSQL...)
	readSQL = []string{runExistsSQL, getRunSQL, fillMachinesOneSQL, fillActionsOneSQL,
		getRunsSQL, fillMachinesOfSQL, fillActionsOfSQL, lastFireSQL,
		outputBytesSQL, streamBytesSQL, readChunksSQL, readStreamChunksSQL,
		lastRunsSQL(lastRunsEvery), lastRunsSQL(lastRunsNamed), lastRunsMachinesSQL, lastRunsCountsSQL,
		lastFiresSQL}
)

// maxStmts bounds a cache: the fixed texts prepared at Open, and the
// texts built from a call's arguments (ListRuns's filters) as they come,
// up to it; a text past it runs as text, unprepared.
const maxStmts = 256

// stmtCache holds the prepared statements of one pool (the writer's or
// the readers'), by SQL text.
type stmtCache struct {
	db *sql.DB
	mu sync.RWMutex
	m  map[string]*sql.Stmt
	// pending are the texts being prepared, closed when done, so that
	// callers racing on a new text prepare it once. (c.mu is never held
	// while preparing: the writer's connection may be in a transaction
	// that looks statements up.)
	pending map[string]chan struct{}
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, m: map[string]*sql.Stmt{}, pending: map[string]chan struct{}{}}
}

// prepare prepares q on c's pool and keeps it, unless it is kept already
// or c is full. It takes a connection of the pool: never call it while
// holding one (inside a transaction on the pool), since the writer has
// only one.
func (c *stmtCache) prepare(ctx context.Context, q string) error {
	c.mu.RLock()
	_, ok := c.m[q]
	full := len(c.m) >= maxStmts
	c.mu.RUnlock()
	if ok || full {
		return nil
	}
	c.mu.Lock()
	if _, ok := c.m[q]; ok || c.m == nil || len(c.m) >= maxStmts {
		c.mu.Unlock()
		return nil
	}
	if wait, ok := c.pending[q]; ok {
		c.mu.Unlock()
		select {
		case <-wait:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	done := make(chan struct{})
	c.pending[q] = done
	c.mu.Unlock()

	st, err := c.db.PrepareContext(ctx, q)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pending, q)
	close(done)
	if err != nil {
		return err
	}
	if c.m == nil || len(c.m) >= maxStmts {
		// Closed meanwhile, or full.
		return st.Close()
	}
	c.m[q] = st
	return nil
}

// stmt returns q's statement in tx (a transaction on c's pool), nil when
// q is not kept.
func (c *stmtCache) stmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	c.mu.RLock()
	st := c.m[q]
	c.mu.RUnlock()
	if st == nil {
		return nil
	}
	return tx.StmtContext(ctx, st)
}

// exec is tx.ExecContext, through q's prepared statement when kept.
func (c *stmtCache) exec(ctx context.Context, tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := c.stmt(ctx, tx, q); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, q, args...)
}

// query is tx.QueryContext, through q's prepared statement when kept.
func (c *stmtCache) query(ctx context.Context, tx *sql.Tx, q string, args ...any) (*sql.Rows, error) {
	if st := c.stmt(ctx, tx, q); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, q, args...)
}

// queryRow is tx.QueryRowContext, through q's prepared statement when
// kept.
func (c *stmtCache) queryRow(ctx context.Context, tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := c.stmt(ctx, tx, q); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, q, args...)
}

// close closes every kept statement; later prepares keep nothing.
func (c *stmtCache) close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.m {
		_ = st.Close()
	}
	c.m = nil
}

// prepareAll prepares each of qs in c.
func (c *stmtCache) prepareAll(ctx context.Context, qs []string) error {
	for _, q := range qs {
		if err := c.prepare(ctx, q); err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
	}
	return nil
}

// prepareFor prepares the text a read built (see maxStmts) before it
// takes a connection. Only for the readers: on the writer it would wait
// for the batch in progress, outside the queue. A failure is left for
// running the statement to report.
func (s *Store) prepareFor(ctx context.Context, c *stmtCache, q string) {
	done, err := s.begin(ctx)
	if err != nil {
		return
	}
	defer done()
	_ = c.prepare(ctx, q)
}

package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sqlite "modernc.org/sqlite"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// groupStore is a store with a table t for the tests' own writes, whose
// combiner reports each write that queues and each transaction's size.
type groupStore struct {
	*Store
	queued chan struct{}

	batchesMu sync.Mutex
	batches   []int
}

func openGroup(t *testing.T) *groupStore {
	t.Helper()
	s := openTest(t, filepath.Join(t.TempDir(), "group.db"))
	if err := s.write(context.Background(), func(tx *sql.Tx) error {
		_, err := tx.Exec(`CREATE TABLE t (k TEXT PRIMARY KEY);
			CREATE TABLE parent (id TEXT PRIMARY KEY);
			CREATE TABLE child (parent TEXT REFERENCES parent (id))`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	g := &groupStore{Store: s, queued: make(chan struct{}, 1000)}
	s.group.onQueued = func() { g.queued <- struct{}{} }
	s.group.onBatch = func(n int) {
		g.batchesMu.Lock()
		defer g.batchesMu.Unlock()
		g.batches = append(g.batches, n)
	}
	return g
}

// sizes is how many writes each transaction took, so far.
func (g *groupStore) sizes() []int {
	g.batchesMu.Lock()
	defer g.batchesMu.Unlock()
	return slices.Clone(g.batches)
}

// resetSizes forgets the transactions so far.
func (g *groupStore) resetSizes() {
	g.batchesMu.Lock()
	defer g.batchesMu.Unlock()
	g.batches = nil
}

// within waits for ch, failing the test rather than hanging.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatal("timed out")
		panic("unreachable")
	}
}

// start runs a write in a goroutine and returns where its result goes.
func (g *groupStore) start(ctx context.Context, fn func(*sql.Tx) error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- g.write(ctx, fn) }()
	return ch
}

// queue starts a write and returns once it waits in the queue, so that
// writes queued one after another arrive in that order.
func (g *groupStore) queue(t *testing.T, ctx context.Context, fn func(*sql.Tx) error) <-chan error {
	t.Helper()
	ch := g.start(ctx, fn)
	within(t, g.queued)
	return ch
}

// hold starts a write that holds the writer until release is called,
// which returns the write's result: the writes queued meanwhile form the
// next batch.
func (g *groupStore) hold(t *testing.T) (release func() error) {
	t.Helper()
	started, rel := make(chan struct{}), make(chan struct{})
	ch := g.start(context.Background(), func(*sql.Tx) error {
		close(started)
		<-rel
		return nil
	})
	within(t, started)
	var once sync.Once
	// A test that fails before releasing must not leave Close waiting.
	t.Cleanup(func() { once.Do(func() { close(rel) }) })
	return func() error {
		once.Do(func() { close(rel) })
		return within(t, ch)
	}
}

func insert(k string) func(*sql.Tx) error {
	return func(tx *sql.Tx) error {
		if _, err := tx.Exec(`INSERT INTO t (k) VALUES (?)`, k); err != nil {
			return fmt.Errorf("insert %s: %w", k, err)
		}
		return nil
	}
}

// has reports whether t has the row k, committed.
func (g *groupStore) has(t *testing.T, k string) bool {
	t.Helper()
	var n int
	if err := g.r.QueryRow(`SELECT count(*) FROM t WHERE k = ?`, k).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestGroupCommitIsolatesFailure(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	if err := g.CreateRun(ctx, store.Run{ID: "r", Job: "j", Machines: []store.Machine{
		{Machine: "live", Status: store.StatusRunning}, {Machine: "done", Status: store.StatusSucceeded}}}); err != nil {
		t.Fatal(err)
	}
	g.resetSizes()
	errB := errors.New("b refused")
	hb := time.Unix(1_700_000_000, 0).UTC()

	release := g.hold(t)
	a := g.queue(t, ctx, insert("a"))
	b := g.queue(t, ctx, func(tx *sql.Tx) error {
		if err := insert("b")(tx); err != nil {
			return err
		}
		return fmt.Errorf("after inserting: %w", errB)
	})
	update := func(machine string) <-chan error {
		ch := make(chan error, 1)
		go func() {
			ch <- g.UpdateMachine(ctx, "r", machine, store.MachineUpdate{LastHeartbeat: &hb, OnlyIfNotFinal: true})
		}()
		within(t, g.queued)
		return ch
	}
	final := update("done")
	live := update("live")
	// Reads in the transaction see the writes before them in the batch,
	// and not b's, undone.
	var seen []string
	d := g.queue(t, ctx, func(tx *sql.Tx) error {
		if err := insert("d")(tx); err != nil {
			return err
		}
		rows, err := tx.Query(`SELECT k FROM t ORDER BY k`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				return err
			}
			seen = append(seen, k)
		}
		return rows.Err()
	})
	if err := release(); err != nil {
		t.Fatal(err)
	}

	if err := within(t, a); err != nil {
		t.Errorf("a: %v", err)
	}
	if err := within(t, b); !errors.Is(err, errB) {
		t.Errorf("b: got %v, want %v", err, errB)
	}
	if err := within(t, final); !errors.Is(err, store.ErrFinal) {
		t.Errorf("update of a final machine: got %v, want %v", err, store.ErrFinal)
	}
	if err := within(t, live); err != nil {
		t.Errorf("update of a live machine: %v", err)
	}
	if err := within(t, d); err != nil {
		t.Errorf("d: %v", err)
	}
	if got, want := seen, []string{"a", "d"}; !slices.Equal(got, want) {
		t.Errorf("d read %v, want %v", got, want)
	}
	for k, want := range map[string]bool{"a": true, "b": false, "d": true} {
		if got := g.has(t, k); got != want {
			t.Errorf("row %s stored: %v, want %v", k, got, want)
		}
	}
	run, err := g.GetRun(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range run.Machines {
		if want := m.Machine == "live"; m.LastHeartbeat.Equal(hb) != want {
			t.Errorf("machine %s heartbeat %v, want set: %v", m.Machine, m.LastHeartbeat, want)
		}
	}
	if got, want := g.sizes(), []int{1, 5}; !slices.Equal(got, want) {
		t.Errorf("transaction sizes %v, want %v", got, want)
	}
}

func TestGroupCommitArrivalOrder(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	release := g.hold(t)
	var order []int // appended by the fns, which run one at a time
	var results []<-chan error
	for i := range 10 {
		results = append(results, g.queue(t, ctx, func(tx *sql.Tx) error {
			order = append(order, i)
			return insert(fmt.Sprint(i))(tx)
		}))
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		if err := within(t, ch); err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if want := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(order, want) {
		t.Errorf("fns ran in order %v, want %v", order, want)
	}
	if got, want := g.sizes(), []int{1, 10}; !slices.Equal(got, want) {
		t.Errorf("transaction sizes %v, want %v", got, want)
	}
}

func TestGroupCommitDropsCancelledWaiter(t *testing.T) {
	g := openGroup(t)
	release := g.hold(t)
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Bool
	a := g.queue(t, ctx, func(tx *sql.Tx) error {
		ran.Store(true)
		return insert("a")(tx)
	})
	b := g.queue(t, context.Background(), insert("b"))
	cancel()
	// a answers while the writer is still held: it waits for no batch.
	if err := within(t, a); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled write: got %v, want %v", err, context.Canceled)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, b); err != nil {
		t.Errorf("b: %v", err)
	}
	if ran.Load() || g.has(t, "a") {
		t.Error("the cancelled write's fn ran")
	}
	if !g.has(t, "b") {
		t.Error("b not stored")
	}
}

// skewedCtx reports an error (Err) before its Done channel closes, as a
// context does to a caller that has not yet woken to its Done.
type skewedCtx struct {
	context.Context
	err atomic.Pointer[error]
}

func (c *skewedCtx) Err() error {
	if p := c.err.Load(); p != nil {
		return *p
	}
	return nil
}

// The leader checks each write's context before it runs the write's fn,
// whether or not the caller has noticed.
func TestGroupCommitChecksContextBeforeFn(t *testing.T) {
	g := openGroup(t)
	release := g.hold(t)
	ctx := &skewedCtx{Context: context.Background()}
	var ran atomic.Bool
	// The first write queued leads the batch: its fn ends a's context.
	lead := g.queue(t, context.Background(), func(tx *sql.Tx) error {
		canceled := context.Canceled
		ctx.err.Store(&canceled)
		return insert("lead")(tx)
	})
	a := g.queue(t, ctx, func(tx *sql.Tx) error {
		ran.Store(true)
		return insert("a")(tx)
	})
	b := g.queue(t, context.Background(), insert("b"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, a); !errors.Is(err, context.Canceled) {
		t.Errorf("write whose context ended before its turn: got %v, want %v", err, context.Canceled)
	}
	if ran.Load() {
		t.Error("its fn ran")
	}
	for name, ch := range map[string]<-chan error{"lead": lead, "b": b} {
		if err := within(t, ch); err != nil || !g.has(t, name) {
			t.Errorf("%s: %v, stored %v", name, err, g.has(t, name))
		}
	}
}

// A caller whose context ends once its fn has run gets the batch's
// outcome, which is the truth about its write.
func TestGroupCommitCancelledAfterItsFnRan(t *testing.T) {
	g := openGroup(t)
	release := g.hold(t)
	// The first write queued leads the batch; a follows it.
	lead := g.queue(t, context.Background(), insert("lead"))
	ctx, cancel := context.WithCancel(context.Background())
	a := g.queue(t, ctx, func(tx *sql.Tx) error {
		if err := insert("a")(tx); err != nil {
			return err
		}
		cancel()
		return nil
	})
	b := g.queue(t, context.Background(), insert("b"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, lead); err != nil {
		t.Errorf("lead: %v", err)
	}
	if err, stored := within(t, a), g.has(t, "a"); err != nil || !stored {
		t.Errorf("write whose context ended after its fn ran: got %v, stored %v; want nil, stored", err, stored)
	}
	if err := within(t, b); err != nil || !g.has(t, "b") {
		t.Errorf("b: %v, stored %v", err, g.has(t, "b"))
	}
}

// cancelSelf, when set, runs in the SQL function test_cancel_self().
var cancelSelf atomic.Pointer[context.CancelFunc]

func init() {
	sqlite.MustRegisterScalarFunction("test_cancel_self", 0, func(*sqlite.FunctionContext, []driver.Value) (driver.Value, error) {
		if f := cancelSelf.Load(); f != nil {
			(*f)()
			// Lets the driver's watcher of the context run, which then
			// interrupts the statement within 1000 steps unless shielded.
			for range 100 {
				runtime.Gosched()
			}
		}
		return int64(1), nil
	})
}

// A caller's context ending while its statement runs must not interrupt
// the statement: SQLite would roll back the whole shared transaction, the
// writes of the batch before it with it.
func TestGroupCommitStatementOutlivesItsContext(t *testing.T) {
	g := openGroup(t)
	release := g.hold(t)
	b := g.queue(t, context.Background(), insert("b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancelSelf.Store(&cancel)
	t.Cleanup(func() { cancelSelf.Store(nil) })
	// Cancels its own context at its first row, then goes on for long
	// enough (many times 1000 steps) that the driver's interrupt would
	// land.
	a := g.queue(t, ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO t (k) SELECT 'a' || count(*) FROM (
			WITH RECURSIVE c(i) AS (SELECT test_cancel_self() UNION ALL SELECT i + 1 FROM c WHERE i < 10000)
			SELECT i FROM c)`)
		return err
	})
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, b); err != nil || !g.has(t, "b") {
		t.Errorf("b, before the cancelled statement in the batch: %v, stored %v; want nil, stored", err, g.has(t, "b"))
	}
	if err, stored := within(t, a), g.has(t, "a10000"); err != nil || !stored {
		t.Errorf("cancelled statement's write: %v, stored %v; want nil, stored", err, stored)
	}
}

// A shared transaction past its time commits the writes it ran and
// leaves the rest to the next: none fails.
func TestGroupCommitTimeout(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	g.group.timeout = time.Nanosecond
	release := g.hold(t)
	var results []<-chan error
	for i := range 3 {
		results = append(results, g.queue(t, ctx, insert(fmt.Sprint(i))))
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		if err := within(t, ch); err != nil || !g.has(t, fmt.Sprint(i)) {
			t.Errorf("write %d: %v, stored %v; want nil, stored", i, err, g.has(t, fmt.Sprint(i)))
		}
	}
	// Each transaction took one write before its time was up.
	if got, want := g.sizes(), []int{1, 3, 2, 1}; !slices.Equal(got, want) {
		t.Errorf("transaction sizes %v, want %v", got, want)
	}
}

// A transaction lost on the way fails the writes it had run, with
// store.ErrUnavailable, and runs the rest in a new one.
func TestGroupCommitLostTransaction(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	release := g.hold(t)
	a := g.queue(t, ctx, insert("a"))
	// What SQLite does on an I/O error, a full disk or an interrupt.
	lose := g.queue(t, ctx, func(tx *sql.Tx) error {
		_, err := tx.Exec(`ROLLBACK`)
		return err
	})
	c := g.queue(t, ctx, insert("c"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan error{"a": a, "lose": lose} {
		if err := within(t, ch); !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: got %v, want %v", name, err, store.ErrUnavailable)
		}
	}
	if err := within(t, c); err != nil {
		t.Errorf("c: %v", err)
	}
	for k, want := range map[string]bool{"a": false, "c": true} {
		if got := g.has(t, k); got != want {
			t.Errorf("row %s stored: %v, want %v", k, got, want)
		}
	}
	if got, want := g.sizes(), []int{1, 3, 1}; !slices.Equal(got, want) {
		t.Errorf("transaction sizes %v, want %v", got, want)
	}
}

func TestGroupCommitFailedCommitFailsAll(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	release := g.hold(t)
	a := g.queue(t, ctx, insert("a"))
	// A foreign key checked at COMMIT only, which then fails.
	orphan := g.queue(t, ctx, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`PRAGMA defer_foreign_keys = ON`); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO child (parent) VALUES ('none')`)
		return err
	})
	c := g.queue(t, ctx, insert("c"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan error{"a": a, "orphan": orphan, "c": c} {
		err := within(t, ch)
		if err == nil {
			t.Errorf("%s: got nil, want the commit's failure", name)
			continue
		}
		if want := "sqlite store " + g.Path(); !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want it to name %q", name, err, want)
		}
	}
	if g.has(t, "a") || g.has(t, "c") {
		t.Error("a write of the failed commit is stored")
	}
	// The connection is left out of any transaction.
	if err := g.write(ctx, insert("after")); err != nil || !g.has(t, "after") {
		t.Errorf("write after the failed commit: %v", err)
	}
}

func TestGroupCommitCloseAnswersWaiters(t *testing.T) {
	g := openGroup(t)
	release := g.hold(t)
	var results []<-chan error
	for i := range 5 {
		results = append(results, g.queue(t, context.Background(), insert(fmt.Sprint(i))))
	}
	closed := make(chan error, 1)
	go func() { closed <- g.Close() }()
	// Close waits for the calls in progress, and new ones wait for it.
	for g.mu.TryRLock() {
		g.mu.RUnlock()
		select {
		case err := <-closed:
			t.Fatalf("Close returned (%v) with writes queued", err)
		default:
			runtime.Gosched()
		}
	}
	// A window for a Close that does not wait for the queued writes to
	// show it; nothing waits on it to pass.
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) with writes queued", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		if err := within(t, ch); err != nil {
			t.Errorf("write %d: %v", i, err)
		}
	}
	if err := within(t, closed); err != nil {
		t.Fatal(err)
	}
	if err := g.write(context.Background(), insert("late")); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("write after Close: got %v, want %v", err, store.ErrUnavailable)
	}
	s := openTest(t, g.Path())
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("%d rows stored, want 5", n)
	}
}

// A fn's panic reaches its own caller, whichever goroutine ran it, and the
// writes around it go on.
func TestGroupCommitPanicReachesCaller(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	release := g.hold(t)
	lead := g.queue(t, ctx, insert("lead"))
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		_ = g.write(ctx, func(tx *sql.Tx) error {
			if err := insert("p")(tx); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	within(t, g.queued)
	b := g.queue(t, ctx, insert("b"))
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if v := within(t, panicked); v == nil || !strings.Contains(fmt.Sprint(v), "boom") {
		t.Errorf("caller of the panicking fn recovered %v, want the panic", v)
	}
	for name, ch := range map[string]<-chan error{"lead": lead, "b": b} {
		if err := within(t, ch); err != nil || !g.has(t, name) {
			t.Errorf("%s: %v, stored %v", name, err, g.has(t, name))
		}
	}
	if g.has(t, "p") {
		t.Error("the panicking fn's write is stored")
	}
	if err := g.write(ctx, insert("after")); err != nil {
		t.Errorf("write after the panic: %v", err)
	}
}

// Under concurrent writes, some of them cancelled at any point, what each
// caller is told is the truth: nil exactly when its write is stored.
func TestGroupCommitConcurrentTruth(t *testing.T) {
	g := openGroup(t)
	g.group.onQueued = nil
	const writers, each = 32, 30
	type outcome struct {
		k         string
		cancelled bool
		err       error
	}
	out := make(chan outcome, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := fmt.Sprintf("%d-%d", w, i)
				ctx, cancel := context.WithCancel(context.Background())
				switch i % 3 {
				case 1: // ends while it waits, or runs, or not at all
					go func() {
						for range i {
							runtime.Gosched()
						}
						cancel()
					}()
				case 2: // ends inside its own fn
					ctx = context.WithValue(ctx, cancelKey{}, cancel)
				}
				err := g.write(ctx, func(tx *sql.Tx) error {
					if err := insert(k)(tx); err != nil {
						return err
					}
					if c, ok := ctx.Value(cancelKey{}).(context.CancelFunc); ok {
						c()
					}
					return nil
				})
				cancel()
				out <- outcome{k, i%3 != 0, err}
			}
		})
	}
	wg.Wait()
	close(out)
	stored := 0
	for o := range out {
		has := g.has(t, o.k)
		if (o.err == nil) != has {
			t.Errorf("write %s: returned %v, stored %v", o.k, o.err, has)
		}
		// A cancelled one may fail with the context's error or, alone
		// in its transaction, which database/sql then rolls back, with
		// sql.ErrTxDone.
		if o.err != nil && !o.cancelled {
			t.Errorf("write %s, not cancelled: %v", o.k, o.err)
		}
		if has {
			stored++
		}
	}
	t.Logf("%d of %d writes stored, in transactions of %v writes", stored, writers*each, g.sizes()[:min(len(g.sizes()), 20)])
}

type cancelKey struct{}

// A batch's writes share transactions as far as the bounds allow, each
// answered for itself, whether the writer was idle or busy.
func TestWriteAllSharesTransactions(t *testing.T) {
	ctx := context.Background()
	fail := errors.New("refused")
	fns := func(prefix string, n, failAt int) []func(*sql.Tx) error {
		out := make([]func(*sql.Tx) error, n)
		for i := range out {
			k := fmt.Sprintf("%s%03d", prefix, i)
			out[i] = insert(k)
			if i == failAt {
				out[i] = func(tx *sql.Tx) error {
					if err := insert(k)(tx); err != nil {
						return err
					}
					return fail
				}
			}
		}
		return out
	}
	check := func(t *testing.T, g *groupStore, prefix string, errs []error, n, failAt int) {
		t.Helper()
		if len(errs) != n {
			t.Fatalf("%d answers for %d writes", len(errs), n)
		}
		for i, err := range errs {
			k := fmt.Sprintf("%s%03d", prefix, i)
			switch {
			case i == failAt && !errors.Is(err, fail):
				t.Errorf("write %d: got %v, want %v", i, err, fail)
			case i != failAt && err != nil:
				t.Errorf("write %d: %v", i, err)
			case g.has(t, k) != (i != failAt):
				t.Errorf("row %s stored: %t, want %t", k, g.has(t, k), i != failAt)
			}
		}
	}
	for _, tc := range []struct {
		name      string
		n, failAt int
		busy      bool
		want      []int
	}{
		{"idle", 10, 4, false, []int{10}},
		{"behind a busy writer", 10, 0, true, []int{10}},
		{"past a transaction's bound", maxBatch + 44, maxBatch + 1, false, []int{maxBatch, 44}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := openGroup(t)
			var release func() error
			if tc.busy {
				release = g.hold(t)
			}
			g.resetSizes()
			ch := make(chan []error, 1)
			go func() { ch <- g.writeAll(ctx, fns("k", tc.n, tc.failAt)) }()
			if tc.busy {
				within(t, g.queued)
				if err := release(); err != nil {
					t.Fatal(err)
				}
			}
			errs := within(t, ch)
			check(t, g, "k", errs, tc.n, tc.failAt)
			// The holding write's transaction was counted before the
			// reset, as it began.
			if sizes := g.sizes(); !slices.Equal(sizes, tc.want) {
				t.Errorf("transactions took %v writes, want %v", sizes, tc.want)
			}
		})
	}
}

// A cancelled batch waiting behind a busy writer is dropped whole, and the
// writer goes on with what queued after it.
func TestWriteAllCancelled(t *testing.T) {
	g := openGroup(t)
	release := g.hold(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan []error, 1)
	go func() { ch <- g.writeAll(ctx, []func(*sql.Tx) error{insert("a"), insert("b")}) }()
	within(t, g.queued)
	after := g.queue(t, context.Background(), insert("c"))
	cancel()
	for i, err := range within(t, ch) {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("write %d: got %v, want %v", i, err, context.Canceled)
		}
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if err := within(t, after); err != nil {
		t.Fatalf("the write queued after the cancelled batch: %v", err)
	}
	if g.has(t, "a") || g.has(t, "b") || !g.has(t, "c") {
		t.Errorf("rows a, b, c stored: %t %t %t; want only c", g.has(t, "a"), g.has(t, "b"), g.has(t, "c"))
	}
}

// UpdateMachines answers each change as UpdateMachine would, in one
// transaction, a machine's changes applied in their order.
func TestUpdateMachinesBatch(t *testing.T) {
	ctx := context.Background()
	g := openGroup(t)
	if err := g.CreateRun(ctx, store.Run{ID: "r", Job: "j", Machines: []store.Machine{
		{Machine: "a", Status: store.StatusPending}, {Machine: "done", Status: store.StatusSucceeded}}}); err != nil {
		t.Fatal(err)
	}
	g.resetSizes()
	str := func(s string) *string { return &s }
	errs := g.UpdateMachines(ctx, []store.MachineChange{
		{RunID: "r", Machine: "a", Update: store.MachineUpdate{Status: str(store.StatusRunning)}},
		{RunID: "r", Machine: "done", Update: store.MachineUpdate{Status: str(store.StatusRunning), OnlyIfNotFinal: true}},
		{RunID: "r", Machine: "nobody", Update: store.MachineUpdate{Status: str(store.StatusRunning)}},
		{RunID: "r", Machine: "a", Update: store.MachineUpdate{Status: str(store.StatusFailed), OnlyIfNotFinal: true}},
		{RunID: "r", Machine: "a", Update: store.MachineUpdate{Status: str(store.StatusSucceeded), OnlyIfNotFinal: true}},
	})
	for i, want := range []error{nil, store.ErrFinal, store.ErrNotFound, nil, store.ErrFinal} {
		if got := errs[i]; (want == nil) != (got == nil) || (want != nil && !errors.Is(got, want)) {
			t.Errorf("change %d: got %v, want %v", i, got, want)
		}
	}
	if sizes := g.sizes(); !slices.Equal(sizes, []int{5}) {
		t.Errorf("transactions took %v writes, want [5]", sizes)
	}
	run, err := g.GetRun(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range run.Machines {
		if want := map[string]string{"a": store.StatusFailed, "done": store.StatusSucceeded}[m.Machine]; m.Status != want {
			t.Errorf("machine %s is %s, want %s", m.Machine, m.Status, want)
		}
	}
}

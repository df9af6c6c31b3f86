package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// ckptStore opens a store at a fresh path with the checkpointer tuned by
// cfg, its passes sent to the returned channel (which never blocks the
// checkpointer: the test fails if it fills) and its log to the returned
// buffer. A run "r" with machine "m" takes output.
func ckptStore(t *testing.T, sync string, cfg checkpointConfig) (*Store, <-chan ckptPass, *lockedBuffer) {
	t.Helper()
	passes := make(chan ckptPass, 10000)
	hook := cfg.onPass
	cfg.onPass = func(p ckptPass) {
		if hook != nil {
			hook(p)
		}
		select {
		case passes <- p:
		default:
			t.Error("checkpoint passes not read")
		}
	}
	logs := &lockedBuffer{}
	s, err := Open(context.Background(), Options{
		Path:        filepath.Join(t.TempDir(), "ckpt.db"),
		Synchronous: sync,
		Logger:      hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
		checkpoint:  cfg,
		// Output in the database: its chunks are what these tests grow
		// the WAL with.
		fileChunkMin: 1 << 30,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.CreateRun(context.Background(), store.Run{ID: "r", Job: "j", Machines: []store.Machine{{Machine: "m"}}}); err != nil {
		t.Fatal(err)
	}
	return s, passes, logs
}

// lockedBuffer is a log output the test reads while the checkpointer
// writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// appender appends output chunks of size bytes to s's run "r", one
// commit each, from seq 0 on.
type appender struct {
	t    *testing.T
	s    *Store
	seq  int64
	data []byte
}

func newAppender(t *testing.T, s *Store, size int) *appender {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	return &appender{t: t, s: s, data: data}
}

// append commits n chunks.
func (a *appender) append(n int) {
	a.t.Helper()
	for range n {
		if _, err := a.s.AppendOutput(context.Background(), "r", "m", store.Chunk{Seq: a.seq, Stream: "stdout", Data: a.data}); err != nil {
			a.t.Fatalf("append chunk %d: %v", a.seq, err)
		}
		a.seq++
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// walFrames is how many frames of the store's page size a -wal file of
// size bytes holds.
func walFrames(size int64) int64 {
	if size < walHeaderSize {
		return 0
	}
	return (size - walHeaderSize) / (walFrameHeaderSize + pageSize)
}

// TestWriterDoesNotCheckpoint: commits alone never checkpoint the WAL,
// however long it gets (SQLite's own automatic checkpoint would, inside
// the commit that passes 1000 pages); the checkpointer does, from its own
// connection.
func TestWriterDoesNotCheckpoint(t *testing.T) {
	for _, sync := range []string{SyncNormal, SyncFull} {
		t.Run(sync, func(t *testing.T) {
			gate := make(chan struct{})
			s, passes, _ := ckptStore(t, sync, checkpointConfig{gate: gate})
			dbBefore := fileSize(t, s.path)

			// 64 chunks of 16 KiB a commit, some 75 pages: well past
			// 1000 pages of WAL, short of the 64 MiB bound.
			a := newAppender(t, s, 16<<10)
			for range 40 {
				batch := make([]Append, 64)
				for i := range batch {
					batch[i] = Append{RunID: "r", Machine: "m", Chunk: store.Chunk{Seq: a.seq, Stream: "stdout", Data: a.data}}
					a.seq++
				}
				if _, err := s.AppendBatch(context.Background(), batch); err != nil {
					t.Fatal(err)
				}
			}
			wal := fileSize(t, s.path+"-wal")
			if got := fileSize(t, s.path); got != dbBefore {
				t.Errorf("database file %d -> %d bytes with the checkpointer held off: a commit checkpointed", dbBefore, got)
			}
			if walFrames(wal) < 2*defaultCkptFrames {
				t.Errorf("-wal file has %d frames, want over %d: reset by a commit's checkpoint", walFrames(wal), 2*defaultCkptFrames)
			}
			select {
			case p := <-passes:
				t.Fatalf("a checkpoint ran while the checkpointer was held off: %+v", p)
			default:
			}
			if t.Failed() {
				t.FailNow()
			}

			// Let go, it copies the whole WAL into the file, without a
			// commit to poke it (it looks when it starts).
			close(gate)
			for {
				p := within(t, passes)
				if p.err != nil || p.mode != "PASSIVE" {
					t.Fatalf("checkpoint %+v, want PASSIVE ones", p)
				}
				if p.checkpointed == p.log && p.log >= walFrames(wal) {
					break
				}
			}
			if got := fileSize(t, s.path); got <= dbBefore {
				t.Errorf("database file %d -> %d bytes after the checkpointer ran: want it to hold the WAL's pages", dbBefore, got)
			}
			// All copied and no reader: the next commit starts the WAL
			// over, at its beginning.
			a.append(1)
			if got := fileSize(t, s.path+"-wal"); got != wal {
				t.Errorf("-wal file %d -> %d bytes: want it written again from its start", wal, got)
			}
			idx, ok := s.ckpt.index()
			if !ok || int64(idx.mxFrame) >= walFrames(wal)/4 {
				t.Errorf("wal-index %+v (read: %v) after one more commit: want the WAL started over", idx, ok)
			}
		})
	}
}

// checkpointerRunning reports whether a checkpointer's goroutine runs,
// from every goroutine's stack.
func checkpointerRunning() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			// Its creator, not run: a goroutine not yet scheduled shows
			// no frame of run.
			return bytes.Contains(buf[:n], []byte("created by github.com/saltpeter/saltpeter/plugins/sqlite.startCheckpointer"))
		}
		buf = make([]byte, 2*len(buf))
	}
}

// TestCloseStopsCheckpointer: Close ends the checkpointer's goroutine,
// and waits for it, whatever it was doing, before the writer's final
// checkpoint (which deletes the -wal file).
func TestCloseStopsCheckpointer(t *testing.T) {
	cases := []struct {
		name string
		// gated: the goroutine waits for a gate that never opens;
		// inPass: Close comes while a checkpoint's hook blocks.
		gated, inPass bool
	}{
		{"idle", false, false},
		{"held off", true, false},
		{"in a checkpoint", false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if checkpointerRunning() {
				t.Fatal("a checkpointer of another test still runs")
			}
			var cfg checkpointConfig
			if c.gated {
				cfg.gate = make(chan struct{})
			}
			entered, release := make(chan struct{}), make(chan struct{})
			var once sync.Once
			if c.inPass {
				cfg.frames = 8
				cfg.onPass = func(ckptPass) {
					once.Do(func() {
						close(entered)
						<-release
					})
				}
			}
			s, _, logs := ckptStore(t, "", cfg)
			// Before the store's Close, should the test fail first.
			var releaseOnce sync.Once
			letGo := func() { releaseOnce.Do(func() { close(release) }) }
			t.Cleanup(letGo)
			newAppender(t, s, 16<<10).append(10)
			if !checkpointerRunning() {
				t.Fatal("no checkpointer runs")
			}
			if c.inPass {
				within(t, entered)
			}

			done := make(chan error, 1)
			go func() { done <- s.Close() }()
			if c.inPass {
				// Close must wait for the checkpoint to return: it must
				// not return in the meantime (the bound only keeps the
				// test short).
				select {
				case err := <-done:
					t.Fatalf("Close returned (%v) while a checkpoint ran", err)
				case <-time.After(100 * time.Millisecond):
				}
				letGo()
			}
			if err := within(t, done); err != nil {
				t.Fatal(err)
			}
			if checkpointerRunning() {
				t.Error("the checkpointer's goroutine outlived Close")
			}
			if n := fileSize(t, s.path+"-wal"); n != 0 {
				t.Errorf("-wal file of %d bytes after Close: no final checkpoint", n)
			}
			// A checkpoint that Close interrupts is no error.
			if strings.Contains(logs.String(), "[ERROR]") {
				t.Errorf("errors logged:\n%s", logs)
			}
		})
	}
}

// TestWALBoundedWithLongReader: a reader holding an old snapshot keeps
// the WAL from being checkpointed, so it grows past its bound, while
// writes go on (the checkpointer holds them up at most once for a
// RESTART or TRUNCATE the reader makes fail); once the reader is done,
// the WAL is emptied, and continuous writes no longer let it grow.
func TestWALBoundedWithLongReader(t *testing.T) {
	const bound = 2 << 20
	cases := []struct {
		name string
		// hold starts a reader on s and returns its end.
		hold func(t *testing.T, s *Store) (release func() error)
	}{
		{"read transaction", func(t *testing.T, s *Store) func() error {
			tx, err := s.r.BeginTx(context.Background(), &sql.TxOptions{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRow("SELECT count(*) FROM output_chunks").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return tx.Rollback
		}},
		{"rows left open", func(t *testing.T, s *Store) func() error {
			rows, err := s.r.Query("SELECT seq FROM output_chunks")
			if err != nil {
				t.Fatal(err)
			}
			if !rows.Next() {
				t.Fatalf("no chunk to read: %v", rows.Err())
			}
			return rows.Close
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, passes, logs := ckptStore(t, SyncFull, checkpointConfig{
				frames:   32,
				maxWAL:   bound,
				minRetry: time.Millisecond,
				maxRetry: 5 * time.Millisecond,
			})
			a := newAppender(t, s, 16<<10)
			a.append(10)
			lastLog := int64(-1) // the WAL's frames at the last pass seen
			for len(passes) > 0 {
				lastLog = (<-passes).log
			}
			release := c.hold(t, s)
			t.Cleanup(func() { _ = release() })

			// Until the checkpointer said it is held back, a chunk (about
			// ten pages of WAL) at a time.
			escalations := 0
			for !strings.Contains(logs.String(), "a reader keeps the WAL from being checkpointed") {
				if a.seq > 8*bound/(160<<10) {
					t.Fatalf("no warning of the reader after %d chunks, the -wal file at %d bytes:\n%s", a.seq, fileSize(t, s.path+"-wal"), logs)
				}
				a.append(1)
				for len(passes) > 0 {
					p := <-passes
					if p.mode != "PASSIVE" {
						escalations++
						// A reader that began when the whole WAL was in
						// the database reads the database alone (SQLite's
						// read mark 0), and a RESTART that finds no frame
						// written since the pass before has nothing it
						// pins: it restarts the WAL without waiting. Any
						// other must have found the reader in its way.
						if !p.busy && p.log != lastLog {
							t.Errorf("%+v while a reader held the WAL (%d frames at the pass before)", p, lastLog)
						}
					}
					lastLog = p.log
				}
			}
			held := fileSize(t, s.path+"-wal")
			if held <= bound {
				t.Errorf("-wal file of %d bytes with a reader holding an old snapshot: want it past %d", held, bound)
			}
			// One escalation finds the reader; a second may come before a
			// PASSIVE checkpoint has shown that the reader still pins the
			// frames it found (a RESTART waits for readers on the WAL's
			// latest frames too, which PASSIVE copies past). More would be
			// writes held up in vain again and again.
			if escalations > 2 {
				t.Errorf("%d RESTART or TRUNCATE checkpoints while a reader held the WAL: writes held up in vain", escalations)
			}
			if err := release(); err != nil {
				t.Fatal(err)
			}

			// The next commits get the WAL emptied.
			for emptied := false; !emptied; {
				if a.seq > 2000 {
					t.Fatalf("the WAL was not emptied after the reader left: %d bytes", fileSize(t, s.path+"-wal"))
				}
				a.append(1)
				for len(passes) > 0 {
					p := <-passes
					if p.err != nil {
						t.Fatalf("checkpoint failed: %v", p.err)
					}
					emptied = emptied || (p.mode == "TRUNCATE" && !p.busy)
				}
			}
			// And it stays bounded: 16 times the bound written, with no
			// reader. How far past the bound it gets depends on how many
			// frames the writer adds while checkpoints catch up.
			largest := int64(0)
			for range 16 * bound / (160 << 10) {
				a.append(1)
				largest = max(largest, fileSize(t, s.path+"-wal"))
			}
			t.Logf("-wal file: %d bytes with the reader, at most %d after", held, largest)
			if largest > 4*bound {
				t.Errorf("-wal file reached %d bytes after the reader left: want it within about %d\n%s", largest, bound, logs)
			}
			checkContiguousOutput(t, s, a)
		})
	}
}

// checkContiguousOutput checks that a's chunks are all stored.
func checkContiguousOutput(t *testing.T, s *Store, a *appender) {
	t.Helper()
	r, err := s.GetRun(context.Background(), "r")
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Machines[0]; m.NextSeq != a.seq || m.OutputBytes != a.seq*int64(len(a.data)) {
		t.Errorf("machine has next seq %d and %d bytes, want %d and %d", m.NextSeq, m.OutputBytes, a.seq, a.seq*int64(len(a.data)))
	}
}

// TestCheckpointerBlind: without the wal-index, the checkpointer says so
// and checkpoints on a timer.
func TestCheckpointerBlind(t *testing.T) {
	s, passes, logs := ckptStore(t, "", checkpointConfig{
		shmPath:    filepath.Join(t.TempDir(), "missing-shm"),
		blindEvery: 10 * time.Millisecond,
	})
	a := newAppender(t, s, 16<<10)
	a.append(20)
	for {
		p := within(t, passes)
		if p.err != nil {
			t.Fatal(p.err)
		}
		if p.mode == "PASSIVE" && p.log > 0 && p.checkpointed == p.log {
			break
		}
	}
	if !strings.Contains(logs.String(), "cannot read the WAL index") {
		t.Errorf("no warning of the missing wal-index in the log:\n%s", logs)
	}
}

// TestCommitsPokeCheckpointer: every commit, of a write alone or of a
// shared transaction, tells the checkpointer to look at the WAL. The
// checkpointer is held off, so that the token stays for the test to see.
func TestCommitsPokeCheckpointer(t *testing.T) {
	cases := []struct {
		name   string
		writes int // in one transaction
	}{
		{"alone", 1},
		{"shared", 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, _ := ckptStore(t, "", checkpointConfig{gate: make(chan struct{})})
			ctx := context.Background()
			drain := func() {
				select {
				case <-s.ckpt.kick:
				default:
				}
			}
			queued := make(chan struct{}, c.writes)
			s.group.onQueued = func() { queued <- struct{}{} }
			s.group.onBatch = func(n int) {
				if n == c.writes {
					drain() // what the commits before this one left
				}
			}
			// A write that holds the writer while the others queue
			// behind it, to share the next transaction.
			started, release := make(chan struct{}), make(chan struct{})
			holding := make(chan error, 1)
			go func() {
				holding <- s.write(ctx, func(*sql.Tx) error {
					close(started)
					<-release
					return nil
				})
			}()
			within(t, started)
			results := make(chan error, c.writes)
			for i := range c.writes {
				go func() {
					_, err := s.AppendOutput(ctx, "r", "m", store.Chunk{Seq: int64(i), Stream: "stdout", Data: []byte("x")})
					results <- err
				}()
				within(t, queued)
			}
			close(release)
			if err := within(t, holding); err != nil {
				t.Fatal(err)
			}
			for range c.writes {
				// Chunks queued out of order may be refused as such;
				// committed all the same.
				if err := within(t, results); err != nil && !errors.Is(err, store.ErrOutOfOrder) {
					t.Fatal(err)
				}
			}
			if len(s.ckpt.kick) != 1 {
				t.Errorf("no token for the checkpointer after a commit of %d writes", c.writes)
			}
		})
	}
}

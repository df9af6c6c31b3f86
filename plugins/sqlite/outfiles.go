package sqlite

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Output files. A chunk of at least fileChunkMin bytes is kept in a file of
// its run, beside the database, and its row in output_chunks says where
// (file_off); smaller ones stay in the row. In the database a large chunk
// costs its bytes twice over in page writes (the WAL, then the checkpoint
// into the file) with a checksum per page, which made SQLite's writes 5 ms
// of CPU per MiB; in a file it is one write. A small chunk stays where its
// row is written anyway, and a run with little output makes no file.
const (
	fileChunkMin = 16 << 10
	// maxOpenFiles bounds the writer's open run files; past it they are
	// all closed and opened again as needed.
	maxOpenFiles = 64
)

// outputFiles owns the directory of output files: the writer's handles,
// what a transaction freed in them (holes the cap dropped, files of pruned
// runs) and the goroutine that frees it once committed.
//
// A run's file only grows while the run has rows: a chunk goes at the
// file's end, whatever the file holds there (bytes of a transaction that
// rolled back, or of one lost to a crash, are never named by a row). The
// bytes a committed row names never change until a later committed
// transaction frees them.
type outputFiles struct {
	dir  string
	sync bool // fdatasync written files before each commit (SyncFull)
	min  int  // the smallest chunk kept in a file
	log  hclog.Logger

	// gate keeps freeing from running while a reader may still hold a
	// snapshot that names the bytes: ReadOutput holds it for reading from
	// before its transaction to its last file read, the reclaimer for
	// writing.
	gate sync.RWMutex

	mu      sync.Mutex
	open    map[string]*runFile // the writer's, by run id
	pending []reclaim           // what the open transaction frees
	queue   []reclaim           // committed, for the reclaimer
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

type runFile struct {
	f     *os.File
	end   int64 // where the next chunk goes
	dirty bool  // written since the last sync
	// Where the file's writeback was started up to, and what was
	// dropped from the page cache (see shed).
	flushed, dropped int64
}

// Page cache of output files. Output is written once and seldom read, but
// every byte of it stays cached after its writeback, so a store taking a
// job's gigabytes grows the page cache by as much, from memory nothing
// used lately (on a VM that gives free pages back to its host, a host
// fault a page), and pushes out pages that are read: the database's. A
// file's writeback is started every shedStep bytes, and what is shedLag
// behind it (written back by then, as a rule) is dropped from the cache,
// so a long output reuses the pages it freed. Shorter outputs are left as
// they are.
const (
	shedStep = 4 << 20
	shedLag  = 16 << 20
)

// shed starts the writeback of what rf got since the last, and drops what
// is shedLag behind it, once there is a step's worth of each. Errors are
// ignored: the bytes are written either way, and stay cached.
func (rf *runFile) shed() {
	if rf.end-rf.flushed < shedStep {
		return
	}
	startWriteback(rf.f, rf.flushed, rf.end-rf.flushed)
	rf.flushed = rf.end
	if upto := rf.flushed - shedLag; upto-rf.dropped >= shedStep {
		dropCached(rf.f, rf.dropped, upto-rf.dropped)
		rf.dropped = upto
	}
}

// reclaim is space to free: a hole of n bytes at off in a run's file, or
// with n == 0 the whole file.
type reclaim struct {
	runID  string
	off, n int64
}

func newOutputFiles(dbPath string, syncFiles bool, min int, log hclog.Logger) (*outputFiles, error) {
	o := &outputFiles{
		dir:  dbPath + ".output",
		sync: syncFiles,
		min:  min,
		log:  log,
		open: make(map[string]*runFile),
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	// The owner's alone, as the database is: output can hold secrets.
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return nil, fmt.Errorf("output files: %w", err)
	}
	go o.reclaimer()
	return o, nil
}

// fileName is runID's file: the id itself when it is a plain name (the
// core's ids are), else "=" and its hex, so that no id reaches outside
// the directory and no two share a name ("=" is in no plain name).
func fileName(runID string) string {
	plain := runID != "" && len(runID) <= 128
	for _, r := range runID {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_') {
			plain = false
			break
		}
	}
	if plain {
		return runID + ".out"
	}
	return "=" + hex.EncodeToString([]byte(runID)) + ".out"
}

// runIDOf inverts fileName; ok is false for a name fileName never gives.
func runIDOf(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, ".out")
	if !ok || base == "" {
		return "", false
	}
	if fileName(base) == name {
		return base, true
	}
	if rest, ok := strings.CutPrefix(base, "="); ok {
		if b, err := hex.DecodeString(rest); err == nil && fileName(string(b)) == name {
			return string(b), true
		}
	}
	return "", false
}

func (o *outputFiles) path(runID string) string {
	return filepath.Join(o.dir, fileName(runID))
}

// write appends data to runID's file and returns its offset there. Only
// the writer calls it, inside a transaction.
func (o *outputFiles) write(runID string, data []byte) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rf := o.open[runID]
	if rf == nil {
		if len(o.open) >= maxOpenFiles {
			if err := o.closeAll(); err != nil {
				return 0, err
			}
		}
		f, err := os.OpenFile(o.path(runID), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return 0, fmt.Errorf("open output file: %w: %w", err, store.ErrUnavailable)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return 0, fmt.Errorf("open output file: %w: %w", err, store.ErrUnavailable)
		}
		rf = &runFile{f: f, end: fi.Size()}
		o.open[runID] = rf
	}
	off := rf.end
	if _, err := rf.f.WriteAt(data, off); err != nil {
		// As SQLite's own I/O errors and full disk: the write fails,
		// retryable, and nothing names the bytes.
		return 0, fmt.Errorf("write output file %s: %w: %w", rf.f.Name(), err, store.ErrUnavailable)
	}
	rf.end += int64(len(data))
	rf.dirty = o.sync
	rf.shed()
	return off, nil
}

// closeAll closes the writer's files, syncing those written since their
// last sync first. o.mu is held.
func (o *outputFiles) closeAll() error {
	var errs []error
	for id, rf := range o.open {
		if rf.dirty {
			errs = append(errs, rf.f.Sync())
		}
		errs = append(errs, rf.f.Close())
		delete(o.open, id)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close output files: %w", err)
	}
	return nil
}

// free records that the open transaction frees r; it is freed once the
// transaction commits.
func (o *outputFiles) free(r reclaim) {
	o.mu.Lock()
	o.pending = append(o.pending, r)
	o.mu.Unlock()
}

// mark and undo bracket a savepoint: undo forgets what was freed since
// mark, when the savepoint is rolled back.
func (o *outputFiles) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending)
}

func (o *outputFiles) undo(mark int) {
	o.mu.Lock()
	o.pending = o.pending[:mark]
	o.mu.Unlock()
}

// beforeCommit makes the files' bytes durable first under SyncFull, so
// that a committed row never names bytes a power cut can lose, and takes
// what the transaction frees. Both happen while the writer still holds
// the transaction, before another can add its own.
func (o *outputFiles) beforeCommit() ([]reclaim, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	freed := o.pending
	o.pending = nil
	if !o.sync {
		return freed, nil // nothing is dirty: write marks files only under SyncFull
	}
	for _, rf := range o.open {
		if rf.dirty {
			if err := rf.f.Sync(); err != nil {
				return nil, fmt.Errorf("sync output file %s: %w: %w", rf.f.Name(), err, store.ErrUnavailable)
			}
			rf.dirty = false
		}
	}
	return freed, nil
}

// rolledBack forgets what the transaction would have freed.
func (o *outputFiles) rolledBack() {
	o.mu.Lock()
	o.pending = nil
	o.mu.Unlock()
}

// committed hands what a committed transaction freed to the reclaimer.
func (o *outputFiles) committed(freed []reclaim) {
	if len(freed) == 0 {
		return
	}
	o.mu.Lock()
	o.queue = append(o.queue, freed...)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// reclaimer frees what committed transactions freed, off the writer: it
// waits for the readers that may still name the bytes.
func (o *outputFiles) reclaimer() {
	defer close(o.done)
	for {
		select {
		case <-o.wake:
		case <-o.stop:
			o.reclaim()
			return
		}
		o.reclaim()
	}
}

// reclaim frees what is queued. It takes the queue under the gate, so
// that once a call returns, everything committed before it was freed.
func (o *outputFiles) reclaim() {
	o.gate.Lock()
	defer o.gate.Unlock()
	o.mu.Lock()
	work := o.queue
	o.queue = nil
	o.mu.Unlock()
	for _, r := range work {
		if r.n == 0 {
			o.mu.Lock()
			if rf := o.open[r.runID]; rf != nil {
				_ = rf.f.Close() // its rows are gone: nothing of it is needed
				delete(o.open, r.runID)
			}
			o.mu.Unlock()
			if err := os.Remove(o.path(r.runID)); err != nil && !errors.Is(err, os.ErrNotExist) {
				o.log.Warn("cannot remove a pruned run's output file", "path", o.path(r.runID), "error", err)
			}
			continue
		}
		if err := punchHole(o.path(r.runID), r.off, r.n); err != nil {
			o.log.Warn("cannot free the output the cap dropped", "path", o.path(r.runID), "offset", r.off, "bytes", r.n, "error", err)
		}
	}
}

// close stops the reclaimer once it has freed what is queued, and closes
// the writer's files. No transaction is open.
func (o *outputFiles) close() error {
	close(o.stop)
	<-o.done
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closeAll()
}

// fileReader reads chunks from one run's file for a ReadOutput, which
// holds the gate.
type fileReader struct {
	o     *outputFiles
	runID string
	f     *os.File
	gone  bool // the file is missing
}

// read returns the n bytes at off, or ok false when the file does not hold
// them all: written, committed and then lost to a power cut under
// SyncNormal. The reader then shows them as lost (store.LostMarker)
// rather than fail the machine's whole output.
func (r *fileReader) read(off, n int64) (data []byte, ok bool, err error) {
	if r.f == nil && !r.gone {
		f, err := os.Open(r.o.path(r.runID))
		if errors.Is(err, os.ErrNotExist) {
			r.gone = true // said once a read, not once a chunk
			r.o.log.Warn("an output file is missing: its chunks are shown as lost", "path", r.o.path(r.runID))
		} else if err != nil {
			return nil, false, fmt.Errorf("open output file: %w", err)
		}
		r.f = f
	}
	if r.gone {
		return nil, false, nil
	}
	data = make([]byte, n)
	if _, err := r.f.ReadAt(data, off); err != nil {
		if errors.Is(err, io.EOF) {
			r.o.log.Warn("an output file is shorter than its rows say (lost in a crash?): the missing chunk is shown as lost",
				"path", r.f.Name(), "offset", off, "bytes", n)
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("read output file %s: %w", r.f.Name(), err)
	}
	return data, true, nil
}

func (r *fileReader) close() {
	if r.f != nil {
		_ = r.f.Close()
	}
}

// sweep removes the files of runs the database does not have: pruned
// while the store stopped before their removal.
func (o *outputFiles) sweep(ctx context.Context, db *sql.DB) error {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return fmt.Errorf("list output files: %w", err)
	}
	for _, e := range entries {
		id, ok := runIDOf(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue // not ours: left alone
		}
		var one int
		err := db.QueryRowContext(ctx, "SELECT 1 FROM runs WHERE id = ?", id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			if err := os.Remove(filepath.Join(o.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove the output file of a pruned run: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("sweep output files: %w", wrapErr(err))
		}
	}
	return nil
}

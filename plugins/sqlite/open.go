package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Sync settings for Options.Synchronous; see the package documentation for
// what each survives.
const (
	SyncNormal = "normal"
	SyncFull   = "full"
)

// Defaults for the zero Options.
const (
	DefaultBusyTimeout = 5 * time.Second
	DefaultReadConns   = 4
	// DefaultListLimit is how many runs ListRuns returns when the filter
	// sets no limit.
	DefaultListLimit = 100
)

// Options configure Open.
type Options struct {
	// Path is the database file; its folder is made if missing. The lock
	// file Path+".lock" sits beside it.
	Path string
	// Synchronous is SyncNormal (the default) or SyncFull.
	Synchronous string
	// BusyTimeout is how long a statement waits for a lock held by another
	// connection before it fails with store.ErrUnavailable. Zero:
	// DefaultBusyTimeout.
	BusyTimeout time.Duration
	// ReadConns bounds the connections that serve reads. Zero:
	// DefaultReadConns.
	ReadConns int
	// FullCheck runs PRAGMA integrity_check on open instead of the faster
	// quick_check (which skips checking that indexes match their tables).
	FullCheck bool
	// Logger gets what the background checkpointer has to say: a
	// checkpoint that failed, a WAL that readers keep from shrinking. Nil:
	// nothing is logged.
	Logger hclog.Logger

	// checkpoint tunes the background checkpointer; zero: the defaults.
	// For tests.
	checkpoint checkpointConfig
	// fileChunkMin is the smallest chunk kept in an output file; zero:
	// fileChunkMin. For tests, which keep every chunk in files with 1.
	fileChunkMin int
}

// Store is a store.Store in one SQLite file, safe for concurrent use.
type Store struct {
	path string
	// w has a single connection: SQLite takes one writer at a time, and
	// queuing writers in the pool (which honours contexts) is cheaper than
	// letting them spin on SQLITE_BUSY.
	w *sql.DB
	// r serves reads; in WAL mode they do not block the writer nor it them.
	r     *sql.DB
	stmts appendStmts // on w
	// wq and rq keep the prepared statements of w and r by text.
	wq, rq *stmtCache
	lock   *os.File
	// group combines concurrent writes into shared transactions on w.
	group combiner
	// ckpt checkpoints the WAL, off the writer; see checkpoint.go.
	ckpt *checkpointer
	// files keeps large output chunks beside the database; see
	// outfiles.go.
	files *outputFiles

	mu     sync.RWMutex // held for reading by every call, for writing by Close
	closed bool
}

var (
	_ store.Store           = (*Store)(nil)
	_ store.MachineBatcher  = (*Store)(nil)
	_ store.FireBatcher     = (*Store)(nil)
	_ store.RunBatchReader  = (*Store)(nil)
	_ store.RunBatchUpdater = (*Store)(nil)
)

// pageSize is a new database's page size. Every commit writes each page
// it changed whole, to the WAL and again at the checkpoint, with a
// checksum: most of the store's commits change a row or two in a few
// pages (a run fired, a machine's start, a heartbeat), and output chunks
// of fileChunkMin and more are in files. At 4 KiB rather than the 16 KiB
// the store used before output went to files, one FireRun after another
// took 37% less CPU, 64 at once 17% less, and a heartbeat's
// UpdateMachine 22% less (BenchmarkConcurrentFireRun,
// BenchmarkConcurrentUpdateMachine); small AppendOutput calls took 35%
// less, batched ones the same. A store made before keeps its 16 KiB
// pages until a VACUUM.
const pageSize = 4096

// Open opens the database at o.Path, creating it (and its folder) if
// missing, checks it, and brings its schema up to date. It fails, changing
// nothing, when another process has the database open, when the file is not
// a sound SQLite database, or when its schema is newer than this binary
// knows.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Path == "" {
		return nil, errors.New("open sqlite store: empty path")
	}
	path, err := filepath.Abs(o.Path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", o.Path, err)
	}
	if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("open sqlite store %s: a path may not contain '?'", path)
	}
	syncMode := strings.ToLower(o.Synchronous)
	switch syncMode {
	case "":
		syncMode = SyncNormal
	case SyncNormal, SyncFull:
	default:
		return nil, fmt.Errorf("open sqlite store %s: synchronous %q: want %q or %q", path, o.Synchronous, SyncNormal, SyncFull)
	}
	busy := o.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	readConns := o.ReadConns
	if readConns <= 0 {
		readConns = DefaultReadConns
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	lock, err := lockFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{path: path, lock: lock}
	ok := false
	defer func() {
		if !ok {
			s.closeAll()
		}
	}()

	fresh, err := checkFile(ctx, path, o.FullCheck)
	if err != nil {
		return nil, err
	}
	if fresh {
		// Job output can hold secrets: the file is the owner's alone, and
		// SQLite gives its -wal and -shm files the database's mode.
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create sqlite store %s: %w", path, err)
		}
		f.Close()
	}

	pragmas := []string{
		fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()),
		"foreign_keys(1)",
		"synchronous(" + strings.ToUpper(syncMode) + ")",
	}
	// Combined writes each run in a savepoint, whose undo copies (the
	// statement journal) would otherwise spill to a temporary file after
	// 64 KiB: a write and a read of it per page, per savepoint. The
	// writer never checkpoints: a COMMIT that did would make every write
	// of its batch wait for the checkpoint's fsyncs (the checkpointer
	// does it, see checkpoint.go).
	wPragmas := append(pragmas[:len(pragmas):len(pragmas)], "temp_store(MEMORY)", "wal_autocheckpoint(0)")
	s.w, err = openWriter(dsn(path, wPragmas, "_txlock=immediate"), &s.group)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	if fresh {
		// Only on a new file: afterwards it takes a VACUUM (see pageSize).
		if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA page_size = %d", pageSize)); err != nil {
			return nil, fmt.Errorf("open sqlite store %s: set page_size: %w", path, wrapErr(err))
		}
		// Only while the file has no table: afterwards it takes a VACUUM.
		if _, err := s.w.ExecContext(ctx, "PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
			return nil, fmt.Errorf("open sqlite store %s: set auto_vacuum: %w", path, err)
		}
	}
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: set journal_mode: %w", path, wrapErr(err))
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, fmt.Errorf("open sqlite store %s: journal_mode is %q, want wal", path, mode)
	}
	if err := migrate(ctx, s.w, path); err != nil {
		return nil, err
	}
	if err := s.stmts.prepare(ctx, s.w); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: prepare: %w", path, wrapErr(err))
	}
	s.wq = newStmtCache(s.w)
	if err := s.wq.prepareAll(ctx, writeSQL); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, wrapErr(err))
	}

	s.r, err = sql.Open("sqlite", dsn(path, append(pragmas, "query_only(1)")))
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	s.r.SetMaxOpenConns(readConns)
	s.r.SetMaxIdleConns(readConns)
	if err := s.r.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, wrapErr(err))
	}
	s.rq = newStmtCache(s.r)
	if err := s.rq.prepareAll(ctx, readSQL); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, wrapErr(err))
	}

	log := o.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	chunkMin := o.fileChunkMin
	if chunkMin <= 0 {
		chunkMin = fileChunkMin
	}
	if s.files, err = newOutputFiles(path, syncMode == SyncFull, chunkMin, log); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	if err := s.files.sweep(ctx, s.r); err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	s.ckpt, err = startCheckpointer(ctx, path, s.w, syncMode, o.checkpoint.withDefaults(busy), log)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	ok = true
	return s, nil
}

// dsn builds a data source name for the modernc driver.
func dsn(path string, pragmas []string, extra ...string) string {
	var q []string
	for _, p := range pragmas {
		q = append(q, "_pragma="+url.QueryEscape(p))
	}
	q = append(q, extra...)
	return path + "?" + strings.Join(q, "&")
}

// lockFile takes the exclusive advisory lock beside the database, so that
// one process at a time writes it, and records our pid in it.
func lockFile(path string) (*os.File, error) {
	name := path + ".lock"
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open sqlite store %s: lock: %w", path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			who := "another process"
			if b, rerr := os.ReadFile(name); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					who = "pid " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("database %s is in use by %s (lock %s): %w", path, who, name, store.ErrUnavailable)
		}
		return nil, fmt.Errorf("open sqlite store %s: lock %s: %w", path, name, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

var sqliteMagic = []byte("SQLite format 3\x00")

// checkFile reports whether path is a new (missing or empty) database, and
// otherwise checks it without writing to it: the header, the size the
// header promises, and PRAGMA quick_check (or integrity_check) on a
// read-only connection. A file that fails is refused, never repaired.
func checkFile(ctx context.Context, path string, full bool) (fresh bool, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("open sqlite store %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return false, fmt.Errorf("open sqlite store %s: not a regular file", path)
	case fi.Size() == 0:
		return true, nil
	}
	corrupt := func(format string, a ...any) error {
		return fmt.Errorf("sqlite store %s is corrupt or not a database, refusing it (the file is left as it is; restore a backup or move it away): %s",
			path, fmt.Sprintf(format, a...))
	}
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	hdr := make([]byte, 100)
	_, err = f.ReadAt(hdr, 0)
	f.Close()
	if err != nil {
		return false, corrupt("header: %v", err)
	}
	if !bytes.Equal(hdr[:16], sqliteMagic) {
		return false, corrupt("bad header")
	}
	pageSize := int64(binary.BigEndian.Uint16(hdr[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	if pageSize < 512 || pageSize&(pageSize-1) != 0 {
		return false, corrupt("page size %d", pageSize)
	}
	// The header's page count is valid when its version-valid-for number
	// matches the change counter. A WAL not yet checkpointed may hold the
	// newer pages, so the size is only checked without one.
	pages := int64(binary.BigEndian.Uint32(hdr[28:32]))
	validFor := binary.BigEndian.Uint32(hdr[92:96])
	counter := binary.BigEndian.Uint32(hdr[24:28])
	wal, werr := os.Stat(path + "-wal")
	noWAL := errors.Is(werr, os.ErrNotExist) || (werr == nil && wal.Size() == 0)
	if noWAL && validFor == counter && pages > 0 && fi.Size() < pages*pageSize {
		return false, corrupt("truncated: %d bytes, header says %d pages of %d", fi.Size(), pages, pageSize)
	}
	if noWAL && fi.Size()%pageSize != 0 {
		return false, corrupt("truncated: %d bytes is not a whole number of %d-byte pages", fi.Size(), pageSize)
	}

	// A read-only connection: closing it never checkpoints into the file.
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}
	db, err := sql.Open("sqlite", u.String())
	if err != nil {
		return false, fmt.Errorf("open sqlite store %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	check := "PRAGMA quick_check"
	if full {
		check = "PRAGMA integrity_check"
	}
	rows, err := db.QueryContext(ctx, check)
	if err != nil {
		return false, checkErr(ctx, path, err, corrupt)
	}
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			rows.Close()
			return false, checkErr(ctx, path, err, corrupt)
		}
		if line != "ok" && len(problems) < 5 {
			problems = append(problems, line)
		}
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return false, checkErr(ctx, path, err, corrupt)
	}
	if len(problems) > 0 {
		return false, corrupt("%s", strings.Join(problems, "; "))
	}
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return false, checkErr(ctx, path, err, corrupt)
	}
	if version > schemaVersion {
		return false, fmt.Errorf("sqlite store %s has schema version %d, newer than this binary's %d: run a newer saltpeter, or restore a backup made for this version",
			path, version, schemaVersion)
	}
	var tables int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&tables); err != nil {
		return false, checkErr(ctx, path, err, corrupt)
	}
	return tables == 0, nil
}

// checkErr tells corruption from other failures of the open checks.
func checkErr(ctx context.Context, path string, err error, corrupt func(string, ...any) error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("open sqlite store %s: %w", path, ctx.Err())
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return corrupt("%v", err)
		}
	}
	return fmt.Errorf("open sqlite store %s: check: %w", path, wrapErr(err))
}

// wrapErr marks failures of the database itself (busy, I/O, full disk,
// gone) as store.ErrUnavailable.
func wrapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrConnDone) {
		return fmt.Errorf("%w: %w", err, store.ErrUnavailable)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB,
			sqlite3.SQLITE_PROTOCOL:
			return fmt.Errorf("%w: %w", err, store.ErrUnavailable)
		}
	}
	return err
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Close stops the background checkpointer (waiting for a checkpoint it
// runs, which it interrupts), checkpoints and closes the database and
// releases the lock. Every later call fails with store.ErrUnavailable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.closeAll()
}

func (s *Store) closeAll() error {
	// The checkpointer first: its goroutine must not outlive the store,
	// and the writer's connection, closed last, must be the database's
	// last, for SQLite to checkpoint the WAL into the file and delete it.
	errs := []error{s.ckpt.stop()}
	// Every call has returned (Close holds s.mu): no transaction, and so
	// no batch of the combiner, uses a statement any more.
	s.stmts.close()
	s.wq.close()
	s.rq.close()
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	errs = append(errs, s.ckpt.closeIndex())
	if s.files != nil {
		errs = append(errs, s.files.close())
	}
	if s.lock != nil {
		// The lock file stays: removing it would race a new opener.
		errs = append(errs, unix.Flock(int(s.lock.Fd()), unix.LOCK_UN), s.lock.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite store %s: %w", s.path, err)
	}
	return nil
}

// begin starts a call: it fails when ctx is done or the store closed, and
// otherwise returns with s.mu held for reading; call the returned func when
// done.
func (s *Store) begin(ctx context.Context) (func(), error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, fmt.Errorf("sqlite store %s closed: %w", s.path, store.ErrUnavailable)
	}
	return s.mu.RUnlock, nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	done, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	var one int
	if err := s.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite store %s: %w", s.path, wrapErr(err))
	}
	return nil
}

package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Background checkpoints. SQLite's automatic checkpoint runs inside the
// COMMIT that takes the WAL past wal_autocheckpoint pages: that commit
// then also syncs the WAL, copies its pages into the database file and
// syncs that, 25 ms and more during which the writer, and every write
// grouped into its transaction, waits. The writer therefore runs with
// wal_autocheckpoint=0, and a goroutine of the store checkpoints from a
// connection of its own, which writes do not wait for.
//
// How much of the WAL is not yet checkpointed comes from the wal-index
// header at the start of the -shm file (https://www.sqlite.org/walformat.html):
// mxFrame, the frames in the WAL, and nBackfill, those of them already
// copied into the database file. Every process sharing the database reads
// it, so its layout cannot change without breaking them; reading it is
// one pread, after each commit. The -wal file's size would not do: once a
// checkpoint has copied all of it, the writer writes the file again from
// its start without shrinking it, so the size no longer says how many
// frames are in it. Nor would counting commits: a heartbeat writes one or
// two pages, a run's output hundreds.
//
// Once cfg.frames are not yet copied, PASSIVE checkpoints copy what no
// reader still needs, waiting for nobody, again while what is left
// shrinks: the writer starts the WAL over only if, as a transaction
// begins, every frame has been copied. A writer that never pauses for as
// long as a checkpoint takes never sees that, and a reader holding an old
// snapshot (a backup, a long scan) keeps the frames after it. So, once
// the WAL's frames pass maxWAL bytes, the checkpointer escalates to
// RESTART, which makes the writer's next transaction start the WAL over;
// and when a reader held a checkpoint back and the -wal file is past
// maxWAL, to TRUNCATE, which also empties the file. Both run while the
// checkpointer holds the writer's connection (see escalate), so writes
// wait for them: when little is left to copy, PASSIVE checkpoints copy it
// first, leaving a few milliseconds of syncs; when the writer outran
// them, writes wait for all of it, as they did for SQLite's automatic
// checkpoint, but once per maxWAL rather than per 1000 pages. The bound
// is soft: the WAL passes it by what the writer adds while a checkpoint
// runs. While readers keep a checkpoint from catching up, the
// checkpointer does not hold up writes for them, backs off and says so in
// the log; a failed checkpoint is logged and retried later.

// Defaults of checkpointConfig.
const (
	// defaultCkptFrames is SQLite's own wal_autocheckpoint default: about
	// 4 MiB of WAL with the store's 4 KiB pages (pageSize).
	defaultCkptFrames = 1000
	// defaultMaxWAL bounds the WAL: past it the checkpointer holds up
	// writes to start it over.
	defaultMaxWAL = 64 << 20
	// defaultHoldWait bounds how long the checkpointer waits for the
	// writer's connection, and then (with the writer held, so that writes
	// wait too) for readers to leave the WAL: what a RESTART or TRUNCATE
	// may add to a write's wait, beyond its own work. Kept under a quarter
	// of the store's busy timeout.
	defaultHoldWait = 200 * time.Millisecond
	// defaultMinRetry and defaultMaxRetry bound the backoff after a failed
	// checkpoint, or one that readers kept from catching up.
	defaultMinRetry = time.Second
	defaultMaxRetry = 10 * time.Second
	// defaultBlindEvery is how often a PASSIVE checkpoint runs when the
	// wal-index cannot be read.
	defaultBlindEvery = 10 * time.Second
	// maxCatchUp bounds the PASSIVE checkpoints run in a row, each
	// copying what the writer added during the last.
	maxCatchUp = 8
)

// checkpointConfig tunes the checkpointer. Only tests set it (through
// Options.checkpoint); a zero field takes its default.
type checkpointConfig struct {
	frames     int64         // PASSIVE once this many frames are not yet copied
	maxWAL     int64         // RESTART, or TRUNCATE, past this many bytes
	holdWait   time.Duration // see defaultHoldWait; the connection's busy timeout
	minRetry   time.Duration
	maxRetry   time.Duration
	blindEvery time.Duration

	// Test hooks. The goroutine waits for gate to close before it checks
	// anything (nil: it does not wait); onPass gets every checkpoint, in
	// the goroutine; shmPath replaces path-shm.
	gate    chan struct{}
	onPass  func(ckptPass)
	shmPath string
}

func (c checkpointConfig) withDefaults(busy time.Duration) checkpointConfig {
	if c.frames <= 0 {
		c.frames = defaultCkptFrames
	}
	if c.maxWAL <= 0 {
		c.maxWAL = defaultMaxWAL
	}
	if c.holdWait <= 0 {
		c.holdWait = max(min(defaultHoldWait, busy/4), time.Millisecond)
	}
	if c.minRetry <= 0 {
		c.minRetry = defaultMinRetry
	}
	if c.maxRetry <= 0 {
		c.maxRetry = defaultMaxRetry
	}
	if c.blindEvery <= 0 {
		c.blindEvery = defaultBlindEvery
	}
	return c
}

// ckptPass is one checkpoint and what PRAGMA wal_checkpoint answered.
type ckptPass struct {
	mode string // PASSIVE, RESTART or TRUNCATE
	// busy: a RESTART or TRUNCATE did not get, in time, the locks it
	// waits for.
	busy bool
	// log is the frames in the WAL when the checkpoint began,
	// checkpointed those of them in the database file at its end.
	log, checkpointed int64
	// held is how long writes were held for it (RESTART, TRUNCATE).
	held time.Duration
	err  error
}

// checkpointer runs the store's checkpoints, in a goroutine of its own,
// on a connection of its own.
type checkpointer struct {
	db      *sql.DB // one connection, query_only: it never writes a row
	writer  *sql.DB // the store's, held during a RESTART or TRUNCATE
	walPath string
	shm     *os.File // the wal-index; nil when it could not be opened
	cfg     checkpointConfig
	log     hclog.Logger

	kick   chan struct{} // a commit happened; one token at most
	cancel context.CancelFunc
	done   chan struct{} // closed once the goroutine has ended

	// Owned by the goroutine.
	retryAt time.Time
	backoff time.Duration
	blind   bool // the wal-index cannot be read (said once)
	// grown: a reader may have let the WAL grow, since Open or the last
	// TRUNCATE. Only then (or blind) is a -wal file past maxWAL emptied:
	// a file that grew because the writer outran the checkpoints would
	// grow as far again.
	grown bool
	// blockedAt is the WAL's frames when a RESTART or TRUNCATE last found
	// readers in the WAL after waiting for them (0: none since). Until a
	// PASSIVE checkpoint gets that far, they are still there, and another
	// would hold up writes in vain.
	blockedAt int64
	// restarted is the WAL's frames at the last RESTART, until the writer
	// has started it over: another RESTART before the writer has written
	// cfg.frames more would gain nothing.
	restarted int64
}

// startCheckpointer opens the checkpointer's connection to the database
// at path (in WAL mode already, so that its -shm file exists) and starts
// its goroutine. writer is the store's writer, syncMode its synchronous
// setting, which the checkpointer's connection shares: it decides whether
// a checkpoint syncs the WAL before copying it, and the database file
// after ("normal" and "full" alike do).
func startCheckpointer(ctx context.Context, path string, writer *sql.DB, syncMode string, cfg checkpointConfig, log hclog.Logger) (*checkpointer, error) {
	db, err := sql.Open("sqlite", dsn(path, []string{
		// How long RESTART and TRUNCATE wait for readers; PASSIVE never
		// waits.
		fmt.Sprintf("busy_timeout(%d)", cfg.holdWait.Milliseconds()),
		"synchronous(" + strings.ToUpper(syncMode) + ")",
		"query_only(1)",
	}))
	if err != nil {
		return nil, fmt.Errorf("open checkpointer connection: %w", err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open checkpointer connection: %w", wrapErr(err))
	}
	c := &checkpointer{
		db:      db,
		writer:  writer,
		walPath: path + "-wal",
		cfg:     cfg,
		log:     log,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	// A crash may have left a long WAL.
	if fi, err := os.Stat(c.walPath); err == nil && fi.Size() > cfg.maxWAL {
		c.grown = true
	}
	shmPath := cfg.shmPath
	if shmPath == "" {
		shmPath = path + "-shm"
	}
	// Read-only, never created. It stays open until every connection of
	// the store is closed (see closeIndex): SQLite locks the -shm file
	// with POSIX locks, which closing any descriptor of the file in the
	// process drops.
	if c.shm, err = os.Open(shmPath); err != nil {
		c.noIndex(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		c.run(runCtx)
	}()
	return c, nil
}

// poke tells the checkpointer that a transaction committed. It never
// blocks; a nil checkpointer (while Open migrates) ignores it.
func (c *checkpointer) poke() {
	if c == nil {
		return
	}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// stop ends the goroutine, interrupting a checkpoint it runs, waits for
// it, and closes its connection. The store's final checkpoint, on closing
// the writer, comes after.
func (c *checkpointer) stop() error {
	if c == nil {
		return nil
	}
	c.cancel()
	<-c.done
	if err := c.db.Close(); err != nil {
		return fmt.Errorf("close checkpointer connection: %w", err)
	}
	return nil
}

// closeIndex closes the -shm descriptor: only once every connection of
// the store to the database is closed.
func (c *checkpointer) closeIndex() error {
	if c == nil || c.shm == nil {
		return nil
	}
	return c.shm.Close()
}

func (c *checkpointer) run(ctx context.Context) {
	if c.cfg.gate != nil {
		select {
		case <-c.cfg.gate:
		case <-ctx.Done():
			return
		}
	}
	// Commits poke the checkpointer; a timer only when it is blind.
	var blindTick <-chan time.Time
	due := false
	for {
		c.check(ctx, due)
		if c.blind && blindTick == nil {
			t := time.NewTicker(c.cfg.blindEvery)
			defer t.Stop()
			blindTick = t.C
		}
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
			due = false
		case <-blindTick:
			due = true
		}
	}
}

// check runs the checkpoints the WAL calls for, if any. blindDue: the
// blind checkpointer's timer fired.
func (c *checkpointer) check(ctx context.Context, blindDue bool) {
	if time.Now().Before(c.retryAt) {
		return
	}
	idx, ok := c.index()
	var size int64
	if fi, err := os.Stat(c.walPath); err == nil {
		size = fi.Size()
	}
	if ok && int64(idx.mxFrame) < max(c.restarted, c.blockedAt) {
		// The writer has started the WAL over: no reader holds it.
		c.restarted, c.blockedAt = 0, 0
	}
	switch {
	case size > c.cfg.maxWAL && (c.grown || c.blind):
		c.escalate(ctx, "TRUNCATE", size)
	case ok && idx.bytes() > c.cfg.maxWAL && (c.restarted == 0 || int64(idx.mxFrame) >= c.restarted+c.cfg.frames):
		c.escalate(ctx, "RESTART", size)
	case ok && idx.lag() >= c.cfg.frames:
		if _, ok := c.catchUp(ctx, c.cfg.maxWAL); ok {
			c.backoff = 0
		}
	case c.blind && blindDue:
		if _, ok := c.passive(ctx); ok {
			c.backoff = 0
		}
	}
}

// catchUp runs PASSIVE checkpoints until none is left to copy, or what is
// left no longer halves from one to the next: the writer adds frames
// while one runs, and starts the WAL over only if it finds none left. It
// also stops once the WAL's frames take more than limit bytes, for the
// checkpointer to escalate rather than let a writer faster than its
// checkpoints go on. It reports false when one failed or was held back by
// readers.
func (c *checkpointer) catchUp(ctx context.Context, limit int64) (ckptPass, bool) {
	lag := int64(-1)
	if idx, ok := c.index(); ok {
		lag = idx.lag()
	}
	var p ckptPass
	for range maxCatchUp {
		var ok bool
		if p, ok = c.passive(ctx); !ok {
			return p, false
		}
		idx, ok := c.index()
		if !ok || idx.lag() == 0 || (lag >= 0 && 2*idx.lag() > lag) || idx.bytes() > limit {
			break
		}
		lag = idx.lag()
	}
	return p, true
}

// passive runs a PASSIVE checkpoint. It reports false when it failed, or
// when readers kept it from copying cfg.frames frames or more (another
// would copy nothing more until they move on): it then backs off.
func (c *checkpointer) passive(ctx context.Context) (ckptPass, bool) {
	p := c.pass(ctx, "PASSIVE")
	switch {
	case p.err != nil:
		c.failed(ctx, p)
		return p, false
	case p.log-p.checkpointed >= c.cfg.frames:
		c.grown = true
		c.later()
		c.log.Debug("WAL checkpoint held back by readers", "frames", p.log, "checkpointed", p.checkpointed, "retry_in", c.backoff)
		return p, false
	}
	return p, true
}

// escalate runs mode (RESTART or TRUNCATE) for a WAL of size bytes that
// PASSIVE checkpoints have not kept small. It runs while the checkpointer
// holds the writer's connection, between two transactions, so that
// writes queue in Go for just as long as it takes: left to SQLite's busy
// handler it would poll for the write lock, which a writer that never
// pauses hardly ever leaves free, and a writer waiting for it would poll
// in turn, in sleeps of up to 100 ms.
func (c *checkpointer) escalate(ctx context.Context, mode string, size int64) {
	// A file past its bound because of a reader is worth a warning; a
	// writer faster than the checkpoints is only load.
	say := c.log.Debug
	if mode == "TRUNCATE" {
		say = c.log.Warn
	}
	// PASSIVE checkpoints first copy what they can, if that is little,
	// leaving less to copy with writes held; and find whether a reader
	// holds the WAL, if one did lately: then holding up writes would be in
	// vain. Otherwise writes wait for all of it: they outran the
	// checkpoints, and would again while a long one ran.
	if idx, ok := c.index(); !ok || c.grown || idx.lag() < c.cfg.frames {
		p, ok := c.catchUp(ctx, 2*c.cfg.maxWAL)
		if ok && c.blockedAt > 0 && p.checkpointed < c.blockedAt {
			// The reader that made the last RESTART or TRUNCATE wait in
			// vain still holds the frames before blockedAt.
			ok = false
			c.later()
		}
		if !ok {
			if p.err == nil {
				say("a reader keeps the WAL from being checkpointed; retrying later", "mode", mode,
					"wal_bytes", size, "frames", p.log, "checkpointed", p.checkpointed, "retry_in", c.backoff)
			}
			return
		}
	}
	hold, cancel := context.WithTimeout(ctx, c.cfg.holdWait)
	w, err := c.writer.Conn(hold)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.later()
			say("the writer stayed busy, keeping the WAL from being checkpointed; retrying later", "mode", mode,
				"wal_bytes", size, "waited", c.cfg.holdWait, "error", err, "retry_in", c.backoff)
		}
		return
	}
	start := time.Now()
	p := c.pass(ctx, mode)
	_ = w.Close() // back to the writer's pool
	p.held = time.Since(start)
	switch {
	case p.err != nil:
		c.failed(ctx, p)
	case p.busy:
		c.grown = true
		c.blockedAt = max(p.log, 1)
		c.later()
		say("readers keep the WAL from being checkpointed; retrying later", "mode", mode,
			"wal_bytes", size, "frames", p.log, "checkpointed", p.checkpointed, "waited", c.cfg.holdWait, "retry_in", c.backoff)
	case mode == "TRUNCATE":
		c.backoff = 0
		c.restarted, c.blockedAt = 0, 0
		c.grown = false
		c.log.Info("WAL emptied after growing past its bound",
			"wal_bytes", size, "bound", c.cfg.maxWAL, "writes_held", p.held)
	default:
		c.backoff = 0
		c.restarted, c.blockedAt = max(p.log, 1), 0
		c.log.Debug("WAL restarted", "frames", p.log, "writes_held", p.held)
	}
	if c.cfg.onPass != nil {
		c.cfg.onPass(p)
	}
}

// pass runs PRAGMA wal_checkpoint(mode). PASSIVE passes go to the onPass
// hook here, the others once escalate knows how long they held writes.
func (c *checkpointer) pass(ctx context.Context, mode string) ckptPass {
	p := ckptPass{mode: mode}
	var busy int
	err := c.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &p.log, &p.checkpointed)
	if err != nil {
		p.err = fmt.Errorf("PRAGMA wal_checkpoint(%s): %w", mode, wrapErr(err))
	}
	p.busy = busy != 0
	if mode == "PASSIVE" && c.cfg.onPass != nil {
		c.cfg.onPass(p)
	}
	return p
}

// failed logs a failed checkpoint, unless Close interrupted it, and
// backs off.
func (c *checkpointer) failed(ctx context.Context, p ckptPass) {
	if ctx.Err() != nil {
		return
	}
	c.later()
	c.log.Error("background WAL checkpoint failed", "mode", p.mode, "error", p.err, "retry_in", c.backoff)
}

// later puts the next checkpoint off, twice as long as the last time.
func (c *checkpointer) later() {
	c.backoff = min(max(2*c.backoff, c.cfg.minRetry), c.cfg.maxRetry)
	c.retryAt = time.Now().Add(c.backoff)
}

// walIndex is what the checkpointer reads of the wal-index header.
type walIndex struct {
	mxFrame   uint32 // frames in the WAL
	nBackfill uint32 // of them, those copied into the database file
	pageSize  int64
}

// lag is how many frames of the WAL are not yet in the database file.
func (w walIndex) lag() int64 { return int64(w.mxFrame) - int64(w.nBackfill) }

// bytes is what the WAL's frames take in the -wal file.
func (w walIndex) bytes() int64 {
	return walHeaderSize + int64(w.mxFrame)*(walFrameHeaderSize+w.pageSize)
}

// The wal-index header: two copies of a 48-byte WalIndexHdr (writers
// update the second copy first), then WalCkptInfo, whose first field is
// nBackfill; all in the machine's byte order.
const (
	walIndexHdrSize    = 48
	walIndexReadSize   = 2*walIndexHdrSize + 4
	walIndexVersion    = 3007000
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

// index reads the wal-index header, as SQLite's readers do: without a
// lock, trusting it only when both copies agree. It reports false when it
// cannot: the checkpointer is blind, or the header was being changed
// (three times).
func (c *checkpointer) index() (walIndex, bool) {
	if c.shm == nil || c.blind {
		return walIndex{}, false
	}
	var b [walIndexReadSize]byte
	for range 3 {
		if _, err := c.shm.ReadAt(b[:], 0); err != nil {
			c.noIndex(err)
			return walIndex{}, false
		}
		h1, h2 := b[:walIndexHdrSize], b[walIndexHdrSize:2*walIndexHdrSize]
		if !bytes.Equal(h1, h2) {
			continue // a writer is changing it
		}
		ne := binary.NativeEndian
		if v := ne.Uint32(h1[0:]); v != walIndexVersion || h1[12] != 1 {
			c.noIndex(fmt.Errorf("wal-index version %d, initialised %d: want %d, 1", v, h1[12], walIndexVersion))
			return walIndex{}, false
		}
		pageSize := int64(ne.Uint16(h1[14:]))
		if pageSize == 1 {
			pageSize = 65536
		}
		return walIndex{
			mxFrame:   ne.Uint32(h1[16:]),
			nBackfill: ne.Uint32(b[2*walIndexHdrSize:]),
			pageSize:  pageSize,
		}, true
	}
	return walIndex{}, false
}

// noIndex makes the checkpointer blind, for good: it cannot tell how
// much of the WAL is not yet copied, and checkpoints on a timer instead.
func (c *checkpointer) noIndex(err error) {
	if c.blind {
		return
	}
	c.blind = true
	c.log.Warn("cannot read the WAL index; checkpointing on a timer instead", "error", err, "every", c.cfg.blindEvery)
}

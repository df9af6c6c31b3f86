// Package sqlite is the embedded default store: run state in one SQLite
// file, through the pure-Go driver modernc.org/sqlite (no cgo; the binary
// stays static). Store implements sdk/store.Store and passes
// sdktest.TestStore.
//
// # What it owns
//
// The database file (store "sqlite" { path = … }), the SQLite files beside
// it (path-wal, path-shm), the lock file path.lock and the directory of
// output files path.output. Tables: runs (with
// run_actions), machines (one result per machine of a run, with its
// output_bytes, stored_bytes, output_cap and next_seq), output_chunks
// keyed by (run_id, machine, seq), output_streams (each stream's size),
// overrides, maintenance (one row), fires, notifications (the outbox:
// each notification with its lease owner and end) and audit (the operator
// actions, by an AUTOINCREMENT id that a prune never frees for reuse).
// Each chunk row keeps its offset in the machine's whole output and in
// its stream, so ReadOutput from an offset seeks to its chunk through an
// index instead of reading the chunks before it; a chunk, its stream's
// size, the machine's next_seq and sizes, and what the output cap drops
// change in one transaction (sdk/store's package doc says what the cap
// keeps).
//
// # Output files
//
// A chunk of 16 KiB or more keeps its bytes in its run's file in
// path.output (RUNID.out), appended at the file's end before its row is
// written, and its row says where (file_off; the row's data is then
// empty). In the database such a chunk cost its bytes twice in page
// writes (the WAL, then the checkpoint) and a checksum per page: 5 ms of
// CPU a MiB, the store's limit on a chatty job. Smaller chunks, most of a
// fleet's output, stay in their rows, and a run that prints little has no
// file. Chunks written before this (schema version 7) stay in their rows.
//
// A file's bytes named by a committed row never change. Bytes of a
// transaction that rolled back, or was lost to a crash, are named by no
// row, and the next chunk goes after them. What a committed transaction
// frees (the chunks the cap drops, the files of pruned runs) a goroutine
// frees after the commit, punching holes (Linux; elsewhere the space
// comes back when the run is pruned) and removing files, once no reader
// still holds a snapshot that names the bytes. A file whose run is gone
// (the store stopped first) is removed at the next Open. Files in the
// directory that are not named as ours are left alone.
//
// A file that grows long (a job's megabytes) has its writeback started
// every 4 MiB and what lies 16 MiB behind dropped from the page cache
// (Linux): output is seldom read again, and left cached it would push out
// the database's pages and take fresh memory for every MiB.
//
// # Opening
//
// Open takes an exclusive flock on path.lock first, so that one process at
// a time has the database (a second gets "database X is in use by pid N");
// Close or the process's death releases it. It then checks an existing
// file without writing to it: the header, the size the header promises,
// and PRAGMA quick_check (integrity_check with Options.FullCheck) on a
// read-only connection. A corrupt or truncated file is refused with an
// error naming it, and left exactly as it was: restore a backup, or move
// the file away to start empty. A new file gets auto_vacuum = INCREMENTAL
// before its first table (it cannot be turned on later without a VACUUM),
// then journal_mode = WAL. Schema migrations are numbered (PRAGMA
// user_version) and applied in one transaction; a file whose schema is
// newer than the binary is refused, naming both versions.
//
// Every connection runs with foreign_keys on and a busy_timeout. Writes go
// through one connection, so writers queue in Go (honouring their
// contexts) rather than contending for SQLite's lock; reads use a pool and,
// in WAL mode, neither block the writer nor wait for it.
//
// # Checkpoints
//
// The writer never checkpoints (wal_autocheckpoint=0): SQLite's automatic
// checkpoint would run inside the COMMIT that takes the WAL past 1000
// pages, and make that commit, and every write grouped into it, wait for
// the checkpoint's fsyncs. A goroutine of the store checkpoints instead,
// from a connection of its own: after each commit it reads the WAL's
// length from the wal-index header (the -shm file), and once 1000 pages
// are not yet in the database file it runs PRAGMA wal_checkpoint(PASSIVE),
// which waits for nobody. The WAL is bounded at about 64 MiB: past it,
// when the writer outran the checkpoints, the checkpointer holds the
// writer between two transactions for a RESTART checkpoint, so that the
// next transaction starts the WAL over; when a reader (a backup, a long
// scan) let the -wal file grow past it, it empties the file with TRUNCATE
// once the reader is done. Writes wait for those, rarely (about once per
// 64 MiB of WAL); for a reader holding the WAL they wait in vain once or
// twice (200 ms at most each), then no more while it holds it, and the
// log says so, as it does a checkpoint that failed (retried later). The
// bound is soft: the WAL passes it by what the writer adds while a
// checkpoint runs. Close stops the goroutine before its final checkpoint.
//
// # Group commit
//
// Writes that arrive while a transaction runs share the next one: the
// first of them still waiting leads it, takes every write queued then (at
// most 256, and 4 MiB of output data), runs each in its own SAVEPOINT in
// arrival order, and commits once. A write's own failure (store.ErrFinal,
// store.ErrOutOfOrder, a constraint) rolls back to its savepoint and
// reaches its caller alone; a failed COMMIT fails every write of the
// batch. A lone write runs at once in a transaction of its own. Under
// fleet load the cost of a transaction (BEGIN, COMMIT, and WAL frames for
// every page it touched, the same index pages again and again) is then
// paid once per batch rather than once per write.
//
// A queued write whose context ends is dropped with the context's error,
// never run. Once it has run, its caller waits for the commit and gets
// its outcome. A shared transaction, and every statement in it, runs
// under no caller's context: SQLite rolls the whole transaction back when
// a write statement is interrupted, so one caller's cancellation would
// undo the others' writes (database/sql still checks each caller's
// context between its statements). Should the transaction be lost anyway
// (SQLite rolls it back on an I/O error or a full disk), the writes it
// had run fail with store.ErrUnavailable and the rest go on in a new
// one. Pruning and vacuuming run in transactions of their own, so as not
// to hold a batch open; the one writer connection keeps them apart from
// the batches.
//
// # Durability: Options.Synchronous (store "sqlite" { synchronous = … })
//
// A write returns only after its transaction committed (AppendOutput's
// ack is after the commit).
//
//   - "normal" (the default): a commit is appended to the WAL without an
//     fsync. Everything acknowledged survives the process being killed
//     (tested with SIGKILL mid-stream, past many checkpoints, with output
//     in rows and in files). A power cut or kernel crash may lose the
//     transactions acknowledged since the WAL was last synced (at each
//     checkpoint: about every 1000 pages, 4 MB of writes); the database
//     stays consistent, never half-written. It may also keep a row whose
//     bytes its output file lost: ReadOutput shows them as lost
//     (store.LostMarker) and the rest of the output reads.
//   - "full": the WAL is fsynced at every commit, and the output files
//     written in the transaction before it, so what was acknowledged
//     survives a power cut too, at the cost of those fsyncs per commit
//     (the plugin adapter's batching, AppendOutputBatch, spreads them over
//     many chunks, and group commit over the writes that share a
//     transaction).
//
// # Backing up while the core runs
//
// The database is the .db file AND its -wal file: recent commits may live
// only in the WAL until a checkpoint moves them. A plain cp of the .db
// alone can therefore miss data or copy a torn, inconsistent file. Use
// SQLite's own online copy, which reads a consistent snapshot while the
// core keeps writing:
//
//	sqlite3 /var/lib/saltpeter/saltpeter.db ".backup /backups/saltpeter.db"
//
// or, from any SQLite client, VACUUM INTO, which also compacts the copy:
//
//	sqlite3 /var/lib/saltpeter/saltpeter.db "VACUUM INTO '/backups/saltpeter-$(date +%F).db'"
//
// Both take only a read transaction; run them against the live path with
// the -wal and -shm files in place (never delete those). Then copy the
// output directory (cp -a path.output): after the database, so that the
// files hold every byte the copied rows name (they only grow, and a hole
// punched since shows in the copy as zeros where the copy's rows still
// keep the dropped chunk). To restore, stop the core, replace the .db and
// the output directory, remove the old -wal and -shm, and start it.
// Copying the files is only safe with the core stopped.
//
// # Times
//
// Times are stored as integer unix nanoseconds (UTC), NULL for the zero
// time, and read back equal (in UTC); times outside 1678–2262 are refused
// rather than stored inexactly.
//
// # Pruning
//
// Deleting a run cascades to its machines, actions, output and stream
// sizes, and its output file goes after the commit; auto_vacuum =
// INCREMENTAL lets PRAGMA incremental_vacuum hand the pages back to the
// file system. Notifications are not tied to their run:
// PruneRuns deletes the delivered and failed ones by creation time, and
// never a pending one; audit entries go by their time (at).
//
// # Outbox
//
// One process has the database and every write goes through its one
// writer connection, so a claim's select and lease, and a finish's check
// and write, each in one write transaction, see no other claim between
// them. The claim query names its index (notifications_due, over the
// pending notifications by due time), which the planner would otherwise
// pass over for the state index and sort every pending row.
package sqlite

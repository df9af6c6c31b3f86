package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; migration i brings the schema to
// version i+1, which PRAGMA user_version records in the same transaction.
// Never edit one that has shipped: append a new one.
var migrations = []string{
	// 1: runs, their machines, actions and output; job overrides.
	`
CREATE TABLE runs (
	seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- creation order, breaks ListRuns ties
	id            TEXT    NOT NULL UNIQUE,
	job           TEXT    NOT NULL,
	trigger       TEXT    NOT NULL DEFAULT '',
	scheduled_for INTEGER,          -- unix nanoseconds UTC; NULL: zero time
	started_at    INTEGER,
	finished_at   INTEGER,
	status        TEXT    NOT NULL DEFAULT '',
	reason        TEXT    NOT NULL DEFAULT '',
	requested_by  TEXT    NOT NULL DEFAULT '',
	killed_by     TEXT    NOT NULL DEFAULT '',
	killed_at     INTEGER,
	spec          BLOB,
	-- The time ListRuns orders and bounds by: started_at, or scheduled_for
	-- while that is zero; the zero time sorts first.
	sort_at INTEGER NOT NULL GENERATED ALWAYS AS
		(coalesce(started_at, scheduled_for, -9223372036854775808)) STORED,
	active  INTEGER NOT NULL GENERATED ALWAYS AS
		(status IN ('', 'pending', 'running')) STORED
);
CREATE INDEX runs_sort   ON runs (sort_at, seq);
CREATE INDEX runs_job    ON runs (job, sort_at, seq);
CREATE INDEX runs_status ON runs (status, sort_at, seq);
CREATE INDEX runs_active ON runs (sort_at, seq) WHERE active = 1;

CREATE TABLE run_actions (
	run_id   TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	n        INTEGER NOT NULL,
	kind     TEXT    NOT NULL,
	machine  TEXT    NOT NULL DEFAULT '',
	signal   TEXT    NOT NULL DEFAULT '',
	grace_ns INTEGER NOT NULL DEFAULT 0,
	by       TEXT    NOT NULL DEFAULT '',
	at       INTEGER,
	PRIMARY KEY (run_id, n)
) WITHOUT ROWID;

CREATE TABLE machines (
	run_id          TEXT    NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	machine         TEXT    NOT NULL,
	n               INTEGER NOT NULL, -- order added
	status          TEXT    NOT NULL,
	exit_code       INTEGER,
	reason          TEXT    NOT NULL DEFAULT '',
	signal_name     TEXT    NOT NULL DEFAULT '',
	error           TEXT    NOT NULL DEFAULT '',
	pid             INTEGER NOT NULL DEFAULT 0,
	dispatched_at   INTEGER,
	connected_at    INTEGER,
	started_at      INTEGER,
	finished_at     INTEGER,
	last_heartbeat  INTEGER,
	wrapper_version TEXT    NOT NULL DEFAULT '',
	protocol        INTEGER NOT NULL DEFAULT 0,
	output_bytes    INTEGER NOT NULL DEFAULT 0, -- sum of the stored chunks' sizes
	next_seq        INTEGER NOT NULL DEFAULT 0, -- first seq not stored
	late_exit_code  INTEGER,
	late_reason     TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, machine)
);
CREATE UNIQUE INDEX machines_order ON machines (run_id, n);

-- One row per output chunk. end_off is the offset just past the chunk in
-- the machine's whole output, stream_end the same within its stream: both
-- grow with seq, so a read from an offset seeks straight to its chunk.
CREATE TABLE output_chunks (
	run_id     TEXT    NOT NULL,
	machine    TEXT    NOT NULL,
	seq        INTEGER NOT NULL,
	stream     TEXT    NOT NULL,
	at         INTEGER,
	size       INTEGER NOT NULL,
	end_off    INTEGER NOT NULL,
	stream_end INTEGER NOT NULL,
	data       BLOB    NOT NULL, -- last: big values overflow without moving the rest
	PRIMARY KEY (run_id, machine, seq),
	FOREIGN KEY (run_id, machine) REFERENCES machines (run_id, machine) ON DELETE CASCADE
);
CREATE INDEX output_chunks_off    ON output_chunks (run_id, machine, end_off, seq);
CREATE INDEX output_chunks_stream ON output_chunks (run_id, machine, stream, stream_end, seq);

CREATE TABLE overrides (
	job     TEXT    PRIMARY KEY,
	enabled INTEGER NOT NULL,
	set_by  TEXT    NOT NULL DEFAULT '',
	set_at  INTEGER
) WITHOUT ROWID;
`,
	// 2: fire records, one per (job, slot), so that a slot fires at most
	// once across restarts and cores.
	`
CREATE TABLE fires (
	job         TEXT    NOT NULL,
	slot        INTEGER NOT NULL, -- unix nanoseconds UTC
	run_id      TEXT    NOT NULL DEFAULT '',
	recorded_at INTEGER,
	PRIMARY KEY (job, slot)
) WITHOUT ROWID;
`,
	// 3: retention. PruneRuns finds finished runs by finished_at among
	// the runs no longer active; unfinished ones are never in this index.
	`
CREATE INDEX runs_finished ON runs (finished_at, seq) WHERE active = 0;
`,
	// 4: the output cap and the maintenance override. A machine keeps the
	// cap it was added with and how many bytes it stores; each stream's
	// size moves to a table of its own, because the chunk that held a
	// stream's end may be dropped. The maintenance override is one row.
	`
ALTER TABLE machines ADD COLUMN output_cap   INTEGER NOT NULL DEFAULT 0; -- 0: no cap
ALTER TABLE machines ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0; -- output_bytes less what the cap dropped
UPDATE machines SET stored_bytes = output_bytes;

CREATE TABLE output_streams (
	run_id  TEXT    NOT NULL,
	machine TEXT    NOT NULL,
	stream  TEXT    NOT NULL,
	bytes   INTEGER NOT NULL, -- the stream's size, dropped bytes included
	PRIMARY KEY (run_id, machine, stream),
	FOREIGN KEY (run_id, machine) REFERENCES machines (run_id, machine) ON DELETE CASCADE
) WITHOUT ROWID;
INSERT INTO output_streams (run_id, machine, stream, bytes)
	SELECT run_id, machine, stream, max(stream_end) FROM output_chunks GROUP BY run_id, machine, stream;

CREATE TABLE maintenance (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	global   INTEGER NOT NULL,
	machines TEXT    NOT NULL DEFAULT '[]', -- JSON array of machine ids
	set_by   TEXT    NOT NULL DEFAULT '',
	set_at   INTEGER
);
`,
	// 5: the notification outbox. A row is a notification and its lease:
	// lease_until is set from a claim to its finish, lease_owner is the
	// claimer and, after the finish, the finisher. The claim seeks the
	// pending rows by due time through notifications_due; the listing and
	// PruneRuns go by creation time, by state or job when they filter.
	`
CREATE TABLE notifications (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- enqueue order, breaks ties
	id           TEXT    NOT NULL UNIQUE,
	notifier     TEXT    NOT NULL,
	job          TEXT    NOT NULL DEFAULT '',
	run_id       TEXT    NOT NULL DEFAULT '',
	kind         TEXT    NOT NULL DEFAULT '',
	event        BLOB,
	created_at   INTEGER NOT NULL, -- unix nanoseconds UTC
	due_at       INTEGER NOT NULL,
	attempts     INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT    NOT NULL DEFAULT '',
	state        TEXT    NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
	delivered_at INTEGER,
	lease_owner  TEXT    NOT NULL DEFAULT '',
	lease_until  INTEGER, -- NULL: not leased
	finished_at  INTEGER  -- the last finish's time
);
CREATE INDEX notifications_due     ON notifications (due_at, seq) WHERE state = 'pending';
CREATE INDEX notifications_created ON notifications (created_at, seq);
CREATE INDEX notifications_state   ON notifications (state, created_at, seq);
CREATE INDEX notifications_job     ON notifications (job, created_at, seq);
`,
	// 6: the audit log of operator actions. AUTOINCREMENT keeps an id from
	// being given again after the newest entries are pruned, so that a
	// page's BeforeID never meets a newer entry. The listing seeks by id,
	// by job, token or action; PruneRuns by time through audit_at.
	`
CREATE TABLE audit (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	at      INTEGER NOT NULL, -- unix nanoseconds UTC
	by      TEXT    NOT NULL DEFAULT '',
	action  TEXT    NOT NULL DEFAULT '',
	via     TEXT    NOT NULL DEFAULT '',
	remote  TEXT    NOT NULL DEFAULT '',
	job     TEXT    NOT NULL DEFAULT '',
	run_id  TEXT    NOT NULL DEFAULT '',
	machine TEXT    NOT NULL DEFAULT '',
	detail  TEXT    NOT NULL DEFAULT '',
	outcome TEXT    NOT NULL DEFAULT '',
	error   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_at     ON audit (at);
CREATE INDEX audit_job    ON audit (job, id);
CREATE INDEX audit_by     ON audit (by, id);
CREATE INDEX audit_action ON audit (action, id);
`,
	// 7: large output chunks in files beside the database (outfiles.go).
	// file_off is where a chunk's bytes are in its run's output file, and
	// its data is then empty; NULL keeps them in data, as every chunk
	// written before this version does.
	`
ALTER TABLE output_chunks ADD COLUMN file_off INTEGER;
`,
}

// schemaVersion is the version this binary brings a database to.
var schemaVersion = len(migrations)

// migrate applies the migrations the database lacks, in one transaction.
func migrate(ctx context.Context, db *sql.DB, path string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate sqlite store %s: %w", path, wrapErr(err))
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate sqlite store %s: %w", path, wrapErr(err))
	}
	if version > schemaVersion {
		return fmt.Errorf("sqlite store %s has schema version %d, newer than this binary's %d: run a newer saltpeter, or restore a backup made for this version",
			path, version, schemaVersion)
	}
	if version == schemaVersion {
		return tx.Rollback()
	}
	for v := version; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate sqlite store %s to version %d: %w", path, v+1, wrapErr(err))
		}
	}
	// PRAGMA takes no parameters; schemaVersion is ours, not input.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("migrate sqlite store %s: set version: %w", path, wrapErr(err))
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate sqlite store %s: commit: %w", path, wrapErr(err))
	}
	return nil
}

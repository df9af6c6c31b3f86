package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are applied in order; migrations[i] takes the schema from
// version i to i+1. Never edit one that has shipped: add another.
var migrations = []string{
	// 1: runs, machines, output, overrides.
	`
CREATE TABLE runs (
	id               text PRIMARY KEY,
	created          bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
	job              text NOT NULL,
	trigger          text NOT NULL DEFAULT '',
	scheduled_for_ns bigint,
	started_at_ns    bigint,
	finished_at_ns   bigint,
	status           text NOT NULL DEFAULT '',
	reason           text NOT NULL DEFAULT '',
	requested_by     text NOT NULL DEFAULT '',
	killed_by        text NOT NULL DEFAULT '',
	killed_at_ns     bigint,
	spec             bytea,
	-- ListRuns orders by started_at, or scheduled_for while it is unset,
	-- newest first; an unset time sorts oldest.
	sort_ns bigint GENERATED ALWAYS AS
		(COALESCE(started_at_ns, scheduled_for_ns, -9223372036854775808)) STORED
);
CREATE INDEX runs_sort ON runs (sort_ns DESC, created DESC);
CREATE INDEX runs_job_sort ON runs (job, sort_ns DESC, created DESC);
CREATE INDEX runs_status_sort ON runs (status, sort_ns DESC, created DESC);
CREATE INDEX runs_active_sort ON runs (sort_ns DESC, created DESC)
	WHERE status IN ('', 'pending', 'running');

CREATE TABLE run_actions (
	run_id   text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	seq      bigint GENERATED ALWAYS AS IDENTITY,
	kind     text NOT NULL,
	machine  text NOT NULL DEFAULT '',
	signal   text NOT NULL DEFAULT '',
	grace_ns bigint NOT NULL DEFAULT 0,
	by_name  text NOT NULL DEFAULT '',
	at_ns    bigint,
	PRIMARY KEY (run_id, seq)
);

CREATE TABLE machines (
	run_id            text NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
	machine           text NOT NULL CHECK (machine <> ''),
	ord               bigint GENERATED ALWAYS AS IDENTITY,
	status            text NOT NULL,
	exit_code         integer,
	reason            text NOT NULL DEFAULT '',
	signal_name       text NOT NULL DEFAULT '',
	error             text NOT NULL DEFAULT '',
	pid               integer NOT NULL DEFAULT 0,
	dispatched_at_ns  bigint,
	connected_at_ns   bigint,
	started_at_ns     bigint,
	finished_at_ns    bigint,
	last_heartbeat_ns bigint,
	wrapper_version   text NOT NULL DEFAULT '',
	protocol          integer NOT NULL DEFAULT 0,
	output_bytes      bigint NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
	next_seq          bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
	late_exit_code    integer,
	late_reason       text NOT NULL DEFAULT '',
	PRIMARY KEY (run_id, machine)
);
CREATE INDEX machines_run_ord ON machines (run_id, ord);

-- One row per stored chunk. end_off is the byte offset just past the
-- chunk in the machine's output of every stream, stream_end the same in
-- its own stream's output: both only grow with seq, so a read from an
-- offset seeks the index instead of summing lengths.
CREATE TABLE output (
	run_id     text NOT NULL,
	machine    text NOT NULL,
	seq        bigint NOT NULL CHECK (seq >= 0),
	stream     text NOT NULL,
	data       bytea NOT NULL,
	at_ns      bigint,
	end_off    bigint NOT NULL,
	stream_end bigint NOT NULL,
	PRIMARY KEY (run_id, machine, seq),
	FOREIGN KEY (run_id, machine) REFERENCES machines (run_id, machine) ON DELETE CASCADE
);
CREATE INDEX output_end ON output (run_id, machine, end_off);
CREATE INDEX output_stream_end ON output (run_id, machine, stream, stream_end);

CREATE TABLE overrides (
	job       text PRIMARY KEY CHECK (job <> ''),
	enabled   boolean NOT NULL,
	set_by    text NOT NULL DEFAULT '',
	set_at_ns bigint
);
`,
	// 2: fire records. The primary key, not a check in Go, is what lets a
	// (job, slot) fire once across restarts and cores sharing the
	// database; slot is the scheduled instant in unix nanoseconds (UTC),
	// so one instant in any zone is one slot.
	`
CREATE TABLE fires (
	job         text NOT NULL,
	slot        bigint NOT NULL,
	run_id      text NOT NULL,
	recorded_at bigint NOT NULL,
	PRIMARY KEY (job, slot)
);
`,
	// 3: PruneRuns picks finished runs by finish time, oldest first.
	`
CREATE INDEX runs_finished ON runs (finished_at_ns)
	WHERE status NOT IN ('', 'pending', 'running');
`,
	// 4: the output cap and the maintenance override. A machine keeps the
	// cap it was added with and how many bytes it stores; each stream's
	// size moves to a table of its own, because the chunk that held a
	// stream's end may be dropped. The maintenance override is one row.
	`
ALTER TABLE machines ADD COLUMN output_cap bigint NOT NULL DEFAULT 0 CHECK (output_cap >= 0);
ALTER TABLE machines ADD COLUMN stored_bytes bigint NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0);
UPDATE machines SET stored_bytes = output_bytes;

CREATE TABLE output_streams (
	run_id  text NOT NULL,
	machine text NOT NULL,
	stream  text NOT NULL,
	bytes   bigint NOT NULL, -- the stream's size, dropped bytes included
	PRIMARY KEY (run_id, machine, stream),
	FOREIGN KEY (run_id, machine) REFERENCES machines (run_id, machine) ON DELETE CASCADE
);
INSERT INTO output_streams (run_id, machine, stream, bytes)
	SELECT run_id, machine, stream, max(stream_end) FROM output GROUP BY run_id, machine, stream;

CREATE TABLE maintenance (
	id        integer PRIMARY KEY CHECK (id = 1),
	global    boolean NOT NULL,
	machines  text[] NOT NULL DEFAULT '{}',
	set_by    text NOT NULL DEFAULT '',
	set_at_ns bigint
);
`,
	// 5: the notification outbox. A row is a notification and its lease:
	// lease_until_ns is set from a claim to its finish, lease_owner is the
	// claimer and, after the finish, the finisher. Claims pick pending rows
	// by due time through notifications_due, FOR UPDATE SKIP LOCKED, so
	// cores claiming at once never take the same row; the listing and
	// PruneRuns go by creation time, by state or job when they filter.
	`
CREATE TABLE notifications (
	id              text PRIMARY KEY CHECK (id <> ''),
	seq             bigint GENERATED ALWAYS AS IDENTITY UNIQUE, -- enqueue order, breaks ties
	notifier        text NOT NULL,
	job             text NOT NULL DEFAULT '',
	run_id          text NOT NULL DEFAULT '',
	kind            text NOT NULL DEFAULT '',
	event           bytea,
	created_at_ns   bigint NOT NULL,
	due_at_ns       bigint NOT NULL,
	attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
	last_error      text NOT NULL DEFAULT '',
	state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
	delivered_at_ns bigint,
	lease_owner     text NOT NULL DEFAULT '',
	lease_until_ns  bigint, -- NULL: not leased
	finished_at_ns  bigint  -- the last finish's time
);
CREATE INDEX notifications_due ON notifications (due_at_ns, seq) WHERE state = 'pending';
CREATE INDEX notifications_created ON notifications (created_at_ns DESC, seq DESC);
CREATE INDEX notifications_state ON notifications (state, created_at_ns DESC, seq DESC);
CREATE INDEX notifications_job ON notifications (job, created_at_ns DESC, seq DESC);
`,
	// 6: the audit log of operator actions. The id is an identity: a
	// sequence, which never gives a value twice (a prune frees none for
	// reuse) and gives each core's later append a larger one. The listing
	// walks the primary key, or the job, token or action index, from
	// before_id down; PruneRuns picks entries by time through audit_at.
	`
CREATE TABLE audit (
	id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	at_ns   bigint NOT NULL,
	by_name text NOT NULL DEFAULT '',
	action  text NOT NULL DEFAULT '',
	via     text NOT NULL DEFAULT '',
	remote  text NOT NULL DEFAULT '',
	job     text NOT NULL DEFAULT '',
	run_id  text NOT NULL DEFAULT '',
	machine text NOT NULL DEFAULT '',
	detail  text NOT NULL DEFAULT '',
	outcome text NOT NULL DEFAULT '',
	error   text NOT NULL DEFAULT ''
);
CREATE INDEX audit_at ON audit (at_ns);
CREATE INDEX audit_job ON audit (job, id DESC);
CREATE INDEX audit_by ON audit (by_name, id DESC);
CREATE INDEX audit_action ON audit (action, id DESC);
`,
}

// SchemaVersion is the schema version this binary writes and reads.
var SchemaVersion = len(migrations)

// migrateLockKey is the pg_advisory_xact_lock key that serialises
// migrations between cores starting at once ("saltpete" in ASCII).
const migrateLockKey int64 = 0x73616c7470657465

// migrate brings the database's schema to SchemaVersion in one
// transaction, under an advisory lock so that several cores starting
// together migrate once. A database newer than the binary is refused.
func migrate(ctx context.Context, conn beginner) error {
	return migrateTo(ctx, conn, SchemaVersion)
}

type beginner interface {
	Begin(context.Context) (pgx.Tx, error)
}

// migrateTo is migrate to schema version target (at most SchemaVersion),
// for tests that need a database an older binary left.
func migrateTo(ctx context.Context, conn beginner, target int) error {
	if target < 0 || target > SchemaVersion {
		return fmt.Errorf("no schema version %d: this binary knows 0 to %d", target, SchemaVersion)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrateLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `
CREATE TABLE IF NOT EXISTS saltpeter_migrations (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("create migrations table: %w", err)
	}
	var have int
	if err := tx.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM saltpeter_migrations`).Scan(&have); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if have > SchemaVersion {
		return fmt.Errorf("database schema version %d is newer than this binary's %d: upgrade saltpeter", have, SchemaVersion)
	}
	for v := have + 1; v <= target; v++ {
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("apply schema migration %d: %w", v, err)
		}
		// The primary key refuses a second application outright.
		if _, err := tx.Exec(ctx, `INSERT INTO saltpeter_migrations (version) VALUES ($1)`, v); err != nil {
			return fmt.Errorf("record schema migration %d: %w", v, err)
		}
	}
	return tx.Commit(ctx)
}

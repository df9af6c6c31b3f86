// Package postgres owns the PostgreSQL store.Store: run state for sites
// that run several cores against one database.
//
// # What it owns
//
// The tables runs, run_actions, machines, output, output_streams (each
// stream's size, which the output cap must not lose with the chunk that
// ended it), overrides, maintenance (one row), fires ((job, slot) is the
// primary key), notifications (the outbox: each notification with its
// lease owner and end), audit (the operator actions, by an identity id),
// and saltpeter_migrations, which records the schema version. Open
// applies the migrations the database lacks in one transaction under
// pg_advisory_xact_lock, so cores starting together migrate once; a
// database whose schema is newer than the binary is refused, naming both
// versions.
//
// Times are unix nanoseconds in bigint columns, because timestamptz keeps
// only microseconds and the store must return what it was given; the zero
// time is NULL, and times outside the years 1678 to 2262 are refused.
// Times come back in UTC.
//
// # What a commit survives
//
// Every call returns after its transaction commits: AppendOutput's
// acknowledgement means the chunk is committed. How durable a commit is
// depends on the server: with synchronous_commit on (PostgreSQL's
// default) a commit is flushed to the WAL and survives a server crash;
// with it off, the last few hundred milliseconds of commits can be lost
// in a server crash (never corrupted); with synchronous standbys and
// synchronous_commit = remote_apply it also survives losing the primary.
// The DSN may set it per session (options='-c synchronous_commit=on').
//
// # Several cores
//
// Nothing is coordinated in process: the database's constraints and row
// locks are what make sharing safe. AppendOutput locks the machine's row
// (SELECT ... FOR UPDATE), stores the chunk under the primary key
// (run_id, machine, seq) and moves next_seq with a guarded
// UPDATE ... WHERE next_seq = seq, all in one transaction: a seq is stored
// once whichever core receives it, and a duplicate is answered with the
// next seq. AppendOutputBatch locks its machines in one order so batches
// from two cores cannot deadlock. UpdateMachine's OnlyIfNotFinal is a
// WHERE clause on the status, so two cores racing to finish a machine
// cannot overwrite each other's result. Run ids are expected to be unique
// across cores (CreateRun of an existing id fails with store.ErrExists).
//
// The outbox is shared the same way. Enqueueing is INSERT ... ON CONFLICT
// (id) DO NOTHING, so cores enqueueing one id store it once. A claim picks
// due, unleased rows FOR UPDATE SKIP LOCKED and leases them in the same
// statement: a row another core is claiming is skipped, and one it has
// leased no longer matches, so each notification goes to one core at a
// time. A finish locks its row and checks the lease before writing, so it
// either lands before another core's claim (which then skips the row) or
// fails with store.ErrLeaseLost after it.
//
// The audit log's ids come from its identity sequence, which no two cores
// share a value of and a prune never hands out again; an append that
// starts after another returned gets a larger id. Appends in flight at
// once may commit out of id order, so a listing meanwhile may show a
// larger id before a smaller one commits.
//
// Each chunk row carries its end offset in the machine's output and in
// its stream's, so ReadOutput from an offset seeks an index rather than
// summing what comes before.
//
// # Errors
//
// Errors wrap the store's: a unique violation is store.ErrExists, a
// missing run or machine store.ErrNotFound, a lost, refused or closed
// connection store.ErrUnavailable; a cancelled context fails the call
// with the context's error.
//
// # Tests
//
// The tests start their own PostgreSQL server from /usr/lib/postgresql/*/bin
// (as the postgres user when run as root) or use SALTPETER_POSTGRES_DSN;
// without either they skip, or fail when SALTPETER_REQUIRE=all.
package postgres

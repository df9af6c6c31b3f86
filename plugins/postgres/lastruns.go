package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// LastRuns and LastFires answer for many jobs in one snapshot: a
// statement each for the runs, their first machines, their counts and
// their actions, whatever the number of jobs (names and ids go in as one
// array). Every step seeks an index: a job's latest run is the first
// entry of runs_job_sort (job, sort_ns DESC, created DESC), a run's
// machines are found through the primary key (run_id, machine), a job's
// latest slot is the last entry of the fires primary key (job, slot).
// Counting a run's machines by status reads each of them once; the first
// machines by name are the top of that run's machines in byte order
// (COLLATE "C", whatever the database's collation), so that every store
// answers the same machines.

// The jobs LastRuns answers for, as jobs(name): those named ($1), or,
// with none named, every job with a run, found by skipping through
// runs_job_sort from one job to the next (a seek per job, not a read of
// every run).
const (
	lastRunsNamed = `jobs(name) AS (SELECT DISTINCT name FROM unnest($1::text[]) AS u(name))`
	lastRunsEvery = `jobs(name) AS (
	(SELECT job FROM runs ORDER BY job LIMIT 1)
	UNION ALL
	SELECT (SELECT job FROM runs WHERE job > jobs.name ORDER BY job LIMIT 1) FROM jobs WHERE jobs.name IS NOT NULL)`
)

// lastRunsSQL selects each job's latest run in ListRuns's order.
func lastRunsSQL(jobs string) string {
	return `WITH RECURSIVE ` + jobs + `
SELECT r.* FROM jobs CROSS JOIN LATERAL (
	SELECT ` + runCols + ` FROM runs WHERE runs.job = jobs.name
	ORDER BY sort_ns DESC, created DESC LIMIT 1) AS r
WHERE jobs.name IS NOT NULL`
}

// lastRunsMachinesSQL selects the first $2 machines by name (in byte
// order) of each run in $1.
const lastRunsMachinesSQL = `SELECT m.* FROM unnest($1::text[]) AS ids(id) CROSS JOIN LATERAL (
	SELECT ` + machineCols + ` FROM machines WHERE run_id = ids.id
	ORDER BY machine COLLATE "C" LIMIT $2) AS m`

// lastRunsCountsSQL counts the machines of each run in $1 by status.
const lastRunsCountsSQL = `SELECT run_id, status, count(*) FROM machines
WHERE run_id = ANY($1) GROUP BY run_id, status`

// lastRunsActionsSQL selects the actions of each run in $1 in order.
const lastRunsActionsSQL = `SELECT run_id, kind, machine, signal, grace_ns, by_name, at_ns
FROM run_actions WHERE run_id = ANY($1) ORDER BY run_id, seq`

// LastRuns returns each named job's latest run (every job's when none is
// named) with its first q.Machines machines by name and all of them
// counted by status, ordered by job; see store.Store.
func (s *Store) LastRuns(ctx context.Context, q store.LastRunsQuery) ([]store.RunSummary, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	query, args := lastRunsSQL(lastRunsEvery), []any(nil)
	if len(q.Jobs) > 0 {
		query, args = lastRunsSQL(lastRunsNamed), []any{q.Jobs}
	}
	var out []store.RunSummary
	err := s.inTx(ctx, readOnly, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return err
			}
			r.Machines = []store.Machine{}
			out = append(out, store.RunSummary{Run: r, MachineCounts: map[string]int{}})
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		ids := make([]string, len(out))
		byID := make(map[string]*store.RunSummary, len(out))
		for i := range out {
			ids[i] = out[i].Run.ID
			byID[ids[i]] = &out[i]
		}
		if q.Machines > 0 {
			if err := lastRunsMachines(ctx, tx, ids, q.Machines, byID); err != nil {
				return err
			}
		}
		if err := lastRunsCounts(ctx, tx, ids, byID); err != nil {
			return err
		}
		return lastRunsActions(ctx, tx, ids, byID)
	})
	if err != nil {
		return nil, s.fail("last runs", err)
	}
	if out == nil {
		out = []store.RunSummary{}
	}
	store.SortRunSummaries(out)
	return out, nil
}

// lastRunsMachines loads the first n machines by name of the runs ids.
func lastRunsMachines(ctx context.Context, tx pgx.Tx, ids []string, n int, byID map[string]*store.RunSummary) error {
	rows, err := tx.Query(ctx, lastRunsMachinesSQL, ids, n)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return err
		}
		r := byID[m.RunID]
		r.Run.Machines = append(r.Run.Machines, m)
	}
	return rows.Err()
}

// lastRunsCounts counts the machines of the runs ids by status.
func lastRunsCounts(ctx context.Context, tx pgx.Tx, ids []string, byID map[string]*store.RunSummary) error {
	rows, err := tx.Query(ctx, lastRunsCountsSQL, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, status string
		var n int64
		if err := rows.Scan(&id, &status, &n); err != nil {
			return err
		}
		byID[id].MachineCounts[status] = int(n)
	}
	return rows.Err()
}

// lastRunsActions loads the actions of the runs ids, in order.
func lastRunsActions(ctx context.Context, tx pgx.Tx, ids []string, byID map[string]*store.RunSummary) error {
	rows, err := tx.Query(ctx, lastRunsActionsSQL, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var a store.Action
		var grace int64
		var at *int64
		if err := rows.Scan(&id, &a.Kind, &a.Machine, &a.Signal, &grace, &a.By, &at); err != nil {
			return err
		}
		a.Grace, a.At = time.Duration(grace), fromNanos(at)
		r := byID[id]
		r.Run.Actions = append(r.Run.Actions, a)
	}
	return rows.Err()
}

// lastFiresSQL selects the latest slot of each job in $1: the last entry
// of the fires primary key for the job, NULL when none.
const lastFiresSQL = `SELECT jobs.name,
	(SELECT slot FROM fires WHERE fires.job = jobs.name ORDER BY slot DESC LIMIT 1)
FROM (SELECT DISTINCT name FROM unnest($1::text[]) AS u(name)) AS jobs`

// LastFires returns the latest slot recorded for each named job that has
// one (not the one recorded last), in UTC.
func (s *Store) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(jobs))
	if len(jobs) == 0 {
		return out, nil
	}
	op := fmt.Sprintf("last fires of %d jobs", len(jobs))
	rows, err := s.pool.Query(ctx, lastFiresSQL, jobs)
	if err != nil {
		return nil, s.fail(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var job string
		var slot *int64
		if err := rows.Scan(&job, &slot); err != nil {
			return nil, s.fail(op, err)
		}
		if slot != nil {
			out[job] = fromNanos(slot)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail(op, err)
	}
	return out, nil
}

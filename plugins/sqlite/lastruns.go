package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// LastRuns and LastFires answer for many jobs in one read transaction,
// a statement each for the runs, their first machines, their counts and
// their actions, whatever the number of jobs. Lists of names and ids go
// in as one JSON array (json_each), so no statement grows with them.
// Every step seeks an index: a job's latest run is the last entry of
// runs_job (job, sort_at, seq), a run's first machines by name the first
// entries of the machines primary key (run_id, machine), a job's latest
// slot the last entry of the fires primary key (job, slot). Counting a
// run's machines by status reads each of them once; nothing else reads a
// machine that is not answered.

// lastRunsJobs is the jobs LastRuns answers for: those named (?1, a JSON
// array), or, with none named, every job with a run, found by skipping
// through runs_job from one job to the next (a seek per job, not a read
// of every run).
const (
	lastRunsNamed = `jobs(job) AS (SELECT DISTINCT value FROM json_each(?1))`
	lastRunsEvery = `jobs(job) AS (
	SELECT min(job) FROM runs
	UNION ALL
	SELECT (SELECT min(job) FROM runs WHERE job > jobs.job) FROM jobs WHERE jobs.job IS NOT NULL)`
)

// lastRunsSQL selects each job's latest run in ListRuns's order (the
// last entry of runs_job for the job), ordered by job.
func lastRunsSQL(jobs string) string {
	return `WITH RECURSIVE ` + jobs + `
SELECT ` + runCols + ` FROM runs WHERE seq IN (
	SELECT (SELECT seq FROM runs WHERE job = jobs.job ORDER BY sort_at DESC, seq DESC LIMIT 1)
	FROM jobs WHERE jobs.job IS NOT NULL)
ORDER BY job`
}

// lastRunsMachinesSQL selects the first ?2 machines by name of each run
// in ?1 (a JSON array of ids): for each run, the rowids of the first ?2
// entries of the primary key's index from the run on, then those rows,
// in rowid order (sorting them by name is cheaper in Go, a run at a
// time, than in a temporary b-tree of whole rows).
const lastRunsMachinesSQL = `SELECT ` + machCols + ` FROM json_each(?1) AS r
JOIN machines ON machines.rowid IN (
	SELECT rowid FROM machines WHERE run_id = r.value ORDER BY machine LIMIT ?2)`

// lastRunsCountsSQL counts the machines of each run in ?1 by status.
const lastRunsCountsSQL = `SELECT run_id, status, count(*) FROM machines
WHERE run_id IN (SELECT value FROM json_each(?1)) GROUP BY run_id, status`

// LastRuns returns each named job's latest run (every job's when none is
// named) with its first q.Machines machines by name and all of them
// counted by status, ordered by job; see store.Store.
func (s *Store) LastRuns(ctx context.Context, q store.LastRunsQuery) ([]store.RunSummary, error) {
	query, args := lastRunsSQL(lastRunsEvery), []any(nil)
	if len(q.Jobs) > 0 {
		names, err := json.Marshal(q.Jobs)
		if err != nil {
			return nil, fmt.Errorf("last runs: %w", err)
		}
		query, args = lastRunsSQL(lastRunsNamed), []any{string(names)}
	}
	out := []store.RunSummary{}
	err := s.read(ctx, func(tx *sql.Tx) error {
		rows, err := s.rq.query(ctx, tx, query, args...)
		if err != nil {
			return s.dbErr(ctx, err)
		}
		byID := map[string]*store.RunSummary{}
		for rows.Next() {
			r, err := scanRun(rows)
			if err != nil {
				rows.Close()
				return s.dbErr(ctx, err)
			}
			r.Machines = []store.Machine{}
			out = append(out, store.RunSummary{Run: r, MachineCounts: map[string]int{}})
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.dbErr(ctx, err)
		}
		if len(out) == 0 {
			return nil
		}
		ids := make([]string, len(out))
		for i := range out {
			ids[i] = out[i].Run.ID
			byID[ids[i]] = &out[i]
		}
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		runIDs := string(b)
		if q.Machines > 0 {
			if err := s.lastRunsMachines(ctx, tx, runIDs, q.Machines, byID); err != nil {
				return err
			}
		}
		if err := s.lastRunsCounts(ctx, tx, runIDs, byID); err != nil {
			return err
		}
		return s.lastRunsActions(ctx, tx, runIDs, byID)
	})
	if err != nil {
		return nil, fmt.Errorf("last runs: %w", err)
	}
	return out, nil
}

// lastRunsMachines loads the first n machines by name of the runs in ids.
func (s *Store) lastRunsMachines(ctx context.Context, tx *sql.Tx, ids string, n int, byID map[string]*store.RunSummary) error {
	rows, err := s.rq.query(ctx, tx, lastRunsMachinesSQL, ids, n)
	if err != nil {
		return s.dbErr(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scanMachine(rows)
		if err != nil {
			return s.dbErr(ctx, err)
		}
		r := byID[m.RunID]
		r.Run.Machines = append(r.Run.Machines, m)
	}
	if err := rows.Err(); err != nil {
		return s.dbErr(ctx, err)
	}
	for _, r := range byID {
		// BINARY, SQLite's collation of the primary key, is byte order.
		slices.SortFunc(r.Run.Machines, func(a, b store.Machine) int { return strings.Compare(a.Machine, b.Machine) })
	}
	return nil
}

// lastRunsCounts counts the machines of the runs in ids by status.
func (s *Store) lastRunsCounts(ctx context.Context, tx *sql.Tx, ids string, byID map[string]*store.RunSummary) error {
	rows, err := s.rq.query(ctx, tx, lastRunsCountsSQL, ids)
	if err != nil {
		return s.dbErr(ctx, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, status string
		var n int
		if err := rows.Scan(&id, &status, &n); err != nil {
			return s.dbErr(ctx, err)
		}
		byID[id].MachineCounts[status] = n
	}
	if err := rows.Err(); err != nil {
		return s.dbErr(ctx, err)
	}
	return nil
}

// lastRunsActions loads the actions of the runs in ids, in order.
func (s *Store) lastRunsActions(ctx context.Context, tx *sql.Tx, ids string, byID map[string]*store.RunSummary) error {
	rows, err := s.rq.query(ctx, tx, fillActionsOfSQL, ids)
	if err != nil {
		return s.dbErr(ctx, err)
	}
	defer rows.Close()
	err = scanActions(rows, func(id string, a store.Action) {
		r := byID[id]
		r.Run.Actions = append(r.Run.Actions, a)
	})
	if err != nil {
		return s.dbErr(ctx, err)
	}
	return nil
}

// lastFiresSQL selects the latest slot of each job in ?1 (a JSON array):
// the last entry of the fires primary key for the job, NULL when none.
const lastFiresSQL = `SELECT jobs.value, (SELECT slot FROM fires WHERE job = jobs.value ORDER BY slot DESC LIMIT 1)
FROM (SELECT DISTINCT value FROM json_each(?1)) AS jobs`

// LastFires returns the latest slot recorded for each named job that has
// one (not the one recorded last), in UTC.
func (s *Store) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	out := make(map[string]time.Time, len(jobs))
	if len(jobs) == 0 {
		// Nothing to read, but a closed store or a done context still
		// fail the call, as every call does.
		done, err := s.begin(ctx)
		if err != nil {
			return nil, err
		}
		done()
		return out, nil
	}
	names, err := json.Marshal(jobs)
	if err != nil {
		return nil, fmt.Errorf("last fires: %w", err)
	}
	err = s.read(ctx, func(tx *sql.Tx) error {
		rows, err := s.rq.query(ctx, tx, lastFiresSQL, string(names))
		if err != nil {
			return s.dbErr(ctx, err)
		}
		defer rows.Close()
		for rows.Next() {
			var job string
			var slot sql.NullInt64
			if err := rows.Scan(&job, &slot); err != nil {
				return s.dbErr(ctx, err)
			}
			if slot.Valid {
				out[job] = fromNanos(slot)
			}
		}
		if err := rows.Err(); err != nil {
			return s.dbErr(ctx, err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("last fires of %d jobs: %w", len(jobs), err)
	}
	return out, nil
}

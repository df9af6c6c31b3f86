package postgres

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/plugins/postgres/pgtest"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestLastRunsPlan: on tables of a realistic size (3,000 jobs of three
// runs, one run of 5,000 machines, 20 slots a job), analyzed, every
// statement of LastRuns and LastFires reaches runs, machines, actions
// and fires through an index, never by a sequential scan of a table
// (which would read every run or machine the database keeps). The first
// machines by name in byte order are sorted from the run's machines,
// found through an index: the primary key's order is the database's
// collation, which need not be byte order, and counting the run's
// machines reads them all anyway.
func TestLastRunsPlan(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: pgtest.FreshDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, q := range []string{
		`INSERT INTO runs (id, job, status, started_at_ns)
			SELECT 'r' || j || '-' || k, 'job-' || j, 'succeeded', j * 1000 + k
			FROM generate_series(1, 3000) AS j, generate_series(1, 3) AS k`,
		`INSERT INTO machines (run_id, machine, status)
			SELECT id, 'm' || m, 'succeeded' FROM runs, generate_series(1, 5) AS m`,
		`INSERT INTO machines (run_id, machine, status)
			SELECT 'r1-3', 'host-' || m, 'running' FROM generate_series(1, 5000) AS m`,
		`INSERT INTO run_actions (run_id, kind, by_name) SELECT id, 'kill', 'ops' FROM runs`,
		`INSERT INTO fires (job, slot, run_id, recorded_at)
			SELECT 'job-' || j, k, '', 0 FROM generate_series(1, 3000) AS j, generate_series(1, 20) AS k`,
		`ANALYZE`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	jobs := []string{"job-1", "job-7", "job-2999", "nope"}
	ids := []string{"r1-3", "r7-3", "r2999-3"}
	// Each table is reached by an index scan whose condition is the key
	// the statement seeks (a job, a run), not by a scan filtered after.
	// (EXPLAIN does not print the subplan of the recursive step that
	// finds the next job, (SELECT job FROM runs WHERE job > $name ORDER
	// BY job LIMIT 1); it is runs_job_sort's seek, as its first step is.)
	byIndex := func(table, key string) string {
		return `(Index (Only )?Scan( Backward)? using \w+ on ` + table + `\b|Bitmap Index Scan on ` + table + `_\w+)` +
			`[^\n]*\n\s+Index Cond: \(` + key + ` (=|>) `
	}
	statements := []struct {
		name string
		sql  string
		args []any
		want []string // a pattern each, the plan must match
	}{
		{"latest runs of named jobs", lastRunsSQL(lastRunsNamed), []any{jobs}, []string{byIndex("runs", "job")}},
		{"latest runs of every job", lastRunsSQL(lastRunsEvery), nil, []string{byIndex("runs", "job"),
			`Index Only Scan using runs_job_sort on runs runs_1`}},
		{"first machines", lastRunsMachinesSQL, []any{ids, 50}, []string{byIndex("machines", "run_id")}},
		{"machine counts", lastRunsCountsSQL, []any{ids}, []string{byIndex("machines", "run_id")}},
		{"actions", lastRunsActionsSQL, []any{ids}, []string{byIndex("run_actions", "run_id")}},
		{"latest slots", lastFiresSQL, []any{jobs}, []string{`Index Only Scan Backward using fires_pkey on fires[^\n]*\n\s+Index Cond: \(job = `}},
	}
	seq := regexp.MustCompile(`Seq Scan on (runs|machines|run_actions|fires)\b`)
	for _, st := range statements {
		t.Run(st.name, func(t *testing.T) {
			rows, err := s.pool.Query(ctx, "EXPLAIN "+st.sql, st.args...)
			if err != nil {
				t.Fatal(err)
			}
			lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
			if err != nil {
				t.Fatal(err)
			}
			plan := strings.Join(lines, "\n")
			t.Logf("plan:\n%s", plan)
			if m := seq.FindString(plan); m != "" {
				t.Errorf("plan has a %s:\n%s", m, plan)
			}
			for _, w := range st.want {
				if !regexp.MustCompile(w).MatchString(plan) {
					t.Errorf("plan does not match %s:\n%s", w, plan)
				}
			}
		})
	}
	// And the answers are right on these tables too.
	rs, err := s.LastRuns(ctx, store.LastRunsQuery{Jobs: jobs, Machines: 3})
	if err != nil || len(rs) != 3 || rs[0].Run.ID != "r1-3" || rs[0].MachineCounts["running"] != 5000 ||
		len(rs[0].Run.Machines) != 3 || rs[0].Run.Machines[0].Machine != "host-1" || rs[0].Run.Machines[2].Machine != "host-100" {
		t.Errorf("LastRuns = %+v, %v", rs, err)
	}
	fires, err := s.LastFires(ctx, jobs)
	if err != nil || len(fires) != 3 || fires["job-7"].UnixNano() != 20 {
		t.Errorf("LastFires = %v, %v", fires, err)
	}
}

// BenchmarkLastRuns is the jobs list's read with 2,000 jobs of three
// runs of five machines ("five-machines"), and the same with ten of the
// jobs' last run of 2,000 machines ("ten-of-2000-machines"): the last run
// of each, job by job as the API did (ListRuns with Limit 1, every
// machine loaded, then store.SummarizeRun), against one LastRuns, in the
// same iteration; LastFires against LastFire per job (the runner's
// catch-up at start) the same way. It reports each way's milliseconds
// and their ratio.
func BenchmarkLastRuns(b *testing.B) {
	const jobs, shown = 2000, 50
	for _, shape := range []struct {
		name string
		big  int
	}{
		{"five-machines", 0},
		{"ten-of-2000-machines", 10},
	} {
		b.Run(shape.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, Options{DSN: pgtest.FreshDB(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			for _, q := range []string{
				`INSERT INTO runs (id, job, trigger, status, scheduled_for_ns, started_at_ns, spec)
					SELECT 'job-' || j || '-' || k, 'job-' || j, 'schedule', 'succeeded', k * 3600000000000, k * 3600000000000,
						'{"command":"true"}'::bytea
					FROM generate_series(1, 2000) AS j, generate_series(1, 3) AS k`,
				`INSERT INTO machines (run_id, machine, status, exit_code)
					SELECT id, 'host-' || lpad(m::text, 5, '0'), CASE WHEN m % 7 = 0 THEN 'failed' ELSE 'succeeded' END, 0
					FROM runs, generate_series(1, 5) AS m`,
				fmt.Sprintf(`INSERT INTO machines (run_id, machine, status, exit_code)
					SELECT 'job-' || j || '-3', 'host-' || lpad(m::text, 5, '0'), CASE WHEN m %% 7 = 0 THEN 'failed' ELSE 'succeeded' END, 0
					FROM generate_series(1, %d) AS j, generate_series(6, 2000) AS m`, shape.big),
				`INSERT INTO fires (job, slot, run_id, recorded_at)
					SELECT 'job-' || j, k * 3600000000000, 'job-' || j || '-' || k, 0
					FROM generate_series(1, 2000) AS j, generate_series(1, 3) AS k`,
				`ANALYZE`,
			} {
				if _, err := s.pool.Exec(ctx, q); err != nil {
					b.Fatalf("%s: %v", q, err)
				}
			}
			names := make([]string, jobs)
			for j := range names {
				names[j] = fmt.Sprint("job-", j+1)
			}
			sdktest.BenchLastRuns(b, s, names, shown)
		})
	}
}

// TestLastRunsByteOrderWhateverTheCollation: a database whose collation
// is not byte order (here ICU's root locale on the machine names, which
// sorts "alpha" before "Zeta", as en_US would) still answers the first
// machines in byte order, as every store does.
func TestLastRunsByteOrderWhateverTheCollation(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{DSN: pgtest.FreshDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.pool.Exec(ctx, `ALTER TABLE machines ALTER COLUMN machine TYPE text COLLATE "und-x-icu"`); err != nil {
		t.Skipf("no ICU collation to test with: %v", err)
	}
	run := store.Run{ID: "r1", Job: "j", StartedAt: time.Unix(60, 0), Machines: []store.Machine{
		{Machine: "b9"}, {Machine: "alpha"}, {Machine: "b10"}, {Machine: "Zeta"}}}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT machine FROM machines WHERE run_id = 'r1' ORDER BY machine`)
	if err != nil {
		t.Fatal(err)
	}
	if byDB, err := pgx.CollectRows(rows, pgx.RowTo[string]); err != nil || byDB[0] != "alpha" {
		t.Fatalf("the database orders the names %q, %v: want a collation that is not byte order", byDB, err)
	}
	rs, err := s.LastRuns(ctx, store.LastRunsQuery{Jobs: []string{"j"}, Machines: 3})
	if err != nil || len(rs) != 1 {
		t.Fatalf("LastRuns = %+v, %v", rs, err)
	}
	var got []string
	for _, m := range rs[0].Run.Machines {
		got = append(got, m.Machine)
	}
	if want := []string{"Zeta", "alpha", "b10"}; !slices.Equal(got, want) {
		t.Errorf("first machines %q, want %q (byte order)", got, want)
	}
}

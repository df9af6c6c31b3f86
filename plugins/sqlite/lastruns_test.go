package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestLastRunsPlan: every statement of LastRuns, LastFires and GetRuns
// (each takes its ids or jobs as a JSON array) reaches the runs,
// machines, actions and fires it answers through an index or
// the rowid, never by scanning a table (which would read every run or
// machine the store keeps). The plan is asked of a store holding runs,
// so that the planner sees tables that are not empty.
func TestLastRunsPlan(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "plan.db"))
	ctx := context.Background()
	for i := range 20 {
		run := store.Run{ID: fmt.Sprint("r", i), Job: fmt.Sprint("j", i%4), StartedAt: time.Unix(int64(i), 0),
			Machines: []store.Machine{{Machine: "a"}, {Machine: "b"}}}
		if err := s.CreateRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if _, err := s.RecordFire(ctx, run.Job, run.StartedAt, run.ID); err != nil {
			t.Fatal(err)
		}
	}
	statements := []struct {
		name string
		sql  string
		// want are the tables the statement must search, each by an index.
		want []string
	}{
		{"latest runs of named jobs", lastRunsSQL(lastRunsNamed), []string{"runs"}},
		{"latest runs of every job", lastRunsSQL(lastRunsEvery), []string{"runs"}},
		{"first machines", lastRunsMachinesSQL, []string{"machines"}},
		{"machine counts", lastRunsCountsSQL, []string{"machines"}},
		{"actions", fillActionsOfSQL, []string{"run_actions"}},
		{"runs by id", getRunsSQL, []string{"runs"}},
		{"machines of runs", fillMachinesOfSQL, []string{"machines"}},
		{"latest slots", lastFiresSQL, []string{"fires"}},
	}
	scan := regexp.MustCompile(`^SCAN (runs|machines|run_actions|fires)\b`)
	for _, st := range statements {
		t.Run(st.name, func(t *testing.T) {
			rows, err := s.r.QueryContext(ctx, "EXPLAIN QUERY PLAN "+st.sql, `["j1","j2"]`, 50)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			text := strings.Join(plan, "\n")
			for _, step := range plan {
				if scan.MatchString(step) {
					t.Errorf("plan scans a table (%q):\n%s", step, text)
				}
			}
			for _, table := range st.want {
				if !regexp.MustCompile(`SEARCH ` + table + ` USING .*(INDEX|PRIMARY KEY)`).MatchString(text) {
					t.Errorf("plan does not search %s by an index:\n%s", table, text)
				}
			}
		})
	}
}

// lastRunsFixture fills s with jobs runs: each job has three runs of
// five machines, the latest of the first big jobs bigMachines machines.
func lastRunsFixture(tb testing.TB, s store.Store, jobs, big, bigMachines int) []string {
	tb.Helper()
	ctx := context.Background()
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	names := make([]string, jobs)
	for j := range jobs {
		names[j] = fmt.Sprintf("job-%05d", j)
		for k := range 3 {
			n := 5
			if k == 2 && j < big {
				n = bigMachines
			}
			ms := make([]store.Machine, n)
			for m := range ms {
				st := store.StatusSucceeded
				if m%7 == 0 {
					st = store.StatusFailed
				}
				ms[m] = store.Machine{Machine: fmt.Sprintf("host-%05d", m), Status: st, ExitCode: new(int)}
			}
			run := store.Run{ID: fmt.Sprintf("%s-%d", names[j], k), Job: names[j], Trigger: store.TriggerSchedule,
				ScheduledFor: base.Add(time.Duration(k) * time.Hour), StartedAt: base.Add(time.Duration(k) * time.Hour),
				Status: store.StatusSucceeded, Spec: []byte(`{"command":"true"}`), Machines: ms}
			if ok, err := s.FireRun(ctx, run); err != nil || !ok {
				tb.Fatalf("FireRun %s: %v, %v", run.ID, ok, err)
			}
		}
	}
	return names
}

// BenchmarkLastRuns is the jobs list's read with 2,000 jobs of three
// runs of five machines ("five-machines"), and the same with ten of the
// jobs' last run of 2,000 machines ("ten-of-2000-machines"): the last run
// of each job, job by job as the API did (ListRuns with Limit 1, every
// machine loaded, then store.SummarizeRun), against one LastRuns, in the
// same iteration, on the store itself and over the plugin's gRPC
// connection. It reports each way's milliseconds and their ratio;
// LastFires against LastFire per job (the runner's catch-up at start) the
// same way.
func BenchmarkLastRuns(b *testing.B) {
	const jobs, bigMachines, shown = 2000, 2000, 50
	for _, shape := range []struct {
		name string
		big  int
	}{
		{"five-machines", 0},
		{"ten-of-2000-machines", 10},
	} {
		b.Run(shape.name, func(b *testing.B) {
			s := benchStore(b)
			names := lastRunsFixture(b, s, jobs, shape.big, bigMachines)
			for _, w := range []struct {
				name string
				s    store.Store
			}{
				{"direct", s},
				{"grpc", store.TestGRPCConn(b, s)},
			} {
				b.Run(w.name, func(b *testing.B) { sdktest.BenchLastRuns(b, w.s, names, shown) })
			}
		})
	}
}

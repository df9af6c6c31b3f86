package sdktest

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The calls that answer for many jobs at once: LastRuns and LastFires.
// Each answer is checked against what the per-job calls (ListRuns with
// Limit 1, GetRun, LastFire) say of the same store.

func mustLastRuns(t *testing.T, s store.Store, q store.LastRunsQuery) []store.RunSummary {
	t.Helper()
	rs, err := s.LastRuns(context.Background(), q)
	if err != nil {
		t.Fatalf("LastRuns(%+v): %v", q, err)
	}
	return rs
}

// summaryJobs lists the jobs of an answer, in its order, with each run.
func summaryJobs(rs []store.RunSummary) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Run.Job+"="+r.Run.ID)
	}
	return out
}

// sameRunFields compares two runs but for their machines; no actions and
// no spec are alike whether nil or empty.
func sameRunFields(got, want store.Run) bool {
	got.Machines, want.Machines = nil, nil
	for _, r := range []*store.Run{&got, &want} {
		if len(r.Actions) == 0 {
			r.Actions = nil
		}
		if len(r.Spec) == 0 {
			r.Spec = nil
		}
	}
	return reflect.DeepEqual(got, want)
}

// checkSummary checks one summary against the whole run: every field of
// the run, the first machines by name with every field, and every
// machine counted. It also checks that ListRuns's latest run of the job
// is that run.
func checkSummary(t *testing.T, s store.Store, got store.RunSummary, machines int) {
	t.Helper()
	ctx := context.Background()
	full := mustGet(t, s, got.Run.ID)
	want := store.SummarizeRun(full, machines)
	if !sameRunFields(got.Run, want.Run) {
		t.Errorf("LastRuns' run %s:\n got %+v\nwant %+v", got.Run.ID, got.Run, want.Run)
	}
	if len(got.Run.Machines) != len(want.Run.Machines) {
		t.Errorf("run %s: %d machines, want %d (of %d, asked for %d)", got.Run.ID, len(got.Run.Machines),
			len(want.Run.Machines), len(full.Machines), machines)
	} else {
		for i := range want.Run.Machines {
			if g, w := got.Run.Machines[i], want.Run.Machines[i]; !reflect.DeepEqual(g, w) {
				t.Errorf("run %s machine %d:\n got %+v\nwant %+v", got.Run.ID, i, g, w)
				break
			}
		}
	}
	if got.MachineCounts == nil || !maps.Equal(got.MachineCounts, want.MachineCounts) {
		t.Errorf("run %s: counts %v, want %v", got.Run.ID, got.MachineCounts, want.MachineCounts)
	}
	latest, err := s.ListRuns(ctx, store.RunFilter{Job: got.Run.Job, Limit: 1})
	if err != nil || len(latest) != 1 || latest[0].ID != got.Run.ID {
		t.Errorf("LastRuns answers run %s for %s; ListRuns' latest is %v, %v", got.Run.ID, got.Run.Job,
			summaryJobs([]store.RunSummary{{Run: firstRun(latest)}}), err)
	}
}

func firstRun(rs []store.Run) store.Run {
	if len(rs) == 0 {
		return store.Run{}
	}
	return rs[0]
}

func testLastRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got := mustLastRuns(t, s, store.LastRunsQuery{Machines: 5}); len(got) != 0 {
		t.Fatalf("LastRuns on an empty store = %v, want none", summaryJobs(got))
	}
	code := func(c int) *int { return &c }
	runs := []store.Run{
		// backup: the latest by StartedAt is "b-new", created before the
		// older "b-old-late"; "b-pending" has no StartedAt and orders by
		// its ScheduledFor, which is earlier.
		{ID: "b-new", Job: "backup", Trigger: store.TriggerManual, ScheduledFor: t0.Add(2 * time.Hour),
			StartedAt: t0.Add(2*time.Hour + time.Second), Status: store.StatusRunning, RequestedBy: "alice",
			Spec:     []byte(`{"command":"backup"}`),
			Actions:  []store.Action{{Kind: "signal", Machine: "db2", Signal: "SIGINT", Grace: time.Second, By: "ops", At: t0.Add(3 * time.Hour)}},
			Machines: []store.Machine{{Machine: "db2", Status: store.StatusFailed, ExitCode: code(3)}, {Machine: "db1", Status: store.StatusSucceeded, ExitCode: code(0)}, {Machine: "db3"}}},
		{ID: "b-old-late", Job: "backup", StartedAt: t0, Status: store.StatusSucceeded,
			Machines: []store.Machine{{Machine: "db1", Status: store.StatusSucceeded}}},
		{ID: "b-pending", Job: "backup", ScheduledFor: t0.Add(time.Hour), Status: store.StatusPending},
		// report: two runs started at the same instant; the one created
		// last is the latest, as in ListRuns.
		{ID: "r-tie-1", Job: "report", StartedAt: t0.Add(time.Hour), Status: store.StatusFailed,
			Machines: []store.Machine{{Machine: "x", Status: store.StatusFailed}}},
		{ID: "r-tie-2", Job: "report", StartedAt: t0.Add(time.Hour), Status: store.StatusSucceeded,
			Machines: []store.Machine{{Machine: "y", Status: store.StatusSucceeded}}},
		// future: a run not started yet orders by its slot, ahead of one
		// that started before it.
		{ID: "f-started", Job: "future", StartedAt: t0, Status: store.StatusSucceeded},
		{ID: "f-queued", Job: "future", ScheduledFor: t0.Add(24 * time.Hour), Status: store.StatusPending},
		// empty: its run has no machines (yet).
		{ID: "e-1", Job: "empty", StartedAt: t0, Status: store.StatusRunning},
		// Names in byte order: upper case before lower, "b10" before "b9".
		{ID: "n-1", Job: "Names", StartedAt: t0, Status: store.StatusRunning,
			Machines: []store.Machine{{Machine: "b9"}, {Machine: "alpha"}, {Machine: "b10"}, {Machine: "Zeta"}, {Machine: "é"}}},
	}
	for _, r := range runs {
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun %s: %v", r.ID, err)
		}
	}
	all := []string{"Names=n-1", "backup=b-new", "empty=e-1", "future=f-queued", "report=r-tie-2"}
	cases := []struct {
		name string
		q    store.LastRunsQuery
		want []string
	}{
		{"every job", store.LastRunsQuery{Machines: 2}, all},
		{"every job, no machines", store.LastRunsQuery{}, all},
		{"one job", store.LastRunsQuery{Jobs: []string{"backup"}, Machines: 10}, []string{"backup=b-new"}},
		{"named out of order, twice, and without runs", store.LastRunsQuery{Jobs: []string{"report", "nope", "backup", "report", ""}, Machines: 1},
			[]string{"backup=b-new", "report=r-tie-2"}},
		{"only jobs without runs", store.LastRunsQuery{Jobs: []string{"nope", "never"}, Machines: 1}, []string{}},
		{"ties", store.LastRunsQuery{Jobs: []string{"report"}, Machines: 1}, []string{"report=r-tie-2"}},
		{"scheduled, not started", store.LastRunsQuery{Jobs: []string{"future"}, Machines: 1}, []string{"future=f-queued"}},
		{"run without machines", store.LastRunsQuery{Jobs: []string{"empty"}, Machines: 3}, []string{"empty=e-1"}},
		{"names in byte order", store.LastRunsQuery{Jobs: []string{"Names"}, Machines: 4}, []string{"Names=n-1"}},
		{"more machines asked than there are", store.LastRunsQuery{Jobs: []string{"Names", "backup"}, Machines: 100},
			[]string{"Names=n-1", "backup=b-new"}},
		{"negative machines", store.LastRunsQuery{Jobs: []string{"backup"}, Machines: -1}, []string{"backup=b-new"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mustLastRuns(t, s, c.q)
			if fmt.Sprint(summaryJobs(got)) != fmt.Sprint(c.want) {
				t.Fatalf("LastRuns(%+v) = %v, want %v", c.q, summaryJobs(got), c.want)
			}
			for _, r := range got {
				checkSummary(t, s, r, max(c.q.Machines, 0))
			}
		})
	}
	t.Run("first machines by name", func(t *testing.T) {
		got := mustLastRuns(t, s, store.LastRunsQuery{Jobs: []string{"Names", "backup"}, Machines: 4})
		var names [][]string
		for _, r := range got {
			var ns []string
			for _, m := range r.Run.Machines {
				ns = append(ns, m.Machine)
			}
			names = append(names, ns)
		}
		want := [][]string{{"Zeta", "alpha", "b10", "b9"}, {"db1", "db2", "db3"}}
		if !reflect.DeepEqual(names, want) {
			t.Errorf("machines = %q, want %q", names, want)
		}
		if c := got[1].MachineCounts; len(c) != 3 || c[store.StatusPending] != 1 || c[store.StatusFailed] != 1 || c[store.StatusSucceeded] != 1 {
			t.Errorf("backup's counts = %v, want one pending, one failed, one succeeded", c)
		}
	})
	t.Run("follows later writes", func(t *testing.T) {
		// A machine's new status is counted; a newer run takes over,
		// machines added after it was created included.
		if err := s.UpdateMachine(ctx, "b-new", "db3", store.MachineUpdate{Status: ptr(store.StatusFailed)}); err != nil {
			t.Fatal(err)
		}
		got := mustLastRuns(t, s, store.LastRunsQuery{Jobs: []string{"backup"}})
		if c := got[0].MachineCounts; len(got) != 1 || c[store.StatusFailed] != 2 || c[store.StatusPending] != 0 {
			t.Errorf("after db3 failed: %v with counts %v, want 2 failed", summaryJobs(got), c)
		}
		next := store.Run{ID: "b-next", Job: "backup", StartedAt: t0.Add(5 * time.Hour), Status: store.StatusRunning}
		if err := s.CreateRun(ctx, next); err != nil {
			t.Fatal(err)
		}
		if err := s.AddMachines(ctx, "b-next", []store.Machine{{Machine: "w2"}, {Machine: "w1", Status: store.StatusSkipped}}); err != nil {
			t.Fatal(err)
		}
		got = mustLastRuns(t, s, store.LastRunsQuery{Jobs: []string{"backup"}, Machines: 1})
		if len(got) != 1 || got[0].Run.ID != "b-next" {
			t.Fatalf("after a newer run: %v, want backup=b-next", summaryJobs(got))
		}
		checkSummary(t, s, got[0], 1)
	})
	t.Run("cancelled context", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.LastRuns(cancelled, store.LastRunsQuery{Machines: 1}); err == nil {
			t.Error("LastRuns with a cancelled context succeeded")
		}
	})
}

// testLastRunsManyMachines: a run of many machines, added in no order
// and in several statuses, answers its first machines by name and counts
// them all; so does, job by job, a large answer.
func testLastRunsManyMachines(t *testing.T, s store.Store) {
	ctx := context.Background()
	const machines = 1500
	statuses := []string{store.StatusSucceeded, store.StatusFailed, store.StatusRunning, store.StatusPending}
	want := map[string]int{}
	var ms []store.Machine
	for i := range machines {
		// 7 is prime to 1500: i*7 % 1500 visits every number once, out
		// of order.
		n := i * 7 % machines
		st := statuses[n%len(statuses)]
		want[st]++
		ms = append(ms, store.Machine{Machine: fmt.Sprintf("host-%04d", n), Status: st})
	}
	big := store.Run{ID: "big", Job: "fleet", StartedAt: t0, Status: store.StatusRunning, Machines: ms}
	if err := s.CreateRun(ctx, big); err != nil {
		t.Fatalf("CreateRun of %d machines: %v", machines, err)
	}
	// An older run of the same job, as large, must not be read instead.
	older := big
	older.ID, older.StartedAt, older.Machines = "big-older", t0.Add(-time.Hour), ms[:100]
	if err := s.CreateRun(ctx, older); err != nil {
		t.Fatal(err)
	}
	// Many small jobs beside it.
	const jobs = 200
	for j := range jobs {
		r := store.Run{ID: fmt.Sprintf("small-%03d", j), Job: fmt.Sprintf("job-%03d", j), StartedAt: t0.Add(time.Duration(j) * time.Second),
			Status: store.StatusSucceeded, Machines: []store.Machine{{Machine: "m", Status: store.StatusSucceeded}}}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []int{0, 50, machines, machines + 1} {
		t.Run(fmt.Sprint("machines=", n), func(t *testing.T) {
			got := mustLastRuns(t, s, store.LastRunsQuery{Jobs: []string{"fleet"}, Machines: n})
			if len(got) != 1 || got[0].Run.ID != "big" {
				t.Fatalf("LastRuns = %v, want fleet=big", summaryJobs(got))
			}
			r := got[0]
			if !maps.Equal(r.MachineCounts, want) {
				t.Errorf("counts %v, want %v", r.MachineCounts, want)
			}
			if wantN := min(n, machines); len(r.Run.Machines) != wantN {
				t.Fatalf("%d machines, want %d", len(r.Run.Machines), wantN)
			}
			for i, m := range r.Run.Machines {
				if name := fmt.Sprintf("host-%04d", i); m.Machine != name || m.RunID != "big" ||
					m.Status != statuses[i%len(statuses)] {
					t.Fatalf("machine %d = %+v, want %s of run big, %s", i, m, name, statuses[i%len(statuses)])
				}
			}
		})
	}
	t.Run("every job", func(t *testing.T) {
		got := mustLastRuns(t, s, store.LastRunsQuery{Machines: 50})
		if len(got) != jobs+1 {
			t.Fatalf("LastRuns of every job: %d jobs, want %d", len(got), jobs+1)
		}
		if !slices.IsSortedFunc(got, func(a, b store.RunSummary) int { return cmp.Compare(a.Run.Job, b.Run.Job) }) {
			t.Errorf("answer not ordered by job: %v", summaryJobs(got))
		}
		for _, r := range got {
			if r.Run.Job == "fleet" {
				if r.Run.ID != "big" || len(r.Run.Machines) != 50 || r.MachineCounts[store.StatusSucceeded] != want[store.StatusSucceeded] {
					t.Errorf("fleet: run %s, %d machines, counts %v", r.Run.ID, len(r.Run.Machines), r.MachineCounts)
				}
				continue
			}
			if len(r.Run.Machines) != 1 || r.MachineCounts[store.StatusSucceeded] != 1 || r.Run.ID != "small-"+r.Run.Job[len("job-"):] {
				t.Errorf("%s: %+v, counts %v", r.Run.Job, r.Run, r.MachineCounts)
			}
		}
	})
}

func testLastFires(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.LastFires(ctx, []string{"backup"}); err != nil || len(got) != 0 {
		t.Fatalf("LastFires before any fire = %v, %v; want none", got, err)
	}
	slot := t0.Add(90 * time.Second).Add(123 * time.Nanosecond)
	zone := time.FixedZone("X", 3600)
	for _, f := range []struct {
		job  string
		slot time.Time
	}{
		{"backup", slot},
		{"backup", slot.Add(time.Hour)},
		{"backup", slot.Add(-time.Minute)}, // recorded last, not the latest
		{"report", slot.In(zone)},
		{"skipped", slot.Add(time.Minute)}, // a slot recorded without a run
	} {
		if ok, err := s.RecordFire(ctx, f.job, f.slot, ""); err != nil || !ok {
			t.Fatalf("RecordFire(%s, %s) = %v, %v", f.job, f.slot, ok, err)
		}
	}
	run := store.Run{ID: "r1", Job: "fired", ScheduledFor: slot.Add(2 * time.Hour), Status: store.StatusPending}
	if ok, err := s.FireRun(ctx, run); err != nil || !ok {
		t.Fatalf("FireRun = %v, %v", ok, err)
	}
	cases := []struct {
		name string
		jobs []string
		want map[string]time.Time
	}{
		{"several", []string{"backup", "report", "skipped", "fired"}, map[string]time.Time{
			"backup": slot.Add(time.Hour), "report": slot, "skipped": slot.Add(time.Minute), "fired": slot.Add(2 * time.Hour)}},
		{"one", []string{"report"}, map[string]time.Time{"report": slot}},
		{"twice, and without fires", []string{"nope", "backup", "backup", ""}, map[string]time.Time{"backup": slot.Add(time.Hour)}},
		{"only without fires", []string{"nope"}, map[string]time.Time{}},
		{"none named", nil, map[string]time.Time{}},
		{"empty list", []string{}, map[string]time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.LastFires(ctx, c.jobs)
			if err != nil {
				t.Fatalf("LastFires(%q): %v", c.jobs, err)
			}
			if got == nil {
				t.Errorf("LastFires(%q) = nil, want a map", c.jobs)
			}
			if len(got) != len(c.want) {
				t.Errorf("LastFires(%q) = %v, want %v", c.jobs, got, c.want)
			}
			for job, w := range c.want {
				g, ok := got[job]
				if !ok || !g.Equal(w) || g.Location() != time.UTC {
					t.Errorf("LastFires(%q)[%s] = %v (%v), want %v in UTC", c.jobs, job, g, ok, w)
				}
				if last, err := s.LastFire(ctx, job); err != nil || !last.Equal(g) {
					t.Errorf("LastFire(%s) = %v, %v; LastFires says %v", job, last, err, g)
				}
			}
		})
	}
	t.Run("many jobs", func(t *testing.T) {
		const jobs = 300
		var names []string
		for j := range jobs {
			name := fmt.Sprintf("job-%03d", j)
			names = append(names, name)
			if j%3 == 0 {
				continue // never fired
			}
			for k := range 3 {
				if _, err := s.RecordFire(ctx, name, t0.Add(time.Duration(j*10+k)*time.Minute), ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := s.LastFires(ctx, names)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != jobs-jobs/3 {
			t.Errorf("LastFires of %d jobs: %d answered, want %d", jobs, len(got), jobs-jobs/3)
		}
		for j, name := range names {
			g, ok := got[name]
			switch {
			case j%3 == 0 && ok:
				t.Errorf("%s never fired, LastFires says %v", name, g)
			case j%3 != 0 && (!ok || !g.Equal(t0.Add(time.Duration(j*10+2)*time.Minute))):
				t.Errorf("%s: LastFires says %v (%v), want its third slot", name, g, ok)
			}
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := s.LastFires(cancelled, []string{"backup"}); err == nil {
			t.Error("LastFires with a cancelled context succeeded")
		}
	})
}

// BenchLastRuns is a store's benchmark of the calls for many jobs: it
// times, in each iteration, the last runs of jobs one by one and in one
// LastRuns, then their last fired slots the same two ways.
func BenchLastRuns(b *testing.B, s store.Store, jobs []string, shown int) {
	b.Helper()
	ctx := context.Background()
	var perJob, batch, firesPerJob, firesBatch time.Duration
	for b.Loop() {
		start := time.Now()
		for _, job := range jobs {
			runs, err := s.ListRuns(ctx, store.RunFilter{Job: job, Limit: 1})
			if err != nil || len(runs) != 1 {
				b.Fatalf("ListRuns %s: %d runs, %v", job, len(runs), err)
			}
			_ = store.SummarizeRun(runs[0], shown)
		}
		perJob += time.Since(start)

		start = time.Now()
		rs, err := s.LastRuns(ctx, store.LastRunsQuery{Jobs: jobs, Machines: shown})
		if err != nil || len(rs) != len(jobs) {
			b.Fatalf("LastRuns: %d runs, %v", len(rs), err)
		}
		batch += time.Since(start)

		start = time.Now()
		for _, job := range jobs {
			if _, err := s.LastFire(ctx, job); err != nil {
				b.Fatal(err)
			}
		}
		firesPerJob += time.Since(start)

		start = time.Now()
		fires, err := s.LastFires(ctx, jobs)
		if err != nil || len(fires) != len(jobs) {
			b.Fatalf("LastFires: %d slots, %v", len(fires), err)
		}
		firesBatch += time.Since(start)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(perJob), "ms/ListRuns-per-job")
	b.ReportMetric(ms(batch), "ms/LastRuns")
	b.ReportMetric(float64(perJob)/float64(batch), "x-LastRuns-faster")
	b.ReportMetric(ms(firesPerJob), "ms/LastFire-per-job")
	b.ReportMetric(ms(firesBatch), "ms/LastFires")
	b.ReportMetric(float64(firesPerJob)/float64(firesBatch), "x-LastFires-faster")
	b.ReportMetric(0, "ns/op")
}

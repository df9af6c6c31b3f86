package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// countingStore counts the store calls that read runs. Unsupported makes
// LastRuns answer errors.ErrUnsupported, as a store plugin built before
// it does.
type countingStore struct {
	store.Store
	unsupported                bool
	lastRuns, listRuns, getRun atomic.Int64
}

func (s *countingStore) LastRuns(ctx context.Context, q store.LastRunsQuery) ([]store.RunSummary, error) {
	s.lastRuns.Add(1)
	if s.unsupported {
		return nil, fmt.Errorf("store plugin: %w", errors.ErrUnsupported)
	}
	return s.Store.LastRuns(ctx, q)
}

func (s *countingStore) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	s.listRuns.Add(1)
	return s.Store.ListRuns(ctx, f)
}

func (s *countingStore) GetRun(ctx context.Context, id string) (store.Run, error) {
	s.getRun.Add(1)
	return s.Store.GetRun(ctx, id)
}

// calls is how many store calls read runs so far, and which.
func (s *countingStore) calls() (total int64, what string) {
	l, r, g := s.lastRuns.Load(), s.listRuns.Load(), s.getRun.Load()
	return l + r + g, fmt.Sprintf("%d LastRuns, %d ListRuns, %d GetRun", l, r, g)
}

// countingEnv is an API on a counting store, the store answering
// LastRuns or not.
func countingEnv(t *testing.T, unsupported bool) (*env, *countingStore) {
	t.Helper()
	var cs *countingStore
	e := newEnv(t, func(c *Config) {
		cs = &countingStore{Store: c.Store, unsupported: unsupported}
		c.Store = cs
	})
	return e, cs
}

// manyJobs adds n jobs to e, each with a run but every third; some with
// several runs, one with a run of 120 machines added out of name order.
func manyJobs(t *testing.T, e *env, n int) {
	t.Helper()
	base := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	e.ctl.mu.Lock()
	for i := range n {
		name := fmt.Sprintf("job-%03d", i)
		e.ctl.jobs[name] = control.JobState{Job: &config.Job{Name: name, Group: "many", Schedule: "* * * * *"},
			Enabled: true, EnabledInConfig: true}
	}
	e.ctl.mu.Unlock()
	for i := range n {
		if i%3 == 0 {
			continue
		}
		name := fmt.Sprintf("job-%03d", i)
		for k := range 1 + i%3 {
			run := store.Run{ID: fmt.Sprintf("%s-%d", name, k), Job: name, Trigger: store.TriggerSchedule,
				StartedAt: base.Add(time.Duration(k) * time.Minute), Status: store.StatusSucceeded,
				Machines: []store.Machine{{Machine: "b", Status: store.StatusSucceeded, ExitCode: ptr(0)},
					{Machine: "a", Status: store.StatusFailed, ExitCode: ptr(k + 1)}}}
			if i == 1 && k == 1 {
				run.Machines = nil
				for m := range 120 {
					st := store.StatusRunning
					if m%4 == 0 {
						st = store.StatusFailed
					}
					run.Machines = append(run.Machines, store.Machine{Machine: fmt.Sprintf("m%03d", (m*7)%120), Status: st})
				}
			}
			e.addRun(run)
		}
	}
}

// TestListJobsOneStoreCall: the jobs list reads the last run of every job
// in one store call, however many jobs there are; a job's page in one
// too; no job, no call.
func TestListJobsOneStoreCall(t *testing.T) {
	e, cs := countingEnv(t, false)
	const jobs = 300
	manyJobs(t, e, jobs)
	var got struct {
		Jobs []jobSummary `json:"jobs"`
	}
	r := e.do(req{Method: "GET", Path: "/api/v1/jobs"})
	wantStatus(t, r, 200)
	if n, what := cs.calls(); n != 1 || cs.lastRuns.Load() != 1 {
		t.Errorf("the list of %d jobs made %s; want 1 LastRuns and nothing else", jobs+2, what)
	}
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Jobs) != jobs+2 {
		t.Fatalf("%d jobs listed, want %d", len(got.Jobs), jobs+2)
	}
	for _, j := range got.Jobs {
		var i int
		if _, err := fmt.Sscanf(j.Name, "job-%03d", &i); err != nil {
			continue // backup and manual, without runs
		}
		switch lr := j.LastRun; {
		case i%3 == 0 && lr != nil:
			t.Errorf("%s has no run, listed with %+v", j.Name, lr)
		case i%3 == 0:
		case lr == nil || lr.ID != fmt.Sprintf("%s-%d", j.Name, i%3):
			t.Errorf("%s: last run %+v, want its run %d", j.Name, lr, i%3)
		case i == 1:
			if len(lr.Machines) != lastRunMachines || lr.Machines[0].Machine != "m000" || lr.Machines[49].Machine != "m049" ||
				lr.MachineCounts[store.StatusFailed] != 30 || lr.MachineCounts[store.StatusRunning] != 90 {
				t.Errorf("%s: %d machines from %v, counts %v; want m000 to m049 of 120, 30 failed and 90 running",
					j.Name, len(lr.Machines), lr.Machines[0], lr.MachineCounts)
			}
		default:
			if len(lr.Machines) != 2 || lr.Machines[0].Machine != "a" || *lr.Machines[0].ExitCode != i%3+1 ||
				lr.MachineCounts[store.StatusFailed] != 1 || lr.MachineCounts[store.StatusSucceeded] != 1 {
				t.Errorf("%s: last run %+v", j.Name, lr)
			}
		}
	}

	cs.lastRuns.Store(0)
	wantStatus(t, e.do(req{Method: "GET", Path: "/api/v1/jobs/job-001"}), 200)
	if n, what := cs.calls(); n != 1 || cs.lastRuns.Load() != 1 {
		t.Errorf("a job's page made %s; want 1 LastRuns", what)
	}

	t.Run("no jobs", func(t *testing.T) {
		e, cs := countingEnv(t, false)
		e.ctl.mu.Lock()
		clear(e.ctl.jobs)
		e.ctl.mu.Unlock()
		r := e.do(req{Method: "GET", Path: "/api/v1/jobs"})
		wantStatus(t, r, 200)
		if string(bytes.TrimSpace(r.Body)) != `{"jobs":[]}` {
			t.Errorf("body = %s, want no jobs", r.Body)
		}
		if n, what := cs.calls(); n != 0 {
			t.Errorf("an empty list made %s; want none (LastRuns of no job is every job's)", what)
		}
	})
}

// TestListJobsFallsBackPerJob: on a store that answers LastRuns with
// errors.ErrUnsupported (a plugin built before it) the list and a job's
// page read the runs job by job, and answer byte for byte what they
// answer on a store that has LastRuns. A failing store still fails the
// list.
func TestListJobsFallsBackPerJob(t *testing.T) {
	const jobs = 60
	newer, _ := countingEnv(t, false)
	older, cs := countingEnv(t, true)
	for _, e := range []*env{newer, older} {
		manyJobs(t, e, jobs)
		e.addRun(store.Run{ID: "r-new", Job: "backup", Trigger: store.TriggerSchedule, StartedAt: time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC),
			Status: store.StatusFailed, Machines: []store.Machine{{Machine: "db2", Status: store.StatusFailed, ExitCode: ptr(3)},
				{Machine: "db1", Status: store.StatusSucceeded, ExitCode: ptr(0)}}})
	}
	for _, path := range []string{"/api/v1/jobs", "/api/v1/jobs/backup", "/api/v1/jobs/job-001", "/api/v1/jobs/job-003"} {
		t.Run(path, func(t *testing.T) {
			cs.lastRuns.Store(0)
			cs.listRuns.Store(0)
			want := newer.do(req{Method: "GET", Path: path})
			got := older.do(req{Method: "GET", Path: path})
			wantStatus(t, got, 200)
			if !bytes.Equal(got.Body, want.Body) {
				t.Errorf("job by job:\n%s\nwith LastRuns:\n%s", got.Body, want.Body)
			}
			wantCalls := int64(1)
			if path == "/api/v1/jobs" {
				wantCalls = jobs + 2
			}
			if l, n := cs.lastRuns.Load(), cs.listRuns.Load(); l != 1 || n != wantCalls {
				t.Errorf("%d LastRuns and %d ListRuns, want 1 (refused) and %d", l, n, wantCalls)
			}
		})
	}
	t.Run("store down", func(t *testing.T) {
		older.store.Close()
		wantError(t, older.do(req{Method: "GET", Path: "/api/v1/jobs"}), 503, CodeStoreUnavailable)
	})
}

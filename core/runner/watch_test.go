package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// successStore answers the dead-man check's reads with the last success
// the test sets, counting the reads by job; the outbox is a memory
// store's.
type successStore struct {
	store.Store
	last  map[string]time.Time // job → its last success's end
	reads map[string]int
}

func (s *successStore) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	if f.Status != store.StatusSucceeded || f.Limit != 1 {
		return nil, fmt.Errorf("the dead-man check reads a job's last success, not %+v", f)
	}
	s.reads[f.Job]++
	if at, ok := s.last[f.Job]; ok {
		return []store.Run{{ID: f.Job + "-ok", Job: f.Job, Status: store.StatusSucceeded, FinishedAt: at}}, nil
	}
	return nil, nil
}

// TestCheckGaps runs the dead-man check at chosen instants: a job is read
// only once max_gap may have passed since the last success read, and is
// notified once per gap, as when every check read every job.
func TestCheckGaps(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	st := &successStore{Store: memory.New(), last: map[string]time.Time{"daily": t0}, reads: map[string]int{}}
	r := New(Config{Logger: hclog.NewNullLogger(), Store: st}, nil)
	expect := func(name string, gap time.Duration, on ...string) *config.Job {
		return &config.Job{Name: name, Expect: &config.Expect{MaxGap: gap}, Notify: []config.Notify{{Notifier: "ops", On: on}}}
	}
	daily := expect("daily", time.Hour, "missed")
	never := expect("never", 2*time.Hour, "missed")
	w := newGapWatch(t0)
	gaps := func() []string {
		t.Helper()
		ns, err := st.ListNotifications(ctx, store.NotificationFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, n := range ns {
			ids = append(ids, strings.TrimPrefix(n.ID, n.Job+"/ops/missed/"))
		}
		return ids
	}

	steps := []struct {
		name  string
		at    time.Duration // after t0
		jobs  []*config.Job
		setup func()
		reads map[string]int // the reads of the check, by job
		gaps  int            // gaps notified so far
	}{
		{"first check reads every job", 10 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{"daily": 1, "never": 1}, 0},
		{"within max_gap of the success read: no read", 50 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{}, 0},
		{"max_gap passed since the success: read and notified", 61 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{"daily": 1}, 1},
		{"overdue: read again, the gap told once", 62 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{"daily": 1}, 1},
		{"a success ends the gap", 70 * time.Minute, []*config.Job{daily, never},
			func() { st.last["daily"] = t0.Add(69 * time.Minute) },
			map[string]int{"daily": 1}, 1},
		{"within max_gap of the new success: no read", 100 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{}, 1},
		{"never succeeded, max_gap since the start", 121 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{"never": 1}, 2},
		{"a job that stopped being checked is forgotten", 122 * time.Minute, []*config.Job{never}, nil,
			map[string]int{"never": 1}, 2},
		{"and read afresh when it comes back", 123 * time.Minute, []*config.Job{daily, never}, nil,
			map[string]int{"daily": 1, "never": 1}, 2},
		{"a shorter max_gap applies to the success read", 124 * time.Minute,
			[]*config.Job{expect("daily", 50*time.Minute, "missed"), never}, nil,
			map[string]int{"daily": 1, "never": 1}, 3},
	}
	for _, s := range steps {
		if s.setup != nil {
			s.setup()
		}
		clear(st.reads)
		r.checkGaps(ctx, w, s.jobs, t0.Add(s.at))
		if len(st.reads) != len(s.reads) {
			t.Errorf("%s: reads %v, want %v", s.name, st.reads, s.reads)
		}
		for job, n := range s.reads {
			if st.reads[job] != n {
				t.Errorf("%s: reads %v, want %v", s.name, st.reads, s.reads)
			}
		}
		if got := gaps(); len(got) != s.gaps {
			t.Errorf("%s: gaps notified %v, want %d", s.name, got, s.gaps)
		}
	}
}

// TestGapJobs: the dead-man check watches the jobs with an expect block
// and a notify block on missed; another job's gap could notify no one.
func TestGapJobs(t *testing.T) {
	notify := func(on ...string) []config.Notify { return []config.Notify{{Notifier: "ops", On: on}} }
	gap := &config.Expect{MaxGap: time.Hour}
	jobs := []*config.Job{
		{Name: "watched", Expect: gap, Notify: notify("failure", "missed")},
		{Name: "no expect", Notify: notify("missed")},
		{Name: "no missed", Expect: gap, Notify: notify("failure")},
		{Name: "no notify", Expect: gap},
		{Name: "no max_gap", Expect: &config.Expect{}, Notify: notify("missed")},
		{Name: "also watched", Expect: gap, Notify: append(notify("success"), notify("missed")...)},
	}
	var got []string
	for _, j := range gapJobs(jobs) {
		got = append(got, j.Name)
	}
	if want := []string{"watched", "also watched"}; !slices.Equal(got, want) {
		t.Errorf("gapJobs = %q, want %q", got, want)
	}
}

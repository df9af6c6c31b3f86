package runner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// firesStore counts the calls that read last fired slots and the jobs
// they asked for. Unsupported makes LastFires answer
// errors.ErrUnsupported, as a store plugin built before it does.
type firesStore struct {
	*memory.Store
	unsupported bool
	mu          sync.Mutex
	lastFires   [][]string // the jobs of each LastFires call
	lastFire    []string   // the job of each LastFire call
}

func (s *firesStore) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	s.mu.Lock()
	s.lastFires = append(s.lastFires, slices.Clone(jobs))
	s.mu.Unlock()
	if s.unsupported {
		return nil, fmt.Errorf("store plugin: %w", errors.ErrUnsupported)
	}
	return s.Store.LastFires(ctx, jobs)
}

func (s *firesStore) LastFire(ctx context.Context, job string) (time.Time, error) {
	s.mu.Lock()
	s.lastFire = append(s.lastFire, job)
	s.mu.Unlock()
	return s.Store.LastFire(ctx, job)
}

// TestCatchUpReadsLastFiresAtOnce: at start the catch-up reads the last
// fired slot of every job that may catch up in one store call, not one
// per job; on a store that answers errors.ErrUnsupported it reads them
// job by job, and catches up the same slots either way.
func TestCatchUpReadsLastFiresAtOnce(t *testing.T) {
	every, err := schedule.Parse("@every 1m")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	// Jobs j00 to j39 fired at 10:00 and may catch up; j40 never fired;
	// "off" does not catch up; "manual" has no schedule.
	const fired = 40
	var jobs []*config.Job
	var mayCatchUp []string
	for i := range fired + 1 {
		name := fmt.Sprintf("j%02d", i)
		jobs = append(jobs, &config.Job{Name: name, Command: "x", Enabled: true, Schedule: "@every 1m", ParsedSchedule: every,
			CatchUp: "latest", Overlap: config.OverlapAllow, Location: time.UTC, Target: config.Target{Plugin: "fake"}})
		mayCatchUp = append(mayCatchUp, name)
	}
	jobs = append(jobs, &config.Job{Name: "off", Command: "x", Enabled: true, Schedule: "@every 1m", ParsedSchedule: every,
		CatchUp: "none", Overlap: config.OverlapAllow, Location: time.UTC, Target: config.Target{Plugin: "fake"}})
	for _, tc := range []struct {
		name        string
		unsupported bool
	}{
		{"LastFires", false},
		{"old store plugin", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &firesStore{Store: memory.New(), unsupported: tc.unsupported}
			for i := range fired {
				if ok, err := st.RecordFire(context.Background(), fmt.Sprintf("j%02d", i), base, "old"); !ok || err != nil {
					t.Fatal(ok, err)
				}
			}
			if ok, err := st.RecordFire(context.Background(), "off", base, "old"); !ok || err != nil {
				t.Fatal(ok, err)
			}
			tgt := &fakeTarget{machines: []string{"a"}, dispatched: make(chan target.DispatchRequest, 2*fired)}
			conf := &config.Config{Jobs: jobs, Core: config.Core{HeartbeatInterval: time.Second, ConnectDeadline: time.Minute}}
			r := New(Config{Logger: hclog.NewNullLogger(), Store: st, Hub: newFakeHub(), Targets: fakeTargets{tgt},
				Tokens: fakeTokens{}, Kills: killq.New(), Scheduler: &fakeScheduler{}, URLs: []string{"ws://c/ws"},
				Now: func() time.Time { return base.Add(3*time.Minute + 30*time.Second) }}, conf)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx, make(chan schedule.Firing)) }()
			defer func() { cancel(); <-done }()
			for i := range fired {
				select {
				case <-tgt.dispatched:
				case <-time.After(10 * time.Second):
					t.Fatalf("%d of %d catch-up runs dispatched", i, fired)
				}
			}
			// The loop answers only after catching up.
			if err := r.do(context.Background(), func(*state) {}); err != nil {
				t.Fatal(err)
			}
			st.mu.Lock()
			lastFires, lastFire := st.lastFires, st.lastFire
			st.mu.Unlock()
			if len(lastFires) != 1 || !slices.Equal(lastFires[0], mayCatchUp) {
				t.Errorf("LastFires calls %q, want one for %q (the jobs that may catch up)", lastFires, mayCatchUp)
			}
			wantEach := []string(nil)
			if tc.unsupported {
				wantEach = mayCatchUp
			}
			if !slices.Equal(lastFire, wantEach) {
				t.Errorf("LastFire calls %q, want %q", lastFire, wantEach)
			}
			for _, name := range append(mayCatchUp, "off") {
				runs, err := st.ListRuns(context.Background(), store.RunFilter{Job: name})
				if err != nil {
					t.Fatal(err)
				}
				want := 1
				if name == "off" || name == fmt.Sprintf("j%02d", fired) {
					want = 0
				}
				if len(runs) != want || want == 1 && (!runs[0].ScheduledFor.Equal(base.Add(3*time.Minute)) || runs[0].Trigger != store.TriggerCatchUp) {
					t.Errorf("%s: runs %+v, want %d catch-up run of 10:03", name, runs, want)
				}
			}
		})
	}
}

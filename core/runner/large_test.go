package runner

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// countingStore counts the store calls that read a whole run, and tells
// when a number of dispatch times were recorded.
type countingStore struct {
	store.Store
	getRuns, listRuns atomic.Int64
	// dispatchedAt counts the machines whose dispatch time was recorded;
	// allDispatched is closed once it reaches want.
	dispatchedAt  atomic.Int64
	want          int64
	allDispatched chan struct{}
	// failRunUpdates is how many UpdateRun calls to fail from now.
	failRunUpdates atomic.Int64
}

func newCountingStore(want int) *countingStore {
	return &countingStore{Store: memory.New(), want: int64(want), allDispatched: make(chan struct{})}
}

func (s *countingStore) GetRun(ctx context.Context, id string) (store.Run, error) {
	s.getRuns.Add(1)
	return s.Store.GetRun(ctx, id)
}

func (s *countingStore) ListRuns(ctx context.Context, f store.RunFilter) ([]store.Run, error) {
	s.listRuns.Add(1)
	return s.Store.ListRuns(ctx, f)
}

func (s *countingStore) UpdateRun(ctx context.Context, id string, u store.RunUpdate) error {
	if s.failRunUpdates.Add(-1) >= 0 {
		return fmt.Errorf("update run %s: %w", id, store.ErrUnavailable)
	}
	return s.Store.UpdateRun(ctx, id, u)
}

func (s *countingStore) UpdateMachine(ctx context.Context, id, m string, u store.MachineUpdate) error {
	err := s.Store.UpdateMachine(ctx, id, m, u)
	if err == nil && u.DispatchedAt != nil && s.dispatchedAt.Add(1) == s.want {
		close(s.allDispatched)
	}
	return err
}

// directHub is a hub reduced to what a large run costs the runner: it
// registers nothing, and records a failure as the real hub does (the
// store first, then the runner's OnFinal).
type directHub struct {
	store    store.Store
	final    func(runID, machine, status string)
	expected atomic.Int64
}

func (h *directHub) Expect(context.Context, hub.Expectation) error {
	h.expected.Add(1)
	return nil
}

func (h *directHub) Fail(ctx context.Context, runID, machine, status string, code int, reason string) error {
	u := store.MachineUpdate{Status: &status, ExitCode: &code, Reason: &reason, OnlyIfNotFinal: true}
	if err := h.store.UpdateMachine(ctx, runID, machine, u); err != nil {
		return fmt.Errorf("fail %s on %s: %w", runID, machine, err)
	}
	h.final(runID, machine, status)
	return nil
}

func (h *directHub) Busy(string) bool { return false }

// instantTarget resolves to its machines and "dispatches" at once;
// with started set, it hands each machine it dispatched there, for a
// wrapper that ends at once.
type instantTarget struct {
	machines []string
	started  chan<- target.DispatchRequest
}

func (t instantTarget) Configure(context.Context, []byte) error { return nil }
func (t instantTarget) Resolve(context.Context, target.ResolveRequest) ([]string, error) {
	return t.machines, nil
}
func (t instantTarget) Dispatch(_ context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	if t.started != nil {
		t.started <- req
	}
	return target.DispatchResult{}, nil
}

type instantTargets struct{ t instantTarget }

func (f instantTargets) Target(context.Context, string) (target.Target, error) { return f.t, nil }

// largeRig is a runner on a counting memory store, a direct hub and an
// instant target of n machines, for runs too large for the fixture's
// channels.
type largeRig struct {
	r     *Runner
	store *countingStore
	hub   *directHub
	names []string
	// ended receives each run the runner recorded as ended.
	ended chan store.Run
	// stop ends the runner and waits for it, and for every goroutine it
	// started; the test's cleanup calls it too.
	stop func()
}

func machineNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("m%05d", i)
	}
	return out
}

// newLargeRig starts a runner of job on a rig of n machines. st, when
// not nil, is the store of a previous rig: a core restarting. With
// endAtOnce, every wrapper ends as soon as it is dispatched, succeeded,
// as the hub would report it.
func newLargeRig(tb testing.TB, n int, job *config.Job, st *countingStore, endAtOnce bool) *largeRig {
	tb.Helper()
	if st == nil {
		st = newCountingStore(n)
	}
	job.Location, job.Schedule, job.Target.Plugin = time.UTC, "@manually", "instant"
	g := &largeRig{store: st, hub: &directHub{store: st}, names: machineNames(n), ended: make(chan store.Run, 16)}
	tgt := instantTarget{machines: g.names}
	ctx, cancel := context.WithCancel(context.Background())
	if endAtOnce {
		started := make(chan target.DispatchRequest, n)
		tgt.started = started
		go func() {
			for {
				select {
				case req := <-started:
					if err := g.end(req.RunID, req.Machine, store.StatusSucceeded); err != nil {
						tb.Error(err)
					}
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	conf := &config.Config{Jobs: []*config.Job{job}, Core: config.Core{HeartbeatInterval: 5 * time.Second, ConnectDeadline: time.Minute}}
	g.r = New(Config{Logger: hclog.NewNullLogger(), Store: st, Hub: g.hub, Targets: instantTargets{tgt},
		Tokens: fakeTokens{}, Kills: killq.New(), Scheduler: &fakeScheduler{}, URLs: []string{"ws://core:8080/ws"},
		OnRunEnd: func(run store.Run) { g.ended <- run }}, conf)
	g.hub.final = g.r.MachineFinal
	done := make(chan error, 1)
	go func() { done <- g.r.Run(ctx, make(chan schedule.Firing)) }()
	var once sync.Once
	g.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				tb.Errorf("runner: %v", err)
			}
		})
	}
	tb.Cleanup(g.stop)
	return g
}

// end records a machine's result as the hub does, the store first, and
// tells the runner.
func (g *largeRig) end(id, machine, status string) error {
	err := g.store.UpdateMachine(context.Background(), id, machine, store.MachineUpdate{Status: &status, OnlyIfNotFinal: true})
	if err != nil {
		return fmt.Errorf("record the end of %s: %w", machine, err)
	}
	g.r.MachineFinal(id, machine, status)
	return nil
}

// awaitDispatched waits until every machine's dispatch was recorded.
func (g *largeRig) awaitDispatched(tb testing.TB) {
	tb.Helper()
	select {
	case <-g.store.allDispatched:
	case <-time.After(5 * time.Minute):
		tb.Fatalf("%d of %d machines dispatched", g.store.dispatchedAt.Load(), g.store.want)
	}
}

// awaitEnd waits for the runner to record the end of run id.
func (g *largeRig) awaitEnd(tb testing.TB, id string) store.Run {
	tb.Helper()
	timeout := time.After(5 * time.Minute)
	for {
		select {
		case run := <-g.ended:
			if run.ID == id {
				return run
			}
		case <-timeout:
			tb.Fatalf("run %s never ended", id)
		}
	}
}

// BenchmarkLargeRun: one run on 1,000 and on 10,000 machines, through a
// target that dispatches at once and a hub whose finals are fed directly.
// It reports how fast the runner dispatches (dispatch-machines/s); what
// each machine's end costs it, until the run's result is recorded and
// every report was handled (finalize-us/machine); how many times it read
// the whole run for that (GetRun-calls, the end's included); and how fast
// it dispatches when every wrapper ends as soon as it started, as under
// the load generator (dispatch-machines/s-ending).
func BenchmarkLargeRun(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var dispatch, finals, ending time.Duration
			var reads int64
			for range b.N {
				g := newLargeRig(b, n, &config.Job{Name: "big", Command: "x"}, nil, false)
				start := time.Now()
				id, err := g.r.RunNow(ctx, "big", "bench")
				if err != nil {
					b.Fatal(err)
				}
				g.awaitDispatched(b)
				dispatch += time.Since(start)
				start = time.Now()
				for _, m := range g.names {
					if err := g.end(id, m, store.StatusSucceeded); err != nil {
						b.Fatal(err)
					}
				}
				if run := g.awaitEnd(b, id); run.Status != store.StatusSucceeded {
					b.Fatalf("run %s, want succeeded", run.Status)
				}
				// Stopped, the runner has handled every report: what a
				// report cost may come after the run's end.
				g.stop()
				finals += time.Since(start)
				reads += g.store.getRuns.Load()

				g = newLargeRig(b, n, &config.Job{Name: "big", Command: "x"}, nil, true)
				start = time.Now()
				if id, err = g.r.RunNow(ctx, "big", "bench"); err != nil {
					b.Fatal(err)
				}
				g.awaitDispatched(b)
				ending += time.Since(start)
				g.awaitEnd(b, id)
			}
			b.ReportMetric(float64(n*b.N)/dispatch.Seconds(), "dispatch-machines/s")
			b.ReportMetric(float64(finals.Microseconds())/float64(n*b.N), "finalize-us/machine")
			b.ReportMetric(float64(reads)/float64(b.N), "GetRun-calls")
			b.ReportMetric(float64(n*b.N)/ending.Seconds(), "dispatch-machines/s-ending")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// TestLargeRunReadsTheRunOnce: as the machines of a run end, the runner
// reads the whole run from the store a bounded number of times, not once
// per machine: once to record its end, and once more at most for the
// dispatch's own look when it comes after that (and, with batches, about
// twice per batch to decide on the next one). A machine reported twice,
// a lost machine whose late complete is reported, or one already final
// when a restarted core read the run back, is counted once, and the
// run's result is what the store holds.
func TestLargeRunReadsTheRunOnce(t *testing.T) {
	const n = 400
	ctx := context.Background()
	// feed reports the ends of machines from several goroutines at once,
	// as the hub's reports race, and returns once every one was counted.
	feed := func(t *testing.T, g *largeRig, id string, machines []string, status func(m string) string) {
		t.Helper()
		var wg sync.WaitGroup
		for part := range slices.Chunk(machines, 50) {
			wg.Go(func() {
				for _, m := range part {
					g.r.machineFinal(ctx, id, m, status(m))
				}
			})
		}
		wg.Wait()
	}
	succeeded := func(string) string { return store.StatusSucceeded }
	// record writes machines' results as the hub does before it reports.
	record := func(t *testing.T, g *largeRig, id string, machines []string, status func(m string) string) {
		t.Helper()
		for _, m := range machines {
			s := status(m)
			if err := g.store.UpdateMachine(ctx, id, m, store.MachineUpdate{Status: &s, OnlyIfNotFinal: true}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// notEnded fails if the runner recorded the end of any run.
	notEnded := func(t *testing.T, g *largeRig, when string) {
		t.Helper()
		select {
		case run := <-g.ended:
			t.Fatalf("run %s recorded %s %s", run.ID, run.Status, when)
		default:
		}
	}
	tests := []struct {
		name  string
		batch int
		// endAtOnce: every wrapper ends as soon as it is dispatched;
		// otherwise run reports the ends once dispatch is over.
		endAtOnce bool
		run       func(t *testing.T, g *largeRig, id string) *largeRig
		want      string
		maxReads  int64
	}{
		{name: "one batch", want: store.StatusSucceeded, maxReads: 2,
			run: func(t *testing.T, g *largeRig, id string) *largeRig {
				record(t, g, id, g.names, succeeded)
				feed(t, g, id, g.names, succeeded)
				return g
			}},
		{name: "batches", batch: 50, endAtOnce: true, want: store.StatusSucceeded, maxReads: 2*n/50 + 2},
		{name: "twice reported, and a lost machine's late complete", want: store.StatusLost, maxReads: 2,
			run: func(t *testing.T, g *largeRig, id string) *largeRig {
				lost := func(m string) string {
					if m == g.names[0] {
						return store.StatusLost
					}
					return store.StatusSucceeded
				}
				all, last := g.names[:n-1], g.names[n-1:]
				record(t, g, id, all, lost)
				feed(t, g, id, all, lost)
				// The late complete of the lost machine, and every end
				// again: the last machine still runs.
				feed(t, g, id, all, succeeded)
				notEnded(t, g, "before its last machine ended")
				if reads := g.store.getRuns.Load(); reads != 0 {
					t.Fatalf("%d reads of the run before its last machine ended, want none", reads)
				}
				record(t, g, id, last, succeeded)
				feed(t, g, id, last, succeeded)
				return g
			}},
		{name: "restarted midway", want: store.StatusSucceeded, maxReads: 2,
			run: func(t *testing.T, g *largeRig, id string) *largeRig {
				half := n / 2
				record(t, g, id, g.names[:half], succeeded)
				feed(t, g, id, g.names[:half], succeeded)
				// One more ended while no core was listening, its report
				// coming to the next core after it read the run back.
				record(t, g, id, g.names[half:half+1], succeeded)
				g.stop()
				notEnded(t, g, "before the restart")
				g = newLargeRig(t, n, &config.Job{Name: "big", Command: "x"}, g.store, false)
				feed(t, g, id, g.names[half-10:half+1], succeeded)
				record(t, g, id, g.names[half+1:], succeeded)
				feed(t, g, id, g.names[half+1:], succeeded)
				return g
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newLargeRig(t, n, &config.Job{Name: "big", Command: "x", BatchSize: tc.batch}, nil, tc.endAtOnce)
			id, err := g.r.RunNow(ctx, "big", "test")
			if err != nil {
				t.Fatal(err)
			}
			g.awaitDispatched(t)
			if tc.run != nil {
				g = tc.run(t, g, id)
			}
			run := g.awaitEnd(t, id)
			// Stopped, the runner has nothing more in flight to read.
			g.stop()
			if run.Status != tc.want {
				t.Errorf("run %s, want %s", run.Status, tc.want)
			}
			stored, err := g.store.Store.GetRun(ctx, id)
			if err != nil || stored.Status != tc.want || stored.FinishedAt.IsZero() {
				t.Errorf("stored run %s finished %v (%v), want %s", stored.Status, stored.FinishedAt, err, tc.want)
			}
			if reads := g.store.getRuns.Load(); reads > tc.maxReads {
				t.Errorf("%d reads of the whole run for %d machines, want at most %d", reads, n, tc.maxReads)
			}
			notEnded(t, g, "a second time")
		})
	}
}

// TestRecheckFinalizes: the tallies' safety net finalizes a run whose last
// machine ended without the runner being told, and one whose end the
// store failed to record, once and with the store's result.
func TestRecheckFinalizes(t *testing.T) {
	const n = 20
	ctx := context.Background()
	tests := []struct {
		name string
		// end ends every machine of the run, leaving the runner not
		// finalizing it.
		end func(t *testing.T, g *largeRig, id string)
	}{
		{"an end not reported", func(t *testing.T, g *largeRig, id string) {
			for i, m := range g.names {
				s := store.StatusSucceeded
				if err := g.store.UpdateMachine(ctx, id, m, store.MachineUpdate{Status: &s, OnlyIfNotFinal: true}); err != nil {
					t.Fatal(err)
				}
				if i < n-1 {
					g.r.machineFinal(ctx, id, m, s)
				}
			}
		}},
		{"the end not recorded", func(t *testing.T, g *largeRig, id string) {
			g.store.failRunUpdates.Store(1)
			for _, m := range g.names {
				s := store.StatusSucceeded
				if err := g.store.UpdateMachine(ctx, id, m, store.MachineUpdate{Status: &s, OnlyIfNotFinal: true}); err != nil {
					t.Fatal(err)
				}
				g.r.machineFinal(ctx, id, m, s)
			}
			if g.store.failRunUpdates.Load() > 0 {
				t.Fatal("the runner never tried to record the run's end")
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newLargeRig(t, n, &config.Job{Name: "big", Command: "x"}, nil, false)
			id, err := g.r.RunNow(ctx, "big", "test")
			if err != nil {
				t.Fatal(err)
			}
			g.awaitDispatched(t)
			tc.end(t, g, id)
			if run, err := g.store.Store.GetRun(ctx, id); err != nil || store.Final(run.Status) {
				t.Fatalf("run %s (%v) before the recheck, want it running", run.Status, err)
			}
			if err := g.r.recheck(ctx); err != nil {
				t.Fatal(err)
			}
			// recheck finalizes synchronously: the end is recorded now.
			select {
			case run := <-g.ended:
				if run.ID != id || run.Status != store.StatusSucceeded {
					t.Fatalf("run %s recorded %s, want %s succeeded", run.ID, run.Status, id)
				}
			default:
				t.Fatal("the recheck did not finalize the run")
			}
			if err := g.r.recheck(ctx); err != nil {
				t.Fatal(err)
			}
			select {
			case run := <-g.ended:
				t.Fatalf("run %s recorded again (%s)", run.ID, run.Status)
			default:
			}
		})
	}
}

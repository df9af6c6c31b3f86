package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// The runner's neighbours, reduced to what it asks of them; the real ones
// are exercised end to end in core/e2e.

type fakeHub struct {
	mu       sync.Mutex
	expected []hub.Expectation
	failed   chan [2]string // machine, status
	busy     map[string]bool
}

func (h *fakeHub) Expect(_ context.Context, e hub.Expectation) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.expected = append(h.expected, e)
	return nil
}

func (h *fakeHub) Fail(_ context.Context, runID, machine, status string, _ int, _ string) error {
	h.failed <- [2]string{machine, status}
	return nil
}

func (h *fakeHub) Busy(runID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.busy[runID]
}

func (h *fakeHub) setBusy(runID string, b bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.busy[runID] = b
}

type fakeTarget struct {
	machines   []string
	failOn     string // its wrapper does not start
	unreach    string // cannot be reached
	dispatched chan target.DispatchRequest
	// hold, when set, keeps every Dispatch from answering until closed;
	// inflight and most count them meanwhile.
	hold           chan struct{}
	inflight, most atomic.Int32
	// resolveHold, when set, keeps Resolve from answering until closed;
	// resolveErr is its answer when set.
	resolveHold chan struct{}
	resolveErr  error
}

func (f *fakeTarget) Configure(context.Context, []byte) error { return nil }
func (f *fakeTarget) Resolve(context.Context, target.ResolveRequest) ([]string, error) {
	if f.resolveHold != nil {
		<-f.resolveHold
	}
	if f.resolveErr != nil {
		return nil, f.resolveErr
	}
	return f.machines, nil
}
func (f *fakeTarget) Dispatch(_ context.Context, req target.DispatchRequest) (target.DispatchResult, error) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for {
		m := f.most.Load()
		if n <= m || f.most.CompareAndSwap(m, n) {
			break
		}
	}
	f.dispatched <- req
	if f.hold != nil {
		<-f.hold
	}
	switch req.Machine {
	case f.failOn:
		return target.DispatchResult{}, errors.New("saltpeter-wrapper: not found")
	case f.unreach:
		return target.DispatchResult{}, fmt.Errorf("dial %s: connection refused: %w", req.Machine, target.ErrUnreachable)
	}
	return target.DispatchResult{Detail: "ok"}, nil
}

type fakeTargets struct{ t *fakeTarget }

func (f fakeTargets) Target(context.Context, string) (target.Target, error) { return f.t, nil }

type fakeTokens struct{}

func (fakeTokens) Bootstrap(runID, machine string) string { return "tok-" + runID + "-" + machine }

type fakeScheduler struct {
	mu  sync.Mutex
	set [][]schedule.Entry
}

func (s *fakeScheduler) Set(e []schedule.Entry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set = append(s.set, e)
}
func (s *fakeScheduler) NextRun(string) time.Time { return time.Time{} }
func (s *fakeScheduler) last() []schedule.Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set[len(s.set)-1]
}

type fixture struct {
	r     *Runner
	hub   *fakeHub
	tgt   *fakeTarget
	store *memory.Store
	// adds counts the runner's AddMachines calls.
	adds atomic.Int32
	// planWait is the runner's Config.PlanWait (0: its default).
	planWait time.Duration
	// now is the runner's Config.Now (nil: the wall clock).
	now   func() time.Time
	kills *killq.Queue
	sched *fakeScheduler
	// firings reaches the running runner as the scheduler would.
	firings chan<- schedule.Firing
	// notified counts the runner's calls of Notified.
	notified atomic.Int32
	// onFired is the runner's Config.OnFired (nil: none).
	onFired func(time.Duration)
	// stop ends the runner and waits for Run to return; the test's
	// cleanup calls it too.
	stop func()
}

func newFakeHub() *fakeHub {
	return &fakeHub{failed: make(chan [2]string, 16), busy: map[string]bool{}}
}

func newFixture(t *testing.T, jobs ...*config.Job) *fixture {
	t.Helper()
	f := newIdleFixture()
	f.start(t, jobs...)
	return f
}

// newIdleFixture is a fixture whose runner is not started yet.
func newIdleFixture() *fixture {
	return &fixture{
		hub:   newFakeHub(),
		tgt:   &fakeTarget{machines: []string{"b", "a", "b"}, dispatched: make(chan target.DispatchRequest, 16)},
		store: memory.New(),
		kills: killq.New(),
		sched: &fakeScheduler{},
	}
}

// start runs a Runner on the fixture's store, hub and target with jobs
// as the configuration: a core starting.
func (f *fixture) start(t *testing.T, jobs ...*config.Job) {
	t.Helper()
	for _, j := range jobs {
		if j.Location == nil {
			j.Location = time.UTC
		}
		if j.Schedule == "" {
			j.Schedule = "@manually"
		}
		j.Target.Plugin = "fake"
	}
	conf := &config.Config{Jobs: jobs, Core: config.Core{HeartbeatInterval: 5 * time.Second, ConnectDeadline: time.Minute}}
	r := New(Config{Logger: hclog.NewNullLogger(), Store: addCountingStore{f.store, &f.adds}, Hub: f.hub, Targets: fakeTargets{f.tgt},
		Tokens: fakeTokens{}, Kills: f.kills, Scheduler: f.sched, URLs: []string{"ws://core:8080/ws", "ws://core2:8080/ws"},
		CoreURL: "http://core:8080", DeadmanInterval: 20 * time.Millisecond, PlanWait: f.planWait, Now: f.now,
		Notified: func() { f.notified.Add(1) }, OnFired: f.onFired}, conf)
	f.r = r
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	firings := make(chan schedule.Firing)
	f.firings = firings
	go func() { done <- r.Run(ctx, firings) }()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("runner: %v", err)
			}
		})
	}
	t.Cleanup(f.stop)
}

// restart stops the runner and starts another on the same store with
// jobs, and a hub of its own: the core restarted (its hub's Recover is
// not the runner's business).
func (f *fixture) restart(t *testing.T, jobs ...*config.Job) {
	t.Helper()
	f.stop()
	f.hub = newFakeHub()
	f.start(t, jobs...)
}

// awaitDispatched waits until the runner has registered and dispatched
// every machine of run: before that the run counts as busy whatever the
// hub says.
func (f *fixture) awaitDispatched(t *testing.T, run string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		done := false
		if err := f.r.do(context.Background(), func(st *state) {
			for _, runs := range st.active {
				for _, a := range runs {
					if a.id == run {
						done = a.dispatched
					}
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s never finished dispatching", run)
		}
		time.Sleep(time.Millisecond)
	}
}

// dispatches collects n dispatch requests by machine.
// nextDispatch is the target's next dispatch; failing says what did not
// happen.
func (f *fixture) nextDispatch(t *testing.T, failing string) target.DispatchRequest {
	t.Helper()
	select {
	case req := <-f.tgt.dispatched:
		return req
	case <-time.After(10 * time.Second):
		t.Fatal(failing)
		return target.DispatchRequest{}
	}
}

func (f *fixture) dispatches(t *testing.T, n int) map[string]target.DispatchRequest {
	t.Helper()
	out := map[string]target.DispatchRequest{}
	for range n {
		req := f.nextDispatch(t, fmt.Sprintf("%d of %d dispatches arrived", len(out), n))
		out[req.Machine] = req
	}
	return out
}

// awaitRun waits for a stored run of job that ok accepts.
func (f *fixture) awaitRun(t *testing.T, job, what string, ok func(store.Run) bool) store.Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runs, err := f.store.ListRuns(context.Background(), store.RunFilter{Job: job})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if ok(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %s was not recorded", job, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRunNowDispatchesEveryMachineOnce(t *testing.T) {
	tests := []struct {
		name     string
		protocol int
		check    func(t *testing.T, env map[string]string)
	}{
		{"v2 gets a token and no job", 2, func(t *testing.T, env map[string]string) {
			if !strings.HasPrefix(env[wire.EnvToken], "tok-") {
				t.Errorf("no token: %v", env)
			}
			for _, k := range []string{wire.EnvCommand, "SECRET"} {
				if _, ok := env[k]; ok {
					t.Errorf("v2 dispatch env carries %s: %v", k, env)
				}
			}
		}},
		{"v1 gets the job and no token", 1, func(t *testing.T, env map[string]string) {
			if env[wire.EnvCommand] != "echo hi" || env["SECRET"] != "s" || env[wire.EnvTimeout] != "91" {
				t.Errorf("v1 dispatch env lacks what v1 reads: %v", env)
			}
			if _, ok := env[wire.EnvToken]; ok {
				t.Errorf("v1 dispatch env carries a token: %v", env)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := &config.Job{Name: "j", Command: "echo hi", Env: map[string]string{"SECRET": "s"},
				Timeout: 90*time.Second + time.Millisecond, Overlap: config.OverlapSkip,
				Wrapper: config.Wrapper{Protocol: tc.protocol}, Kill: config.Kill{Signal: "SIGTERM", Grace: 5 * time.Second}}
			f := newFixture(t, j)
			id, err := f.r.RunNow(context.Background(), "j", "alice")
			if err != nil {
				t.Fatal(err)
			}
			got := f.dispatches(t, 2)
			for _, m := range []string{"a", "b"} {
				req, ok := got[m]
				if !ok || req.RunID != id || req.Protocol != tc.protocol {
					t.Fatalf("dispatch to %s: %+v", m, req)
				}
				if req.Env[wire.EnvWebSocketURL] != "ws://core:8080/ws" || req.Env[wire.EnvWebSocketURLs] != "ws://core:8080/ws ws://core2:8080/ws" ||
					req.Env[wire.EnvMachineID] != m || req.Env[wire.EnvJobInstance] != id {
					t.Errorf("dispatch env of %s: %v", m, req.Env)
				}
				tc.check(t, req.Env)
			}
			run, err := f.store.GetRun(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if run.Trigger != store.TriggerManual || run.RequestedBy != "alice" || len(run.Machines) != 2 {
				t.Fatalf("stored run %+v", run)
			}
			// Without a store block the default cap applies, and the run
			// keeps it whatever a reload says later.
			for _, m := range run.Machines {
				if m.OutputCap != config.DefaultMaxOutputPerMachine {
					t.Errorf("machine %s stored with output cap %d, want %d", m.Machine, m.OutputCap, config.DefaultMaxOutputPerMachine)
				}
			}
			f.hub.mu.Lock()
			defer f.hub.mu.Unlock()
			if len(f.hub.expected) != 2 || f.hub.expected[0].Spec.Kill.Grace != "5s" || f.hub.expected[0].Spec.Heartbeat != "5s" {
				t.Fatalf("hub expectations %+v", f.hub.expected)
			}
		})
	}
}

func TestOverlap(t *testing.T) {
	skip := &config.Job{Name: "skip", Command: "x", Overlap: config.OverlapSkip}
	allow := &config.Job{Name: "allow", Command: "x", Overlap: config.OverlapAllow}
	f := newFixture(t, skip, allow)
	ctx := context.Background()
	first, err := f.r.RunNow(ctx, "skip", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	f.awaitDispatched(t, first)
	f.hub.setBusy(first, true)
	if _, err := f.r.RunNow(ctx, "skip", "a"); !errors.Is(err, control.ErrOverlap) {
		t.Fatalf("second run of a busy skip job: %v, want ErrOverlap", err)
	}
	f.hub.setBusy(first, false)
	if _, err := f.r.RunNow(ctx, "skip", "a"); err != nil {
		t.Fatalf("run after the first ended: %v", err)
	}
	f.dispatches(t, 2)
	for range 2 {
		id, err := f.r.RunNow(ctx, "allow", "a")
		if err != nil {
			t.Fatalf("allow job refused: %v", err)
		}
		f.hub.setBusy(id, true)
		f.dispatches(t, 2)
	}
	if _, err := f.r.RunNow(ctx, "nope", "a"); !errors.Is(err, control.ErrUnknownJob) {
		t.Fatalf("unknown job: %v", err)
	}
}

// addCountingStore counts AddMachines calls.
type addCountingStore struct {
	*memory.Store
	adds *atomic.Int32
}

func (s addCountingStore) AddMachines(ctx context.Context, runID string, machines []store.Machine) error {
	s.adds.Add(1)
	return s.Store.AddMachines(ctx, runID, machines)
}

// TestRunRecordedWithItsMachines: a run whose target resolves its
// machines within PlanWait is recorded with them, in one store write; one
// whose target takes longer is recorded without, and gets them once they
// come; one whose target fails is recorded and fails with why. (The
// runner waits a minute here, so that a loaded machine's slow goroutine
// does not pass for a slow target; the slow one holds until told.)
func TestRunRecordedWithItsMachines(t *testing.T) {
	for _, tc := range []struct {
		name string
		slow bool
		fail error
		// adds is the AddMachines calls the run takes.
		adds int32
	}{
		{name: "resolved at once", adds: 0},
		{name: "resolved late", slow: true, adds: 1},
		{name: "resolve fails", fail: errors.New("salt master away"), adds: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newIdleFixture()
			f.planWait = time.Minute
			f.tgt.resolveErr = tc.fail
			if tc.slow {
				f.tgt.resolveHold = make(chan struct{})
				f.planWait = 50 * time.Millisecond
			}
			f.start(t, &config.Job{Name: "j", Command: "x"})
			ctx := context.Background()
			id, err := f.r.RunNow(ctx, "j", "a")
			if err != nil {
				t.Fatal(err)
			}
			// RunNow returns once the run is recorded.
			run, err := f.store.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.fail != nil:
				run = waitRunStatus(t, f.store, id)
				if run.Status != store.StatusError || !strings.Contains(run.Reason, "resolve targets: salt master away") {
					t.Fatalf("run %s (%q), want error for the resolve", run.Status, run.Reason)
				}
			case tc.slow:
				if len(run.Machines) != 0 {
					t.Fatalf("run recorded with %d machines before its target resolved them", len(run.Machines))
				}
				close(f.tgt.resolveHold)
				f.dispatches(t, 2)
			default:
				if len(run.Machines) != 2 {
					t.Fatalf("run recorded with %d machines, want its 2", len(run.Machines))
				}
				f.dispatches(t, 2)
			}
			if tc.fail == nil {
				f.awaitDispatched(t, id)
				if ms := f.machines(t, id); len(ms) != 2 {
					t.Fatalf("machines %v, want a and b", ms)
				}
			}
			if got := f.adds.Load(); got != tc.adds {
				t.Errorf("%d AddMachines calls, want %d", got, tc.adds)
			}
		})
	}
}

func TestDispatchFailureAndAggregate(t *testing.T) {
	f := newFixture(t, &config.Job{Name: "j", Command: "x"})
	f.tgt.machines = []string{"a", "b", "c"}
	f.tgt.failOn, f.tgt.unreach = "b", "c"
	ctx := context.Background()
	id, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 3)
	// A machine reached whose wrapper did not start is not_started; one
	// the target could not reach is an error.
	got := map[string]string{}
	for range 2 {
		select {
		case g := <-f.hub.failed:
			got[g[0]] = g[1]
		case <-time.After(10 * time.Second):
			t.Fatalf("dispatch failures reported: %v, want two", got)
		}
	}
	if got["b"] != store.StatusNotStarted || got["c"] != store.StatusError {
		t.Fatalf("failures reported as %v, want b not_started and c error", got)
	}
	// The hub writes machine results; the runner aggregates when told.
	for m, s := range map[string]string{"a": store.StatusSucceeded, "b": store.StatusNotStarted, "c": store.StatusNotStarted} {
		f.finish(t, id, m, s)
	}
	run := waitRunStatus(t, f.store, id)
	if run.Status != store.StatusNotStarted || run.FinishedAt.IsZero() {
		t.Fatalf("run %s finished %v, want not_started", run.Status, run.FinishedAt)
	}
}

func TestKillAndSignalRecordWhoAsked(t *testing.T) {
	f := newFixture(t, &config.Job{Name: "j", Command: "x", Overlap: config.OverlapAllow})
	ctx := context.Background()
	id, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	if err := f.r.Signal(ctx, control.SignalRequest{RunID: id, Signal: "SIGKILL", By: "bob"}); !errors.Is(err, control.ErrBadRequest) {
		t.Fatalf("SIGKILL as a signal: %v", err)
	}
	if err := f.r.Signal(ctx, control.SignalRequest{RunID: id, Signal: "stop", By: "bob"}); err != nil {
		t.Fatal(err)
	}
	runs, err := f.r.Kill(ctx, control.KillRequest{Job: "j", Signal: "int", Grace: time.Second, By: "carol"})
	if err != nil || len(runs) != 1 || runs[0] != id {
		t.Fatalf("kill: %v %v", runs, err)
	}
	if _, err := f.r.Kill(ctx, control.KillRequest{RunID: id, By: "dave"}); err != nil {
		t.Fatal(err)
	}
	run, _ := f.store.GetRun(ctx, id)
	if run.KilledBy != "carol" || len(run.Actions) != 3 || run.Actions[0].Signal != "SIGSTOP" || run.Actions[0].By != "bob" ||
		run.Actions[1].Signal != "SIGINT" || run.Actions[2].By != "dave" {
		t.Fatalf("run records %q and %+v", run.KilledBy, run.Actions)
	}
	done := make(chan struct{})
	defer close(done)
	go f.kills.Run(done)
	want := []killq.Request{{Kind: killq.Signal, Signal: "SIGSTOP", By: "bob"}, {Kind: killq.Kill, Signal: "SIGINT", Grace: time.Second, By: "carol"}, {Kind: killq.Kill, By: "dave"}}
	for _, w := range want {
		got := <-f.kills.C()
		if got.Kind != w.Kind || got.Signal != w.Signal || got.Grace != w.Grace || got.By != w.By || got.RunID != id {
			t.Fatalf("queued %+v, want %+v", got, w)
		}
	}
	if _, err := f.r.Kill(ctx, control.KillRequest{RunID: "nope", By: "x"}); !errors.Is(err, control.ErrUnknownRun) {
		t.Fatalf("kill of an unknown run: %v", err)
	}
}

func TestEnableOverrideReschedules(t *testing.T) {
	f := newFixture(t, &config.Job{Name: "j", Command: "x", Enabled: true})
	ctx := context.Background()
	if err := f.r.SetEnabled(ctx, "j", false, "erin"); err != nil {
		t.Fatal(err)
	}
	if e := f.sched.last(); len(e) != 1 || e[0].Enabled {
		t.Fatalf("scheduler got %+v after disable", e)
	}
	js, err := f.r.Job(ctx, "j")
	if err != nil || js.Enabled || !js.EnabledInConfig || js.OverrideBy != "erin" {
		t.Fatalf("job state %+v %v", js, err)
	}
	if err := f.r.ResetEnabled(ctx, "j", "erin"); err != nil {
		t.Fatal(err)
	}
	if e := f.sched.last(); !e[0].Enabled {
		t.Fatalf("scheduler got %+v after reset", e)
	}
	if err := f.r.SetEnabled(ctx, "nope", true, "x"); !errors.Is(err, control.ErrUnknownJob) {
		t.Fatalf("unknown job: %v", err)
	}
}

func TestCatchUp(t *testing.T) {
	every := func(t *testing.T) schedule.Schedule {
		t.Helper()
		s, err := schedule.Parse("@every 1m")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		policy string
		want   []time.Time
	}{
		{"none", nil},
		{"latest", []time.Time{base.Add(3 * time.Minute)}},
		{"all", []time.Time{base.Add(time.Minute), base.Add(2 * time.Minute), base.Add(3 * time.Minute)}},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			j := &config.Job{Name: "j", Command: "x", Enabled: true, Schedule: "@every 1m", ParsedSchedule: every(t),
				CatchUp: tc.policy, Overlap: config.OverlapAllow, Location: time.UTC, Target: config.Target{Plugin: "fake"}}
			st := memory.New()
			// The last core fired 10:00 and went down; it is 10:03:30.
			if ok, err := st.RecordFire(context.Background(), "j", base, "old"); !ok || err != nil {
				t.Fatal(ok, err)
			}
			f := &fixture{
				hub:   &fakeHub{failed: make(chan [2]string, 16), busy: map[string]bool{}},
				tgt:   &fakeTarget{machines: []string{"a"}, dispatched: make(chan target.DispatchRequest, 16)},
				store: st, kills: killq.New(), sched: &fakeScheduler{},
			}
			conf := &config.Config{Jobs: []*config.Job{j}, Core: config.Core{HeartbeatInterval: time.Second, ConnectDeadline: time.Minute}}
			f.r = New(Config{Logger: hclog.NewNullLogger(), Store: st, Hub: f.hub, Targets: fakeTargets{f.tgt},
				Tokens: fakeTokens{}, Kills: f.kills, Scheduler: f.sched, URLs: []string{"ws://c/ws"},
				Now: func() time.Time { return base.Add(3*time.Minute + 30*time.Second) }}, conf)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- f.r.Run(ctx, make(chan schedule.Firing)) }()
			defer func() { cancel(); <-done }()
			f.dispatches(t, len(tc.want))
			// The loop answers only after catching up.
			if err := f.r.do(context.Background(), func(*state) {}); err != nil {
				t.Fatal(err)
			}
			runs, err := st.ListRuns(context.Background(), store.RunFilter{Job: "j"})
			if err != nil {
				t.Fatal(err)
			}
			var got []time.Time
			for _, r := range runs {
				if r.Trigger != store.TriggerCatchUp {
					t.Errorf("run %s has trigger %s, want catch_up", r.ID, r.Trigger)
				}
				got = append(got, r.ScheduledFor)
			}
			slices.SortFunc(got, func(a, b time.Time) int { return a.Compare(b) })
			if !slices.EqualFunc(got, tc.want, func(a, b time.Time) bool { return a.Equal(b) }) {
				t.Fatalf("caught up %v, want %v", got, tc.want)
			}
			// A second core start catches up nothing more: the slots are recorded.
			if last, _ := st.LastFire(context.Background(), "j"); len(tc.want) > 0 && !last.Equal(tc.want[len(tc.want)-1]) {
				t.Fatalf("last fire %v", last)
			}
		})
	}
}

// cancellingStore cancels the core's context once the catch-up has read
// the last fired slot: the core starts stopping while a slot is firing.
type cancellingStore struct {
	*memory.Store
	cancel context.CancelFunc
}

func (s cancellingStore) LastFire(ctx context.Context, job string) (time.Time, error) {
	t, err := s.Store.LastFire(ctx, job)
	s.cancel()
	return t, err
}

func (s cancellingStore) LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error) {
	last, err := s.Store.LastFires(ctx, jobs)
	s.cancel()
	return last, err
}

// TestFiredSlotGetsItsRunWhenStopping: a slot that began firing is
// recorded with its run even when the core starts stopping meanwhile.
func TestFiredSlotGetsItsRunWhenStopping(t *testing.T) {
	sched, err := schedule.Parse("@every 1m")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	j := &config.Job{Name: "j", Command: "x", Enabled: true, Schedule: "@every 1m", ParsedSchedule: sched,
		CatchUp: "latest", Overlap: config.OverlapAllow, Location: time.UTC, Target: config.Target{Plugin: "fake"}}
	mem := memory.New()
	if ok, err := mem.RecordFire(context.Background(), "j", base, "old"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := cancellingStore{Store: mem, cancel: cancel}
	tgt := &fakeTarget{machines: []string{"a"}, dispatched: make(chan target.DispatchRequest, 16)}
	conf := &config.Config{Jobs: []*config.Job{j}, Core: config.Core{HeartbeatInterval: time.Second, ConnectDeadline: time.Minute}}
	r := New(Config{Logger: hclog.NewNullLogger(), Store: st, Hub: &fakeHub{failed: make(chan [2]string, 16), busy: map[string]bool{}},
		Targets: fakeTargets{tgt}, Tokens: fakeTokens{}, Kills: killq.New(), Scheduler: &fakeScheduler{}, URLs: []string{"ws://c/ws"},
		Now: func() time.Time { return base.Add(90 * time.Second) }}, conf)
	// Run returns once the context is cancelled and the runs it started
	// are dispatched.
	if err := r.Run(ctx, make(chan schedule.Firing)); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	runs, err := mem.ListRuns(context.Background(), store.RunFilter{Job: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].ScheduledFor.Equal(base.Add(time.Minute)) || runs[0].Trigger != store.TriggerCatchUp {
		t.Fatalf("runs after stopping = %+v; want the 10:01 catch-up run", runs)
	}
	if last, err := mem.LastFire(context.Background(), "j"); err != nil || !last.Equal(base.Add(time.Minute)) {
		t.Fatalf("last fired slot %v, %v; want 10:01 recorded with its run", last, err)
	}
}

// TestSlotRecordedByAnEarlierCoreDoesNotFireAgain: the core before a
// restart fired 10:00:00 and died within that second; the new core's
// scheduler offers the same slot again. The store's record refuses it:
// no second run, no dispatch. The next slot fires as usual.
func TestSlotRecordedByAnEarlierCoreDoesNotFireAgain(t *testing.T) {
	sched, err := schedule.Parse("* * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	j := &config.Job{Name: "j", Command: "x", Enabled: true, Schedule: "* * * * * *", ParsedSchedule: sched,
		CatchUp: "none", Overlap: config.OverlapAllow, Location: time.UTC, Target: config.Target{Plugin: "fake"}}
	st := memory.New()
	if ok, err := st.RecordFire(context.Background(), "j", slot, "earlier-core"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	tgt := &fakeTarget{machines: []string{"a"}, dispatched: make(chan target.DispatchRequest, 16)}
	conf := &config.Config{Jobs: []*config.Job{j}, Core: config.Core{HeartbeatInterval: time.Second, ConnectDeadline: time.Minute}}
	r := New(Config{Logger: hclog.NewNullLogger(), Store: st, Hub: &fakeHub{failed: make(chan [2]string, 16), busy: map[string]bool{}},
		Targets: fakeTargets{tgt}, Tokens: fakeTokens{}, Kills: killq.New(), Scheduler: &fakeScheduler{}, URLs: []string{"ws://c/ws"},
		Now: func() time.Time { return slot.Add(400 * time.Millisecond) }}, conf)
	ctx, cancel := context.WithCancel(context.Background())
	firings := make(chan schedule.Firing)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, firings) }()
	defer func() { cancel(); <-done }()

	firings <- schedule.Firing{Job: "j", Slot: slot}
	firings <- schedule.Firing{Job: "j", Slot: slot.Add(time.Second)}
	got := (&fixture{tgt: tgt}).dispatches(t, 1)
	runs, err := st.ListRuns(context.Background(), store.RunFilter{Job: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !runs[0].ScheduledFor.Equal(slot.Add(time.Second)) || got["a"].RunID != runs[0].ID {
		t.Fatalf("runs %+v, dispatches %+v; want only the 10:00:01 run", runs, got)
	}
	select {
	case req := <-tgt.dispatched:
		t.Fatalf("a second dispatch: %+v", req)
	default:
	}
}

// waitRunStatus polls the store until the run's status is final.
func waitRunStatus(t *testing.T, st store.Store, id string) store.Run {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		run, err := st.GetRun(context.Background(), id)
		if err == nil && store.Final(run.Status) {
			return run
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s not final: %+v, %v", id, run, err)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMaintenance: machines under maintenance are left out of a run and
// shown as skipped; a run whose machines are all under maintenance is
// skipped; global maintenance refuses manual runs and records scheduled
// slots without runs, so they are not caught up; the override is in the
// store, so a restarted runner has it.
func TestMaintenance(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, &config.Job{Name: "j", Command: "x", Overlap: config.OverlapAllow})
	f.tgt.machines = []string{"a", "b", "c"}

	if _, err := f.r.SetMaintenance(ctx, false, []string{"b", "", "b"}, "ops"); !errors.Is(err, control.ErrBadRequest) {
		t.Fatalf("an empty machine name: %v, want ErrBadRequest", err)
	}
	m, err := f.r.SetMaintenance(ctx, false, []string{"c", "b", "b"}, "ops")
	if err != nil || m.Global || !slices.Equal(m.Machines, []string{"b", "c"}) || !m.Override || m.SetBy != "ops" {
		t.Fatalf("SetMaintenance = %+v, %v", m, err)
	}
	id, err := f.r.RunNow(ctx, "j", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.dispatches(t, 1); got["a"].RunID != id {
		t.Fatalf("dispatched %+v, want only a", got)
	}
	f.awaitDispatched(t, id)
	run, err := f.store.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	statuses := map[string]string{}
	for _, mm := range run.Machines {
		statuses[mm.Machine] = mm.Status + "/" + mm.Reason
	}
	if statuses["a"] != store.StatusPending+"/" || statuses["b"] != "skipped/maintenance" || statuses["c"] != "skipped/maintenance" {
		t.Fatalf("machines %v; want a dispatched, b and c skipped for maintenance", statuses)
	}

	// Every machine under maintenance: the run is skipped.
	if _, err := f.r.SetMaintenance(ctx, false, []string{"a", "b", "c"}, "ops"); err != nil {
		t.Fatal(err)
	}
	id2, err := f.r.RunNow(ctx, "j", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if run := waitRunStatus(t, f.store, id2); run.Status != store.StatusSkipped {
		t.Fatalf("run with every machine in maintenance: %s, want skipped", run.Status)
	}

	// Global maintenance: no manual run; a scheduled slot is recorded and
	// fires nothing.
	if _, err := f.r.SetMaintenance(ctx, true, nil, "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.r.RunNow(ctx, "j", "alice"); !errors.Is(err, control.ErrMaintenance) {
		t.Fatalf("RunNow under global maintenance: %v, want ErrMaintenance", err)
	}
	slot := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var recorded <-chan struct{}
	if err := f.r.do(ctx, func(st *state) { recorded = f.r.fireSlot(ctx, st, st.conf.Job("j"), slot, store.TriggerSchedule) }); err != nil {
		t.Fatal(err)
	}
	<-recorded
	if last, err := f.store.LastFire(ctx, "j"); err != nil || !last.Equal(slot) {
		t.Fatalf("slot under global maintenance: last fire %v, %v; want it recorded", last, err)
	}
	if runs, _ := f.store.ListRuns(ctx, store.RunFilter{Job: "j"}); len(runs) != 2 {
		t.Fatalf("%d runs, want the 2 before global maintenance", len(runs))
	}

	// The override is in the store, where Run loads it from at start.
	stored, err := f.store.GetMaintenance(ctx)
	if err != nil || !stored.Global {
		t.Fatalf("stored maintenance %+v, %v", stored, err)
	}
	if m, err := f.r.ResetMaintenance(ctx, "ops"); err != nil || m.Override || m.Global {
		t.Fatalf("ResetMaintenance = %+v, %v; want the HCL's (none)", m, err)
	}
	if _, err := f.store.GetMaintenance(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("override still stored after reset: %v", err)
	}
}

// finish records a machine's result as the hub would, and tells the
// runner.
func (f *fixture) finish(t *testing.T, id, machine, status string) {
	t.Helper()
	if err := f.store.UpdateMachine(context.Background(), id, machine, store.MachineUpdate{Status: &status}); err != nil {
		t.Fatal(err)
	}
	f.r.MachineFinal(id, machine, status)
}

func dispatchedNames(got map[string]target.DispatchRequest) []string {
	var out []string
	for m := range got {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// TestBatches: batch_size launches a batch once the one before finished;
// abort_after_failures and a kill of the run cancel the batches not yet
// launched; the success policy decides the run's status.
func TestBatches(t *testing.T) {
	ctx := context.Background()
	t.Run("in order", func(t *testing.T) {
		f := newFixture(t, &config.Job{Name: "j", Command: "x", BatchSize: 2, Success: "all"})
		f.tgt.machines = []string{"e", "d", "c", "b", "a"}
		id, err := f.r.RunNow(ctx, "j", "alice")
		if err != nil {
			t.Fatal(err)
		}
		// Machines go in name order, two at a time.
		for _, want := range [][]string{{"a", "b"}, {"c", "d"}, {"e"}} {
			got := dispatchedNames(f.dispatches(t, len(want)))
			if !slices.Equal(got, want) {
				t.Fatalf("batch %v, want %v", got, want)
			}
			select {
			case req := <-f.tgt.dispatched:
				t.Fatalf("%s dispatched before its batch", req.Machine)
			default:
			}
			for _, m := range want {
				f.finish(t, id, m, store.StatusSucceeded)
			}
		}
		if run := waitRunStatus(t, f.store, id); run.Status != store.StatusSucceeded {
			t.Fatalf("run %s, want succeeded", run.Status)
		}
	})
	t.Run("abort after failures", func(t *testing.T) {
		f := newFixture(t, &config.Job{Name: "j", Command: "x", BatchSize: 2, AbortAfterFailures: 1, Success: "all"})
		f.tgt.machines = []string{"a", "b", "c", "d"}
		id, err := f.r.RunNow(ctx, "j", "alice")
		if err != nil {
			t.Fatal(err)
		}
		f.dispatches(t, 2)
		f.finish(t, id, "a", store.StatusFailed)
		f.finish(t, id, "b", store.StatusSucceeded)
		run := waitRunStatus(t, f.store, id)
		for _, m := range run.Machines {
			if (m.Machine == "c" || m.Machine == "d") && (m.Status != store.StatusCancelled || !strings.Contains(m.Reason, "abort_after_failures")) {
				t.Errorf("machine %s: %s (%s), want cancelled for abort_after_failures", m.Machine, m.Status, m.Reason)
			}
		}
		if run.Status != store.StatusFailed {
			t.Errorf("run %s, want failed", run.Status)
		}
		select {
		case req := <-f.tgt.dispatched:
			t.Fatalf("%s dispatched after the abort", req.Machine)
		default:
		}
	})
	t.Run("killed between batches", func(t *testing.T) {
		f := newFixture(t, &config.Job{Name: "j", Command: "x", BatchSize: 1, Success: "all"})
		f.tgt.machines = []string{"a", "b"}
		id, err := f.r.RunNow(ctx, "j", "alice")
		if err != nil {
			t.Fatal(err)
		}
		f.dispatches(t, 1)
		if _, err := f.r.Kill(ctx, control.KillRequest{RunID: id, By: "ops"}); err != nil {
			t.Fatal(err)
		}
		f.finish(t, id, "a", store.StatusKilled)
		run := waitRunStatus(t, f.store, id)
		if run.Status != store.StatusKilled || run.Machines[1].Status != store.StatusCancelled {
			t.Fatalf("run %s, machines %+v; want killed with b cancelled", run.Status, run.Machines)
		}
	})
	for _, c := range []struct {
		policy string
		want   string
	}{
		{"all", store.StatusTimeout}, // the most severe
		{"any", store.StatusSucceeded},
		{"50%", store.StatusSucceeded},
		{"75%", store.StatusTimeout},
	} {
		t.Run("success "+c.policy, func(t *testing.T) {
			f := newFixture(t, &config.Job{Name: "j", Command: "x", Success: c.policy})
			f.tgt.machines = []string{"a", "b", "c", "d"}
			id, err := f.r.RunNow(ctx, "j", "alice")
			if err != nil {
				t.Fatal(err)
			}
			f.dispatches(t, 4)
			f.awaitDispatched(t, id)
			f.finish(t, id, "a", store.StatusSucceeded)
			f.finish(t, id, "b", store.StatusSucceeded)
			f.finish(t, id, "c", store.StatusFailed)
			f.finish(t, id, "d", store.StatusTimeout)
			if run := waitRunStatus(t, f.store, id); run.Status != c.want {
				t.Fatalf("2 of 4 succeeded under success = %q: run %s, want %s", c.policy, run.Status, c.want)
			}
		})
	}
}

// TestDispatchConcurrencyIsBounded: no more Dispatch calls than
// DispatchConcurrency are in flight at once, and every machine is
// dispatched all the same.
func TestDispatchConcurrencyIsBounded(t *testing.T) {
	f := newFixture(t, &config.Job{Name: "j", Command: "x"})
	f.r.cfg.DispatchConcurrency = 2
	f.tgt.machines = []string{"a", "b", "c", "d", "e", "f"}
	f.tgt.hold = make(chan struct{})
	if _, err := f.r.RunNow(context.Background(), "j", "alice"); err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	select {
	case req := <-f.tgt.dispatched:
		t.Fatalf("a third dispatch (%s) while two are in flight", req.Machine)
	default:
	}
	close(f.tgt.hold)
	f.dispatches(t, 4)
	if most := f.tgt.most.Load(); most != 2 {
		t.Fatalf("at most %d dispatches in flight, want 2", most)
	}
}

// take waits for the next dispatches, checks they are the machines want
// (in any order) and no other, and counts them in seen.
func (f *fixture) take(t *testing.T, seen map[string]int, want ...string) []target.DispatchRequest {
	t.Helper()
	var got []target.DispatchRequest
	var names []string
	for range want {
		select {
		case req := <-f.tgt.dispatched:
			got = append(got, req)
			names = append(names, req.Machine)
			seen[req.Machine]++
		case <-time.After(10 * time.Second):
			t.Fatalf("dispatched %v, want %v", names, want)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, want) {
		t.Fatalf("dispatched %v, want %v", names, want)
	}
	return got
}

// noDispatch fails if a dispatch is waiting.
func (f *fixture) noDispatch(t *testing.T, when string) {
	t.Helper()
	select {
	case req := <-f.tgt.dispatched:
		t.Fatalf("%s dispatched %s", when, req.Machine)
	default:
	}
}

func (f *fixture) machines(t *testing.T, id string) map[string]store.Machine {
	t.Helper()
	run, err := f.store.GetRun(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Machine{}
	for _, m := range run.Machines {
		out[m.Machine] = m
	}
	return out
}

func (h *fakeHub) expectedNames() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.expected {
		out = append(out, e.Machine)
	}
	slices.Sort(out)
	return out
}

// watchBatches reports the batches runners start waiting for, from now
// until the test ends; call it before starting the runner, so that the
// runner stops before the watch does.
func watchBatches(t *testing.T) <-chan []string {
	t.Helper()
	ch := make(chan []string, 100)
	batchWaiting = func(_ string, batch []string) {
		select {
		case ch <- slices.Clone(batch):
		default:
		}
	}
	t.Cleanup(func() { batchWaiting = nil })
	return ch
}

// awaitWaiting waits until a runner waits for the batch want to end.
func awaitWaiting(t *testing.T, ch <-chan []string, want ...string) {
	t.Helper()
	select {
	case got := <-ch:
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("the runner waits for %v to end, want %v", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the runner never waited for %v to end", want)
	}
}

// TestBatchesCarryOnAfterARestart: a core stopping while a run's first
// batch runs leaves the later batches queued, not cancelled; the next
// core counts the run as running, launches the second batch once the
// first ended and the third once the second did, and no machine is
// dispatched twice across the two cores.
func TestBatchesCarryOnAfterARestart(t *testing.T) {
	ctx := context.Background()
	j := &config.Job{Name: "j", Command: "x", BatchSize: 2, Success: "all", Overlap: config.OverlapSkip}
	waiting := watchBatches(t)
	f := newFixture(t, j)
	f.tgt.machines = []string{"f", "e", "d", "c", "b", "a"}
	seen := map[string]int{}
	id, err := f.r.RunNow(ctx, "j", "alice")
	if err != nil {
		t.Fatal(err)
	}
	f.take(t, seen, "a", "b")
	awaitWaiting(t, waiting, "a", "b")
	first := f.hub
	f.stop()

	wantReason := map[string]string{
		"a": "", "b": "",
		"c": hub.QueuedPrefix + "waiting for batch 2 of 3", "d": hub.QueuedPrefix + "waiting for batch 2 of 3",
		"e": hub.QueuedPrefix + "waiting for batch 3 of 3", "f": hub.QueuedPrefix + "waiting for batch 3 of 3",
	}
	for name, m := range f.machines(t, id) {
		if m.Status != store.StatusPending || m.Reason != wantReason[name] {
			t.Errorf("after the stop, machine %s is %s (%q), want pending (%q)", name, m.Status, m.Reason, wantReason[name])
		}
	}

	f.restart(t, j)
	// The machines dispatched before the stop are waited for, not
	// dispatched again.
	awaitWaiting(t, waiting, "a", "b")
	f.noDispatch(t, "before the first batch ended")
	// This core's hub knows none of the run's machines; the run is busy
	// all the same while batches wait.
	if _, err := f.r.RunNow(ctx, "j", "alice"); !errors.Is(err, control.ErrOverlap) {
		t.Fatalf("a second run while the first waits to launch batches: %v, want ErrOverlap", err)
	}
	prev := []string{"a", "b"}
	for _, batch := range [][]string{{"c", "d"}, {"e", "f"}} {
		for _, m := range prev {
			f.finish(t, id, m, store.StatusSucceeded)
		}
		f.take(t, seen, batch...)
		f.noDispatch(t, "with a batch running")
		ms := f.machines(t, id)
		for _, m := range batch {
			if ms[m].Reason != "" {
				t.Errorf("machine %s dispatched with its reason still %q", m, ms[m].Reason)
			}
		}
		prev = batch
	}
	for _, m := range prev {
		f.finish(t, id, m, store.StatusSucceeded)
	}
	if run := waitRunStatus(t, f.store, id); run.Status != store.StatusSucceeded {
		t.Fatalf("run %s, want succeeded", run.Status)
	}
	f.stop()
	f.noDispatch(t, "after the run ended")
	for _, m := range []string{"a", "b", "c", "d", "e", "f"} {
		if seen[m] != 1 {
			t.Errorf("machine %s dispatched %d times, want once", m, seen[m])
		}
	}
	if got := first.expectedNames(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("the first core's hub expected %v, want a and b", got)
	}
	if got := f.hub.expectedNames(); !slices.Equal(got, []string{"c", "d", "e", "f"}) {
		t.Errorf("the second core's hub expected %v, want c to f", got)
	}
}

// TestResumeQueuedMachines: a run in flight as a stopped core left it
// (a dispatched, b and c queued for batches 2 and 3). The next core
// launches b then c with the run's own spec once a ended, or cancels
// them when the job left the configuration, when the run was killed, or
// when abort_after_failures was reached; a is never dispatched again.
func TestResumeQueuedMachines(t *testing.T) {
	ctx := context.Background()
	// The job as reloaded since the run started: another command, no
	// timeout. The run keeps its own.
	reloaded := func(mod func(j *config.Job)) []*config.Job {
		j := &config.Job{Name: "j", Command: "new", BatchSize: 1, Success: "all", Wrapper: config.Wrapper{Protocol: 1}}
		if mod != nil {
			mod(j)
		}
		return []*config.Job{j}
	}
	spec := wire.Spec{Command: "old", Env: map[string]string{"K": "old"}, Timeout: "1m30s", Heartbeat: "5s"}
	tests := []struct {
		name    string
		jobs    []*config.Job
		prepare func(t *testing.T, st *memory.Store)
		// a is how the machine in flight ends ("" when it had ended).
		a string
		// launched is what the new core dispatches, a batch at a time.
		launched []string
		wantRun  string
		// cancelled, when set, is the reason b and c are cancelled with.
		cancelled string
	}{
		{name: "carries on with the run's spec", jobs: reloaded(nil), a: store.StatusSucceeded,
			launched: []string{"b", "c"}, wantRun: store.StatusSucceeded},
		{name: "job gone", jobs: []*config.Job{{Name: "other", Command: "x"}}, a: store.StatusSucceeded,
			wantRun: store.StatusCancelled, cancelled: "the job is no longer in the configuration"},
		{name: "killed", jobs: reloaded(nil), a: store.StatusKilled, wantRun: store.StatusKilled,
			cancelled: "the run was killed", prepare: func(t *testing.T, st *memory.Store) {
				t.Helper()
				by, at := "ops", time.Now().UTC()
				if err := st.UpdateRun(ctx, "r1", store.RunUpdate{KilledBy: &by, KilledAt: &at,
					AddAction: &store.Action{Kind: killq.Kill, By: by, At: at}}); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "abort after failures", jobs: reloaded(func(j *config.Job) { j.AbortAfterFailures = 1 }),
			wantRun: store.StatusFailed, cancelled: "abort_after_failures = 1 reached",
			prepare: func(t *testing.T, st *memory.Store) {
				t.Helper()
				failed := store.StatusFailed
				if err := st.UpdateMachine(ctx, "r1", "a", store.MachineUpdate{Status: &failed}); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIdleFixture()
			specJSON, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.store.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Trigger: store.TriggerManual,
				StartedAt: time.Now().UTC(), Status: store.StatusRunning, Spec: specJSON}); err != nil {
				t.Fatal(err)
			}
			if err := f.store.AddMachines(ctx, "r1", []store.Machine{
				{Machine: "a", Status: store.StatusPending, Protocol: 1},
				{Machine: "b", Status: store.StatusPending, Protocol: 1, Reason: hub.QueuedPrefix + "waiting for batch 2 of 3"},
				{Machine: "c", Status: store.StatusPending, Protocol: 1, Reason: hub.QueuedPrefix + "waiting for batch 3 of 3"},
			}); err != nil {
				t.Fatal(err)
			}
			if tc.prepare != nil {
				tc.prepare(t, f.store)
			}
			waiting := watchBatches(t)
			f.start(t, tc.jobs...)
			seen := map[string]int{}
			if tc.launched != nil {
				awaitWaiting(t, waiting, "a")
				f.noDispatch(t, "before a ended")
			}
			prev := "a"
			if tc.a == "" {
				prev = ""
			}
			status := tc.a
			for _, m := range tc.launched {
				f.finish(t, "r1", prev, status)
				req := f.take(t, seen, m)[0]
				if req.Env[wire.EnvCommand] != "old" || req.Env["K"] != "old" || req.Env[wire.EnvTimeout] != "90" {
					t.Errorf("v1 dispatch of %s with %v, want the run's spec", m, req.Env)
				}
				prev, status = m, store.StatusSucceeded
			}
			if prev != "" {
				f.finish(t, "r1", prev, status)
			}
			if run := waitRunStatus(t, f.store, "r1"); run.Status != tc.wantRun {
				t.Fatalf("run %s, want %s", run.Status, tc.wantRun)
			}
			// Whatever the new core carries on with is done once it stopped.
			f.stop()
			f.noDispatch(t, "after the run ended")
			if seen["a"] != 0 {
				t.Errorf("a, dispatched before the restart, was dispatched again")
			}
			f.hub.mu.Lock()
			for _, e := range f.hub.expected {
				if e.Spec.Command != "old" || e.Timeout != 90*time.Second || e.Protocol != 1 {
					t.Errorf("hub expects %s with %+v, timeout %s, protocol %d; want the run's spec", e.Machine, e.Spec, e.Timeout, e.Protocol)
				}
			}
			f.hub.mu.Unlock()
			if tc.cancelled == "" {
				return
			}
			ms := f.machines(t, "r1")
			for _, m := range []string{"b", "c"} {
				if ms[m].Status != store.StatusCancelled || !strings.Contains(ms[m].Reason, tc.cancelled) {
					t.Errorf("machine %s: %s (%q), want cancelled: %s", m, ms[m].Status, ms[m].Reason, tc.cancelled)
				}
			}
		})
	}
}

// TestResumeRunWithoutMachines: a run recorded by a core that stopped
// before it recorded any machine was never dispatched anywhere: the next
// core dispatches it, with the run's own spec, rather than leaving it
// running forever (which would also block the job under overlap "skip").
// With the job gone, it fails and says why.
func TestResumeRunWithoutMachines(t *testing.T) {
	ctx := context.Background()
	spec := wire.Spec{Command: "old", Timeout: "1m30s", Heartbeat: "5s"}
	tests := []struct {
		name    string
		jobs    []*config.Job
		wantRun string
		reason  string
	}{
		{"dispatched", []*config.Job{{Name: "j", Command: "new", Success: "all", Overlap: "skip"}}, store.StatusSucceeded, ""},
		{"job gone", []*config.Job{{Name: "other", Command: "x"}}, store.StatusError, "the job is no longer in the configuration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newIdleFixture()
			specJSON, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.store.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Trigger: store.TriggerManual,
				StartedAt: time.Now().UTC(), Status: store.StatusRunning, Spec: specJSON}); err != nil {
				t.Fatal(err)
			}
			f.start(t, tc.jobs...)
			defer f.stop()
			if tc.wantRun == store.StatusSucceeded {
				seen := map[string]int{}
				f.take(t, seen, "a", "b")
				f.hub.mu.Lock()
				for _, e := range f.hub.expected {
					if e.Spec.Command != "old" || e.Timeout != 90*time.Second {
						t.Errorf("hub expects %s with %+v, timeout %s; want the run's spec", e.Machine, e.Spec, e.Timeout)
					}
				}
				f.hub.mu.Unlock()
				f.finish(t, "r1", "a", store.StatusSucceeded)
				f.finish(t, "r1", "b", store.StatusSucceeded)
			}
			run := waitRunStatus(t, f.store, "r1")
			if run.Status != tc.wantRun || !strings.Contains(run.Reason, tc.reason) {
				t.Fatalf("run %s (%q), want %s (%q)", run.Status, run.Reason, tc.wantRun, tc.reason)
			}
		})
	}
}

// TestOverlapQueueAndReplace: under "queue" a firing while the job runs
// is recorded and starts once the running run ended; under "replace" the
// running run is killed first; one run at most waits, a further firing is
// refused; a queued run killed before it started is cancelled, never
// dispatched.
func TestOverlapQueueAndReplace(t *testing.T) {
	queue := &config.Job{Name: "queue", Command: "x", Overlap: config.OverlapQueue}
	replace := &config.Job{Name: "replace", Command: "x", Overlap: config.OverlapReplace}
	f := newFixture(t, queue, replace)
	ctx := context.Background()
	done := make(chan struct{})
	defer close(done)
	go f.kills.Run(done)

	busyRun := func(job string) string {
		t.Helper()
		id, err := f.r.RunNow(ctx, job, "a")
		if err != nil {
			t.Fatal(err)
		}
		f.dispatches(t, 2)
		f.awaitDispatched(t, id)
		f.hub.setBusy(id, true)
		return id
	}
	end := func(id string) {
		t.Helper()
		f.hub.setBusy(id, false)
		f.finish(t, id, "a", store.StatusSucceeded)
		f.finish(t, id, "b", store.StatusSucceeded)
	}
	queuedReason := func(id string) string {
		t.Helper()
		run, err := f.store.GetRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return run.Reason
	}

	for _, job := range []string{"queue", "replace"} {
		t.Run(job, func(t *testing.T) {
			first := busyRun(job)
			second, err := f.r.RunNow(ctx, job, "a")
			if err != nil {
				t.Fatalf("a run while the job runs, under %s: %v", job, err)
			}
			if !strings.HasPrefix(queuedReason(second), "queued: ") {
				t.Errorf("queued run's reason %q", queuedReason(second))
			}
			if _, err := f.r.RunNow(ctx, job, "a"); !errors.Is(err, control.ErrOverlap) {
				t.Fatalf("a third run while one is queued: %v, want ErrOverlap", err)
			}
			if job == "replace" {
				select {
				case k := <-f.kills.C():
					if k.Kind != killq.Kill || k.RunID != first || !strings.Contains(k.By, second) {
						t.Fatalf("kill %+v, want one of %s by the run replacing it", k, first)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("replace did not kill the running run")
				}
			}
			f.noDispatch(t, "while the first run runs")
			end(first)
			f.dispatches(t, 2)
			f.awaitDispatched(t, second)
			if r := queuedReason(second); r != "" {
				t.Errorf("started run still says %q", r)
			}
			end(second)
			waitRunStatus(t, f.store, second)
		})
	}

	t.Run("killed while queued", func(t *testing.T) {
		first := busyRun("queue")
		second, err := f.r.RunNow(ctx, "queue", "a")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.r.Kill(ctx, control.KillRequest{RunID: second, By: "ops"}); err != nil {
			t.Fatal(err)
		}
		<-f.kills.C()
		run := waitRunStatus(t, f.store, second)
		if run.Status != store.StatusCancelled || !strings.Contains(run.Reason, "killed by ops before it started") {
			t.Fatalf("queued run killed: %s (%q)", run.Status, run.Reason)
		}
		end(first)
		f.noDispatch(t, "after the killed queued run's turn came")
	})
}

// TestResumeQueuedRun: a run queued by overlap "queue" when the core
// stopped (recorded, no machine) waits again after the restart for the
// run it was queued behind, then dispatches.
func TestResumeQueuedRun(t *testing.T) {
	ctx := context.Background()
	f := newIdleFixture()
	specJSON, err := json.Marshal(wire.Spec{Command: "x", Heartbeat: "5s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		if err := f.store.CreateRun(ctx, store.Run{ID: id, Job: "j", Trigger: store.TriggerManual,
			StartedAt: time.Now().UTC(), Status: store.StatusRunning, Spec: specJSON}); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.store.AddMachines(ctx, "r1", []store.Machine{{Machine: "a", Status: store.StatusRunning}}); err != nil {
		t.Fatal(err)
	}
	f.hub.setBusy("r1", true)
	f.start(t, &config.Job{Name: "j", Command: "x", Overlap: config.OverlapQueue})
	defer f.stop()
	f.noDispatch(t, "while r1 runs")
	if _, err := f.r.RunNow(ctx, "j", "a"); !errors.Is(err, control.ErrOverlap) {
		t.Fatalf("a run while r2 is queued: %v, want ErrOverlap", err)
	}
	f.hub.setBusy("r1", false)
	f.finish(t, "r1", "a", store.StatusSucceeded)
	f.dispatches(t, 2)
	f.awaitDispatched(t, "r2")
}

func TestJitterOf(t *testing.T) {
	const jitter = 10 * time.Second
	var lo, hi, sum time.Duration = jitter, 0, 0
	const n = 2000
	for i := range n {
		d := JitterOf("backup", fmt.Sprintf("web%d", i), jitter)
		if d < 0 || d >= jitter {
			t.Fatalf("web%d: %s, outside [0, %s)", i, d, jitter)
		}
		if again := JitterOf("backup", fmt.Sprintf("web%d", i), jitter); again != d {
			t.Fatalf("web%d: %s, then %s: not stable", i, d, again)
		}
		lo, hi, sum = min(lo, d), max(hi, d), sum+d
	}
	if lo > jitter/20 || hi < jitter*19/20 {
		t.Errorf("%d machines spread over [%s, %s], want nearly all of [0, %s)", n, lo, hi, jitter)
	}
	if mean := sum / n; mean < jitter*4/10 || mean > jitter*6/10 {
		t.Errorf("mean %s, want about half of %s", mean, jitter)
	}
	if JitterOf("backup", "web1", jitter) == JitterOf("restore", "web1", jitter) {
		t.Error("two jobs give a machine the same delay")
	}
}

// TestJitter: a scheduled firing dispatches each machine no sooner than
// its own share of the job's jitter; a manual run is not delayed; a kill while machines wait for their jitter
// cancels them.
func TestJitter(t *testing.T) {
	const jitter = 400 * time.Millisecond
	f := newIdleFixture()
	f.tgt.machines = []string{"m1", "m2", "m3", "m4"}
	f.start(t, &config.Job{Name: "j", Command: "x", Enabled: true, Jitter: jitter, Overlap: config.OverlapAllow},
		&config.Job{Name: "k", Command: "x", Enabled: true, Jitter: time.Hour, Overlap: config.OverlapAllow})
	ctx := context.Background()

	fired := time.Now()
	f.firings <- schedule.Firing{Job: "j", Slot: fired.Truncate(time.Second)}
	for range 4 {
		req := f.nextDispatch(t, "the scheduled firing dispatched nothing")
		after := time.Since(fired)
		share := JitterOf("j", req.Machine, jitter)
		if after < share {
			t.Errorf("%s dispatched %s after the firing, before its jitter %s", req.Machine, after, share)
		}
	}

	id, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 4)
	for m, row := range f.machines(t, id) {
		if row.Reason != "" {
			t.Errorf("manual run: %s has reason %q, want no jitter", m, row.Reason)
		}
	}

	// Job k's machines wait up to an hour: killed meanwhile, the run
	// cancels them all, dispatching none.
	f.firings <- schedule.Firing{Job: "k", Slot: fired.Truncate(time.Second)}
	kid := f.awaitRun(t, "k", "the run with its machines", func(r store.Run) bool { return len(r.Machines) == 4 }).ID
	for m, row := range f.machines(t, kid) {
		if !strings.HasPrefix(row.Reason, hub.QueuedPrefix+"jitter") {
			t.Errorf("%s waiting for its jitter has reason %q", m, row.Reason)
		}
	}
	if _, err := f.r.Kill(ctx, control.KillRequest{RunID: kid, By: "ops"}); err != nil {
		t.Fatal(err)
	}
	if run := waitRunStatus(t, f.store, kid); run.Status != store.StatusCancelled {
		t.Fatalf("run killed while its machines waited for their jitter: %s", run.Status)
	}
	f.noDispatch(t, "after the kill")
}

// TestJitterCountsFromTheFiring: a firing whose machines took a while to
// resolve dispatches each at its share of the jitter after the firing,
// at once if that has passed, not at its share after the resolution.
func TestJitterCountsFromTheFiring(t *testing.T) {
	const jitter, resolving = 1200 * time.Millisecond, 600 * time.Millisecond
	f := newIdleFixture()
	f.tgt.machines = []string{"m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"}
	late := 0
	for _, m := range f.tgt.machines {
		if JitterOf("j", m, jitter) > resolving {
			late++
		}
	}
	if late == 0 {
		t.Fatal("no machine's share is past the resolution: the test cannot tell when the shares count from")
	}
	f.tgt.resolveHold = make(chan struct{})
	f.start(t, &config.Job{Name: "j", Command: "x", Enabled: true, Jitter: jitter, Overlap: config.OverlapAllow})

	fired := time.Now()
	f.firings <- schedule.Firing{Job: "j", Slot: fired.Truncate(time.Second)}
	resolved := time.AfterFunc(resolving, func() { close(f.tgt.resolveHold) }) // the slow target is the case
	defer resolved.Stop()
	for range f.tgt.machines {
		req := f.nextDispatch(t, "the scheduled firing did not dispatch all its machines")
		after := time.Since(fired)
		due := max(JitterOf("j", req.Machine, jitter), resolving)
		if after < due {
			t.Errorf("%s dispatched %s after the firing, before it was due (%s)", req.Machine, after, due)
		}
		// Counted from the resolution it would be its share later than
		// due, up to a whole resolving late.
		if after > due+resolving/2 {
			t.Errorf("%s dispatched %s after the firing, %s after it was due", req.Machine, after, after-due)
		}
	}
}

// TestJitterOfAQueuedRun: a run that waited for its turn (overlap
// "queue") spreads its machines from the turn, though every share
// counted from its firing has passed by then.
func TestJitterOfAQueuedRun(t *testing.T) {
	const jitter = 500 * time.Millisecond
	f := newIdleFixture()
	f.tgt.machines = []string{"m1", "m2", "m3", "m4", "m5", "m6"}
	f.start(t, &config.Job{Name: "j", Command: "x", Enabled: true, Jitter: jitter, Overlap: config.OverlapQueue})

	slot := time.Now().Truncate(time.Second)
	f.firings <- schedule.Firing{Job: "j", Slot: slot}
	first := f.dispatches(t, len(f.tgt.machines))["m1"].RunID
	f.awaitDispatched(t, first)
	f.hub.setBusy(first, true)
	f.firings <- schedule.Firing{Job: "j", Slot: slot.Add(time.Second)}
	second := f.awaitRun(t, "j", "the second firing's run", func(r store.Run) bool { return r.ID != first }).ID
	time.Sleep(jitter) // the first run outlasts every share of the second's firing: the case
	f.noDispatch(t, "while the first run runs")

	turn := time.Now()
	f.hub.setBusy(first, false)
	for _, m := range f.tgt.machines {
		f.finish(t, first, m, store.StatusSucceeded)
	}
	for range f.tgt.machines {
		req := f.nextDispatch(t, "the queued run did not dispatch all its machines")
		if req.RunID != second {
			t.Fatalf("dispatch of run %s, want the queued %s", req.RunID, second)
		}
		if after, share := time.Since(turn), JitterOf("j", req.Machine, jitter); after < share {
			t.Errorf("%s dispatched %s after the queued run's turn, before its share %s", req.Machine, after, share)
		}
	}
}

// TestNotifications: a run's end puts its notifications in the outbox
// with its final status (failure, then success and recovered), a run past
// its soft timeout notifies soft_timeout, a slot skipped by overlap
// notifies missed, and the dead-man check notifies missed once per gap.
func TestNotifications(t *testing.T) {
	ctx := context.Background()
	job := &config.Job{Name: "j", Command: "x", Enabled: true, SoftTimeout: 150 * time.Millisecond,
		Expect: &config.Expect{MaxGap: 300 * time.Millisecond},
		Notify: []config.Notify{{Notifier: "ops", On: []string{"failure", "success", "recovered", "soft_timeout", "missed"}}}}
	f := newFixture(t, job)
	await := func(what string, cond func([]store.Notification) bool) []store.Notification {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			ns, err := f.store.ListNotifications(ctx, store.NotificationFilter{Job: "j"})
			if err != nil {
				t.Fatal(err)
			}
			if cond(ns) {
				return ns
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: outbox holds %+v", what, ns)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	has := func(id string) func([]store.Notification) bool {
		return func(ns []store.Notification) bool {
			return slices.ContainsFunc(ns, func(n store.Notification) bool { return n.ID == id })
		}
	}
	count := func(ns []store.Notification, prefix string) int {
		n := 0
		for _, x := range ns {
			if strings.HasPrefix(x.ID, prefix) {
				n++
			}
		}
		return n
	}

	first, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	f.awaitDispatched(t, first)
	// Still running past its soft timeout.
	await("soft timeout", has(first+"/ops/soft_timeout"))
	if run, err := f.store.GetRun(ctx, first); err != nil || !slices.ContainsFunc(run.Actions, func(a store.Action) bool {
		return a.Kind == store.ActionSoftTimeout && a.By == "core"
	}) {
		t.Fatalf("the run past its soft timeout does not record it: %+v %v", run.Actions, err)
	}
	f.finish(t, first, "a", store.StatusFailed)
	f.finish(t, first, "b", store.StatusSucceeded)
	if run := waitRunStatus(t, f.store, first); run.Status != store.StatusFailed {
		t.Fatalf("first run %s", run.Status)
	}
	await("failure", has(first+"/ops/failure"))

	second, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	f.awaitDispatched(t, second)
	f.finish(t, second, "a", store.StatusSucceeded)
	f.finish(t, second, "b", store.StatusSucceeded)
	waitRunStatus(t, f.store, second)
	ns := await("success and recovered", func(ns []store.Notification) bool {
		return has(second+"/ops/success")(ns) && has(second+"/ops/recovered")(ns)
	})
	if count(ns, second+"/") != 2 {
		t.Errorf("second run notified %d times, want success and recovered: %+v", count(ns, second+"/"), ns)
	}

	// The dead-man check: no success for more than 300ms, told once.
	ns = await("dead-man", func(ns []store.Notification) bool { return count(ns, "j/ops/missed/gap/") > 0 })
	time.Sleep(5 * f.r.cfg.DeadmanInterval) // several more checks of the same gap
	ns = await("dead-man", func(ns []store.Notification) bool { return true })
	if n := count(ns, "j/ops/missed/gap/"); n != 1 {
		t.Errorf("the dead-man check notified %d times for one gap", n)
	}

	// A slot that overlap skips while a run goes on.
	third, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	f.awaitDispatched(t, third)
	f.hub.setBusy(third, true)
	slot := time.Now().Truncate(time.Second)
	f.firings <- schedule.Firing{Job: "j", Slot: slot}
	await("missed slot", has(fmt.Sprintf("j/ops/missed/slot/%d", slot.Unix())))
	if f.notified.Load() == 0 {
		t.Error("Notified was never called")
	}
}

// TestRetry: a run's failed machines, and only they, run again as a run
// with trigger retry after the back-off, doubled at each attempt, up to
// the job's attempts; a machine that succeeded is not run again.
func TestRetry(t *testing.T) {
	ctx := context.Background()
	job := &config.Job{Name: "j", Command: "x", Retry: &config.Retry{Attempts: 2, Backoff: 50 * time.Millisecond}}
	f := newFixture(t, job)
	first, err := f.r.RunNow(ctx, "j", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.dispatches(t, 2)
	f.awaitDispatched(t, first)
	// Taken before the run ends, so that the retry cannot come sooner.
	ended := time.Now()
	f.finish(t, first, "a", store.StatusFailed)
	f.finish(t, first, "b", store.StatusSucceeded)
	prev := first
	for attempt := 1; attempt <= 2; attempt++ {
		var retry store.Run
		deadline := time.Now().Add(10 * time.Second)
		for retry.ID == "" {
			runs, err := f.store.ListRuns(ctx, store.RunFilter{Job: "j"})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.RequestedBy == fmt.Sprintf("retry %d/2 of %s", attempt, prev) {
					retry = r
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no retry %d of %s: %+v", attempt, prev, runs)
			}
			time.Sleep(time.Millisecond)
		}
		if retry.Trigger != store.TriggerRetry || len(retry.Machines) != 1 || retry.Machines[0].Machine != "a" {
			t.Fatalf("retry %d: %+v, want trigger retry on a only", attempt, retry)
		}
		req := f.dispatches(t, 1)
		if _, ok := req["a"]; !ok {
			t.Fatalf("retry %d dispatched %v, want a", attempt, req)
		}
		if waited, backoff := time.Since(ended), time.Duration(attempt)*50*time.Millisecond; waited < backoff {
			t.Errorf("retry %d dispatched %s after the run it retries ended, before its back-off of %s", attempt, waited, backoff)
		}
		f.awaitDispatched(t, retry.ID)
		ended = time.Now()
		f.finish(t, retry.ID, "a", store.StatusFailed)
		if run := waitRunStatus(t, f.store, retry.ID); run.Status != store.StatusFailed {
			t.Fatalf("retry %d: %s", attempt, run.Status)
		}
		prev = retry.ID
	}
	// Two attempts were all: no third.
	time.Sleep(300 * time.Millisecond) // past a third back-off (200ms), were there one
	f.noDispatch(t, "after the last retry")
	runs, err := f.store.ListRuns(ctx, store.RunFilter{Job: "j"})
	if err != nil || len(runs) != 3 {
		t.Fatalf("%d runs, want the run and 2 retries: %v", len(runs), err)
	}
}

// TestDisabledJobMissesItsSlot: a disabled job whose notify blocks ask
// for missed is told once, at the first slot it misses, not at every
// slot; enabled and disabled again, it is told again.
func TestDisabledJobMissesItsSlot(t *testing.T) {
	ctx := context.Background()
	f := newIdleFixture()
	f.start(t, &config.Job{Name: "j", Command: "x", Enabled: false, Schedule: "* * * * * *",
		Notify: []config.Notify{{Notifier: "ops", On: []string{"missed"}}}})
	missed := func() int {
		t.Helper()
		ns, err := f.store.ListNotifications(ctx, store.NotificationFilter{Job: "j"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, x := range ns {
			if strings.HasPrefix(x.ID, "j/ops/missed/disabled/") {
				n++
			}
		}
		return n
	}
	await := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for missed() < want {
			if time.Now().After(deadline) {
				t.Fatalf("%d missed notifications, want %d", missed(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	await(1)
	time.Sleep(2500 * time.Millisecond) // two more slots pass, still disabled
	if n := missed(); n != 1 {
		t.Fatalf("%d missed notifications after three missed slots, want one", n)
	}
	if err := f.r.SetEnabled(ctx, "j", true, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := f.r.SetEnabled(ctx, "j", false, "ops"); err != nil {
		t.Fatal(err)
	}
	await(2)
}

// TestRetryOwedByAStoppedCore: a core that stopped between recording a
// run's end and its retry leaves the retry to the next core, which
// records it at start; a run that already has its retry gets no second.
func TestRetryOwedByAStoppedCore(t *testing.T) {
	ctx := context.Background()
	f := newIdleFixture()
	specJSON, err := json.Marshal(wire.Spec{Command: "x", Heartbeat: "5s"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := f.store.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Trigger: store.TriggerSchedule, StartedAt: now.Add(-time.Minute),
		FinishedAt: now, Status: store.StatusFailed, Spec: specJSON}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.AddMachines(ctx, "r1", []store.Machine{
		{Machine: "a", Status: store.StatusFailed, Protocol: 2},
		{Machine: "b", Status: store.StatusSucceeded, Protocol: 2},
	}); err != nil {
		t.Fatal(err)
	}
	f.start(t, &config.Job{Name: "j", Command: "x", Retry: &config.Retry{Attempts: 2, Backoff: 10 * time.Millisecond}})
	req := f.dispatches(t, 1)
	if _, ok := req["a"]; !ok {
		t.Fatalf("the owed retry dispatched %v, want a", req)
	}
	runs, err := f.store.ListRuns(ctx, store.RunFilter{Job: "j"})
	if err != nil || len(runs) != 2 || runs[0].RequestedBy != "retry 1/2 of r1" {
		t.Fatalf("runs %+v %v, want r1 and its retry", runs, err)
	}
	// Restarted again while the retry runs: nothing more is owed.
	f.restart(t, &config.Job{Name: "j", Command: "x", Retry: &config.Retry{Attempts: 2, Backoff: 10 * time.Millisecond}})
	// The loop answering means start is done, owed retries looked for.
	if _, err := f.r.Job(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	f.noDispatch(t, "after a second restart")
	if runs, err := f.store.ListRuns(ctx, store.RunFilter{Job: "j"}); err != nil || len(runs) != 2 {
		t.Fatalf("%d runs after a second restart, want 2: %v", len(runs), err)
	}
}

// blockingFireStore holds every FireRun until release is closed, telling
// entered of each call.
type blockingFireStore struct {
	*memory.Store
	entered chan string
	release chan struct{}
}

func (s blockingFireStore) FireRun(ctx context.Context, run store.Run) (bool, error) {
	s.entered <- run.Job
	<-s.release
	return s.Store.FireRun(ctx, run)
}

// TestFiringsRecordedConcurrently: the loop does not wait for the store
// to record a firing before it takes the next, so that a store taking
// milliseconds per write does not bound the jobs a core can fire a
// second (and a store may commit concurrent writes as one).
func TestFiringsRecordedConcurrently(t *testing.T) {
	sched, err := schedule.Parse("@every 1m")
	if err != nil {
		t.Fatal(err)
	}
	var jobs []*config.Job
	for _, name := range []string{"a", "b", "c"} {
		jobs = append(jobs, &config.Job{Name: name, Command: "x", Enabled: true, Schedule: "@every 1m", ParsedSchedule: sched,
			CatchUp: "none", Overlap: config.OverlapAllow, Location: time.UTC, Target: config.Target{Plugin: "fake"}})
	}
	st := blockingFireStore{Store: memory.New(), entered: make(chan string, len(jobs)), release: make(chan struct{})}
	tgt := &fakeTarget{machines: []string{"m"}, dispatched: make(chan target.DispatchRequest, 16)}
	conf := &config.Config{Jobs: jobs, Core: config.Core{HeartbeatInterval: time.Second, ConnectDeadline: time.Minute}}
	r := New(Config{Logger: hclog.NewNullLogger(), Store: st, Hub: newFakeHub(), Targets: fakeTargets{tgt}, Tokens: fakeTokens{},
		Kills: killq.New(), Scheduler: &fakeScheduler{}, URLs: []string{"ws://c/ws"}}, conf)
	ctx, cancel := context.WithCancel(context.Background())
	firings := make(chan schedule.Firing)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, firings) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	// Released before Run is awaited, so that a failing test ends.
	release := sync.OnceFunc(func() { close(st.release) })
	defer release()
	slot := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	timeout := time.After(10 * time.Second)
	inFlight := map[string]bool{}
	for _, j := range jobs {
		select {
		case firings <- schedule.Firing{Job: j.Name, Slot: slot}:
		case <-timeout:
			t.Fatalf("the runner took no firing of %s while %v were being recorded", j.Name, inFlight)
		}
	}
	for len(inFlight) < len(jobs) {
		select {
		case j := <-st.entered:
			inFlight[j] = true
		case <-timeout:
			t.Fatalf("only %v reached the store together, want all %d firings", inFlight, len(jobs))
		}
	}
	release()
	for range jobs {
		select {
		case <-tgt.dispatched:
		case <-timeout:
			t.Fatal("a recorded firing was not dispatched")
		}
	}
}

// TestRunStartedWhenReserved: a run's started_at is the instant the loop
// reserved it, the one its id carries, not a later reading taken once
// the goroutine that records it runs: a firing's lateness is measured to
// it (BenchmarkFirePrecision). A manual run is scheduled for that same
// instant. The clock moves a second at every reading, so that any later
// reading differs from it in the id's leading digits.
func TestRunStartedWhenReserved(t *testing.T) {
	sched, err := schedule.Parse("* * * * * *")
	if err != nil {
		t.Fatal(err)
	}
	slot := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	j := &config.Job{Name: "j", Command: "x", Enabled: true, Schedule: "* * * * * *", ParsedSchedule: sched,
		CatchUp: "none", Overlap: config.OverlapAllow}
	f := newIdleFixture()
	f.tgt.machines = []string{"a"}
	var readings atomic.Int64
	f.now = func() time.Time { return slot.Add(time.Duration(readings.Add(1)) * time.Second) }
	f.start(t, j)

	f.firings <- schedule.Firing{Job: "j", Slot: slot}
	f.dispatches(t, 1)
	manual, err := f.r.RunNow(context.Background(), "j", "test")
	if err != nil {
		t.Fatalf("run now: %v", err)
	}
	f.dispatches(t, 1)
	runs, err := f.store.ListRuns(context.Background(), store.RunFilter{Job: "j"})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 {
		t.Fatalf("runs %+v; want the scheduled one and the manual one", runs)
	}
	for _, run := range runs {
		// The id's first 9 digits are its time's leading 45 bits.
		if got := newRunID(run.StartedAt)[:9]; got != run.ID[:9] {
			t.Errorf("run %s (%s) started at %s, not at the time its id carries", run.ID, run.Trigger, run.StartedAt)
		}
		if run.ID == manual && !run.ScheduledFor.Equal(run.StartedAt) {
			t.Errorf("manual run %s scheduled for %s, started at %s: want the same instant", run.ID, run.ScheduledFor, run.StartedAt)
		}
	}
}

// TestOnFiredTellsAScheduledRunsLag: the runner tells OnFired how late
// each scheduled run was recorded after its slot, by its clock; not of a
// catch-up run (late by design) nor of a manual one (no slot).
func TestOnFiredTellsAScheduledRunsLag(t *testing.T) {
	sched, err := schedule.Parse("@every 1m")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	var now atomic.Int64 // the clock, in Unix nanoseconds
	now.Store(base.Add(3*time.Minute + 30*time.Second).UnixNano())
	f := newIdleFixture()
	f.tgt.machines = []string{"a"}
	f.now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	lags := make(chan time.Duration, 8)
	f.onFired = func(d time.Duration) { lags <- d }
	// The last core fired 10:00: this one, started at 10:03:30, catches
	// up 10:03.
	if ok, err := f.store.RecordFire(context.Background(), "j", base, "old"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	f.start(t, &config.Job{Name: "j", Command: "x", Enabled: true, Schedule: "@every 1m", ParsedSchedule: sched,
		CatchUp: "latest", Overlap: config.OverlapAllow})

	// The loop answers once it caught up, the slot to catch up chosen.
	if err := f.r.do(context.Background(), func(*state) {}); err != nil {
		t.Fatal(err)
	}
	now.Store(base.Add(4*time.Minute + 1500*time.Millisecond).UnixNano())
	f.firings <- schedule.Firing{Job: "j", Slot: base.Add(4 * time.Minute)}
	select {
	case lag := <-lags:
		if lag != 1500*time.Millisecond {
			t.Errorf("OnFired told %s for the 10:04 slot at 10:04:01.5, want 1.5s", lag)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnFired not told of the scheduled run")
	}
	if _, err := f.r.RunNow(context.Background(), "j", "test"); err != nil {
		t.Fatal(err)
	}
	// OnFired is told before a run dispatches: once the three runs (the
	// catch-up, the scheduled and the manual one) dispatched, it has
	// been told all it will be.
	f.dispatches(t, 3)
	f.awaitRun(t, "j", "the catch-up run", func(r store.Run) bool { return r.Trigger == store.TriggerCatchUp })
	select {
	case lag := <-lags:
		t.Fatalf("OnFired told %s more: of a catch-up or a manual run", lag)
	default:
	}
}

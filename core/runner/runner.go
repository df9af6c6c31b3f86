package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/core/config"
	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/killq"
	"github.com/saltpeter/saltpeter/core/notify"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/target"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// Hub is what the runner needs of the wrapper hub.
type Hub interface {
	Expect(ctx context.Context, e hub.Expectation) error
	Fail(ctx context.Context, runID, machine, status string, exitCode int, reason string) error
	Busy(runID string) bool
}

// Targets hands out target plugins by name.
type Targets interface {
	Target(ctx context.Context, name string) (target.Target, error)
}

// Tokens makes the single-use credential a wrapper connects with.
type Tokens interface {
	Bootstrap(runID, machine string) string
}

// Scheduler is told which jobs fire when, and says when they fire next.
type Scheduler interface {
	Set(entries []schedule.Entry)
	NextRun(job string) time.Time
}

// Config wires a Runner.
type Config struct {
	Logger    hclog.Logger
	Store     store.Store
	Hub       Hub
	Targets   Targets
	Tokens    Tokens
	Kills     *killq.Queue
	Scheduler Scheduler
	Publish   func(events.Event)
	// Load re-reads the configuration for Reload.
	Load func() (*config.Config, error)
	// URLs are the advertised wrapper endpoint URLs (with /ws).
	URLs []string
	// CAFile is given to wrappers when the core uses a private CA.
	CAFile string
	// DispatchTimeout bounds one target Dispatch call; default 3m (a
	// loaded host can take long to start a session and a process).
	DispatchTimeout time.Duration
	// DispatchConcurrency bounds the Dispatch calls of one batch in
	// flight at once; default 32.
	DispatchConcurrency int
	// CoreURL is the core's base URL, for links in notifications ("":
	// none).
	CoreURL string
	// Notified is called after notifications were put in the outbox, to
	// wake their delivery; nil: nothing to wake.
	Notified func()
	// OnRunEnd, optional, is told of each run that ended, as recorded
	// (for metrics). It must not block.
	OnRunEnd func(store.Run)
	// OnFired, optional, is told how late each scheduled run was
	// recorded: from its slot to its record in the store, by Now (for
	// metrics: a core falling behind its schedules shows there first).
	// Catch-up runs are not told, being late by design. It must not
	// block.
	OnFired func(lag time.Duration)
	// DeadmanInterval is how often the jobs' expect blocks are checked;
	// default 1m.
	DeadmanInterval time.Duration
	// PlanWait is how long a run's start waits for its target to resolve
	// its machines, so as to record them with the run (see start);
	// default 100ms.
	PlanWait time.Duration
	Now      func() time.Time
}

// Runner carries firings and operator requests to the hub and the store.
type Runner struct {
	cfg  Config
	log  hclog.Logger
	reqs chan func(*state)
	// stopped is closed when the loop has ended, so that late requests
	// (a dispatch finishing during shutdown) fail instead of waiting.
	stopped chan struct{}
	// initial is the configuration Run starts with; after that the loop
	// owns the one in force.
	initial *config.Config
	// work tracks the goroutines that start runs, so Run can wait for
	// them on shutdown.
	work sync.WaitGroup
	// firing holds a token per scheduled firing being recorded.
	firing chan struct{}
}

// state is owned by the loop goroutine.
type state struct {
	conf      *config.Config
	overrides map[string]store.JobOverride
	// maintenance is the API's override of the HCL maintenance block,
	// nil when there is none.
	maintenance *store.Maintenance
	// active holds runs this core started that may still be busy, by job.
	active map[string][]*activeRun
	// retried holds the runs whose retry this core recorded.
	retried map[string]bool
	// disabled watches the disabled jobs whose missed slots someone wants
	// to hear of (see watchDisabled), by job.
	disabled map[string]*disabledWatch
	// tallies holds, by run, what finalize needs to know of the runs in
	// flight without reading them (see tally). Unlike active, which
	// overlap prunes once the hub says a run is idle, a tally stays until
	// the run's end is recorded.
	tallies map[string]*tally
}

type activeRun struct {
	id string
	// reserved is when the loop reserved the run (reserve): the time its
	// id carries, and its started_at. A firing's lateness ends there,
	// not once the goroutine that records the run gets to run, which on
	// a VM slow to wake a thread came up to a millisecond later.
	reserved time.Time
	// dispatched turns true once every machine is registered with the
	// hub (or failed); before that the hub cannot tell it is busy.
	dispatched bool
	// success is the job's success policy when the run started.
	success string
	// changed is poked when one of the run's machines became final, for
	// a dispatch waiting for a batch to finish; ends lists those machines
	// for it, so that it need not read the run on every poke (see
	// awaitBatch).
	changed chan struct{}
	ends    endLog
	// queued is a run recorded under overlap "queue" or "replace" that
	// waits for the job's other runs to end before it dispatches
	// (waitTurn); replaces lists the runs it had killed (replace).
	queued   bool
	replaces []string
	// jitter is the job's jitter for a scheduled run, 0 for a manual one
	// (an operator asking for a run now wants it now). jitterFrom is when
	// the shares of its first batch count from, by Config.Now: the firing
	// (reserved), or for a run that waited for its turn (queued), the
	// turn; zero for when it dispatches. Set and read by the goroutine
	// that dispatches the run.
	jitter     time.Duration
	jitterFrom time.Time
	// killed is set once a kill of the whole run was recorded: a machine
	// not dispatched yet (waiting for its jitter) is then not dispatched.
	killed atomic.Bool
}

// New returns a Runner on the given configuration. Call Run.
func New(cfg Config, conf *config.Config) *Runner {
	if cfg.DeadmanInterval <= 0 {
		cfg.DeadmanInterval = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DispatchTimeout == 0 {
		cfg.DispatchTimeout = 3 * time.Minute
	}
	if cfg.DispatchConcurrency <= 0 {
		cfg.DispatchConcurrency = 32
	}
	if cfg.PlanWait <= 0 {
		cfg.PlanWait = defaultPlanWait
	}
	if cfg.Publish == nil {
		cfg.Publish = func(events.Event) {}
	}
	return &Runner{cfg: cfg, log: cfg.Logger, reqs: make(chan func(*state)), stopped: make(chan struct{}), initial: conf,
		firing: make(chan struct{}, maxFiring)}
}

// Run loads the stored overrides, schedules the jobs and serves requests
// and firings until ctx ends.
func (r *Runner) Run(ctx context.Context, firings <-chan schedule.Firing) error {
	st := &state{conf: r.initial, overrides: map[string]store.JobOverride{}, active: map[string][]*activeRun{}, retried: map[string]bool{},
		disabled: map[string]*disabledWatch{}, tallies: map[string]*tally{}}
	ovs, err := r.cfg.Store.Overrides(ctx)
	if err != nil {
		return fmt.Errorf("load enable overrides: %w", err)
	}
	for _, o := range ovs {
		st.overrides[o.Job] = o
	}
	switch m, err := r.cfg.Store.GetMaintenance(ctx); {
	case err == nil:
		st.maintenance = &m
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("load the maintenance override: %w", err)
	}
	if err := r.resume(ctx, st); err != nil {
		return err
	}
	r.reschedule(st)
	r.catchUp(ctx, st)
	r.catchUpRetries(ctx, st)
	defer r.work.Wait()
	defer close(r.stopped)
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		r.deadman(ctx, r.cfg.Now())
	}()
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		r.recheckTallies(ctx)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case f := <-r.reqs:
			f(st)
		case fire := <-firings:
			r.fire(ctx, st, fire)
		}
	}
}

// errStopped is returned for requests that reach a runner that stopped.
var errStopped = errors.New("runner stopped")

// resume takes over the runs a previous core left in flight: they count
// for overlap again (the hub, told by Recover, knows whether they are
// still busy), and the kills an operator was answered 202 for are queued
// again, so that they reach the wrappers when they resume. A run whose
// later batches were not launched yet carries on (resumeRun), and counts
// as busy until it has launched them whatever the hub says, as a run
// being dispatched does.
func (r *Runner) resume(ctx context.Context, st *state) error {
	runs, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Active: true, Limit: 1 << 20})
	if err != nil {
		return fmt.Errorf("list runs in flight: %w", err)
	}
	for _, run := range runs {
		a := &activeRun{id: run.ID, dispatched: true, changed: make(chan struct{}, 1)}
		for _, act := range run.Actions {
			if act.Kind == killq.Kill && act.Machine == "" {
				a.killed.Store(true)
			}
		}
		job := st.conf.Job(run.Job)
		if job != nil {
			a.success = job.Success
		}
		if len(run.Machines) > 0 {
			// Read once here, before the loop hears of any machine's
			// end: one reported meanwhile is either open in this read or
			// already final in it, and then not counted again.
			st.tallies[run.ID] = newTally(run.Job, a.success, run.Machines)
		}
		r.watchSoftTimeout(job, run.ID, run.StartedAt)
		var inFlight, queued []store.Machine
		for _, m := range run.Machines {
			switch {
			case hub.Queued(m):
				queued = append(queued, m)
			case !store.Final(m.Status):
				inFlight = append(inFlight, m)
			}
		}
		switch {
		case len(queued) > 0:
			a.dispatched = false
			deadline := st.conf.Core.ConnectDeadline
			r.work.Add(1)
			go func() {
				defer r.work.Done()
				// Like a run started here, it outlives the core's context.
				r.resumeRun(context.WithoutCancel(ctx), job, deadline, run, a, inFlight, queued)
			}()
		case len(run.Machines) == 0:
			// The core stopped between recording the run and its
			// machines: nothing was dispatched, so dispatching it now
			// cannot run anything twice.
			skip := st.skipped()
			deadline, outputCap := st.conf.Core.ConnectDeadline, st.conf.StoreOrDefault().MaxOutputPerMachine
			a.dispatched = false
			// A run queued by overlap "queue" or "replace" is one too: it
			// waits for its turn again.
			a.queued = job != nil && (job.Overlap == config.OverlapQueue || job.Overlap == config.OverlapReplace)
			r.work.Add(1)
			go func() {
				defer r.work.Done()
				r.redispatch(context.WithoutCancel(ctx), job, run, a, skip, deadline, outputCap)
			}()
		case len(inFlight) == 0:
			// Every machine is final: the core stopped before it recorded
			// the run's result, and no machine will tell this one.
			r.work.Add(1)
			go func() {
				defer r.work.Done()
				r.finalize(context.WithoutCancel(ctx), run.ID)
			}()
		}
		st.active[run.Job] = append(st.active[run.Job], a)
		for _, a := range run.Actions {
			if a.Kind != killq.Kill {
				continue
			}
			r.cfg.Kills.Push(killq.Request{Kind: killq.Kill, RunID: run.ID, Machine: a.Machine,
				Signal: a.Signal, Grace: a.Grace, By: a.By, At: a.At})
			r.log.Info("kill queued again after a restart", "job", run.Job, "run_id", run.ID, "machine", a.Machine, "by", a.By)
		}
	}
	if len(runs) > 0 {
		r.log.Info("runs in flight taken over", "runs", len(runs))
	}
	return nil
}

// resumeRun launches, after a restart, the machines of a run's later
// batches that the previous core recorded and never dispatched: once the
// machines it had launched are final, in batches of the job's batch_size
// now, in their stored order, unless the run was killed or
// abort_after_failures was reached meanwhile. What the wrappers run is
// the run's own spec, stored when it started, as for every run in
// flight. How to reach the machines (the target plugin, its args, the
// wrapper's path) is the job's as configured now: the run's record does
// not keep it. A job gone from the configuration leaves nothing to reach
// them with: its queued machines are cancelled.
func (r *Runner) resumeRun(ctx context.Context, job *config.Job, connectDeadline time.Duration, run store.Run,
	a *activeRun, inFlight, queued []store.Machine) {
	log := r.log.With("job", run.Job, "run_id", run.ID)
	defer func() {
		r.markDispatched(run.Job, run.ID)
		r.finalize(ctx, run.ID)
	}()
	names := func(ms []store.Machine) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.Machine
		}
		return out
	}
	cancel := func(why string) {
		log.Warn("queued machines of a run in flight not launched", "reason", why, "machines", len(queued))
		r.cancelMachines(ctx, run.Job, run.ID, names(queued), why)
	}
	if job == nil {
		cancel("the job is no longer in the configuration")
		return
	}
	var spec wire.Spec
	if err := json.Unmarshal(run.Spec, &spec); err != nil {
		cancel(fmt.Sprintf("the run's stored spec does not decode: %v", err))
		return
	}
	var timeout time.Duration
	if spec.Timeout != "" {
		d, err := wire.ParseDuration(spec.Timeout)
		if err != nil {
			cancel(fmt.Sprintf("the run's stored timeout: %v", err))
			return
		}
		timeout = d
	}
	tgt, err := r.cfg.Targets.Target(ctx, job.Target.Plugin)
	if err != nil {
		cancel(fmt.Sprintf("target plugin %s: %v", job.Target.Plugin, err))
		return
	}
	// The machines were recorded with the protocol of the run's start.
	protocol := queued[0].Protocol
	if protocol == 0 {
		protocol = wire.ProtocolV2
	}
	if strings.HasPrefix(run.Reason, hub.QueuedPrefix) {
		// A retry waiting for its back-off said so; it starts now.
		none := ""
		if err := r.cfg.Store.UpdateRun(ctx, run.ID, store.RunUpdate{Reason: &none}); err != nil {
			log.Warn("clear a queued run's reason", "error", err)
		}
	}
	log.Info("carrying on with the run's later batches", "queued", len(queued), "in_flight", len(inFlight))
	p := plan{log: log, tgt: tgt, job: job, spec: spec, timeout: timeout, protocol: protocol, connectDeadline: connectDeadline}
	if run.Trigger != store.TriggerManual {
		p.jitter = job.Jitter
	}
	r.launchBatches(ctx, p, a, names(inFlight), split(names(queued), job.BatchSize))
}

// redispatch dispatches, after a restart, a run the previous core
// recorded without any machine: with its own spec, to the machines the
// job's target gives now.
func (r *Runner) redispatch(ctx context.Context, job *config.Job, run store.Run, a *activeRun, skip map[string]bool,
	connectDeadline time.Duration, outputCap int64) {
	defer func() {
		r.markDispatched(run.Job, run.ID)
		r.finalize(ctx, run.ID)
	}()
	if job == nil {
		r.failRun(ctx, run.ID, "the core stopped before it dispatched the run, and the job is no longer in the configuration")
		return
	}
	var spec wire.Spec
	if err := json.Unmarshal(run.Spec, &spec); err != nil {
		r.failRun(ctx, run.ID, fmt.Sprintf("the run's stored spec does not decode: %v", err))
		return
	}
	if a.queued && !r.waitTurn(ctx, run.Job, a) {
		return
	}
	r.log.Info("dispatching a run the previous core recorded but did not dispatch", "job", run.Job, "run_id", run.ID)
	r.dispatch(ctx, job, spec, a, skip, connectDeadline, outputCap, nil, false)
}

// do runs f on the loop and waits for it.
func (r *Runner) do(ctx context.Context, f func(*state)) error {
	done := make(chan struct{})
	select {
	case r.reqs <- func(st *state) { f(st); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.stopped:
		return errStopped
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maintenanceNow is the maintenance in force: the API's override, else
// the HCL's block.
func (st *state) maintenanceNow() control.MaintenanceState {
	if m := st.maintenance; m != nil {
		return control.MaintenanceState{Global: m.Global, Machines: sortedSet(m.Machines),
			Override: true, SetBy: m.SetBy, SetAt: m.SetAt}
	}
	return control.MaintenanceState{Global: st.conf.Maintenance.Global, Machines: sortedSet(st.conf.Maintenance.Machines)}
}

// skipped is the set of machines a run started now leaves out.
func (st *state) skipped() map[string]bool {
	set := map[string]bool{}
	for _, m := range st.maintenanceNow().Machines {
		set[m] = true
	}
	return set
}

// sortedSet returns the distinct non-empty names, sorted.
func sortedSet(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (st *state) enabled(j *config.Job) bool {
	if o, ok := st.overrides[j.Name]; ok {
		return o.Enabled
	}
	return j.Enabled
}

func (r *Runner) reschedule(st *state) {
	entries := make([]schedule.Entry, 0, len(st.conf.Jobs))
	for _, j := range st.conf.Jobs {
		s, err := jobSchedule(j)
		if err != nil {
			r.log.Error("schedule of a job", "job", j.Name, "error", err)
			continue
		}
		entries = append(entries, schedule.Entry{Name: j.Name, Schedule: s, Location: j.Location, Enabled: st.enabled(j)})
	}
	r.cfg.Scheduler.Set(entries)
	r.watchDisabled(st)
}

// busy reports whether any run of job still counts as running, dropping
// runs that no longer do.
func (r *Runner) busy(st *state, job string) bool {
	runs := st.active[job]
	kept := runs[:0]
	for _, a := range runs {
		if !a.dispatched || r.cfg.Hub.Busy(a.id) {
			kept = append(kept, a)
		}
	}
	st.active[job] = kept
	return len(kept) > 0
}

// reserve decides on the loop whether job may start a run now and, if so,
// records it as active under id (a fresh one when empty). While a run of
// the job is running, overlap decides: "allow" starts another, "skip"
// refuses, "queue" records one run that starts when the others ended,
// and "replace" does the same after killing them; a second firing while
// one is queued is refused, as under "skip".
func (r *Runner) reserve(st *state, job *config.Job, id string) (*activeRun, error) {
	var running []string
	// busy also forgets runs that ended, for every overlap policy.
	if r.busy(st, job.Name) {
		for _, o := range st.active[job.Name] {
			if o.queued {
				return nil, fmt.Errorf("job %s has a run queued already (%s, overlap = %q): %w", job.Name, o.id, job.Overlap, control.ErrOverlap)
			}
			running = append(running, o.id)
		}
		switch job.Overlap {
		case config.OverlapAllow:
			running = nil
		case config.OverlapQueue, config.OverlapReplace:
		default:
			return nil, fmt.Errorf("job %s is still running (overlap = %q): %w", job.Name, job.Overlap, control.ErrOverlap)
		}
	}
	now := r.cfg.Now().UTC()
	if id == "" {
		id = newRunID(now)
	}
	a := &activeRun{id: id, reserved: now, success: job.Success, changed: make(chan struct{}, 1), queued: len(running) > 0}
	if a.queued && job.Overlap == config.OverlapReplace {
		a.replaces = running
	}
	st.active[job.Name] = append(st.active[job.Name], a)
	return a, nil
}

func (r *Runner) fire(ctx context.Context, st *state, f schedule.Firing) {
	job := st.conf.Job(f.Job)
	if job == nil || !st.enabled(job) {
		return
	}
	r.fireSlot(ctx, st, job, f.Slot, store.TriggerSchedule)
}

// fireSlot starts the run of one scheduled slot, once: the store records
// the slot and creates its run in one transaction (FireRun), and a slot
// already recorded (by this core before a restart, or by another core)
// fires nothing. A slot the overlap policy skips is recorded too, with no
// run, so that it is not caught up later.
//
// It returns once the decision is made; the returned channel is closed
// once it is recorded.
func (r *Runner) fireSlot(ctx context.Context, st *state, job *config.Job, slot time.Time, trigger string) <-chan struct{} {
	done := make(chan struct{})
	var a *activeRun
	err := fmt.Errorf("global maintenance: %w", control.ErrMaintenance)
	if !st.maintenanceNow().Global {
		a, err = r.reserve(st, job, "")
	}
	conf, skip := st.conf, st.skipped()
	// The decision is the loop's (overlap, maintenance); recording it is
	// not, because a store write costs milliseconds, and the loop would
	// then fire no more than a few hundred jobs a second. The writes of
	// concurrent firings go to the store together (a store may commit
	// them as one). r.firing bounds them: when it is full, the loop waits,
	// even when the core is stopping (a firing begun is recorded, and
	// each write is bounded by startTimeout).
	r.firing <- struct{}{}
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		defer close(done)
		defer func() { <-r.firing }()
		// Once started, the firing is not cut short by the core stopping:
		// a slot and its run are recorded together or not at all.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
		defer cancel()
		if err != nil {
			r.skipSlot(sctx, job, slot, trigger, err)
			return
		}
		switch err := r.start(sctx, conf, skip, job, a, trigger, slot, "scheduler"); {
		case errors.Is(err, errSlotTaken):
			r.log.Info("slot already fired", "job", job.Name, "slot", slot)
		case err != nil:
			r.log.Error("scheduled run not started", "job", job.Name, "slot", slot, "error", err)
		}
	}()
	return done
}

// maxFiring bounds the firings being recorded at once (see fireSlot).
// Each also resolves its run's machines (start), so a second's burst of
// firings holds its bound for a resolve and a store write, and the bound
// over that time is how many firings a second the loop can make: at 256,
// 1,000 sim jobs a second waited up to 280 ms (p99) for a slot before
// they were recorded, and at 2,500 a second slots went unfired; at 1,024
// these were 95–130 ms and none. At 5,000 jobs a second, more than the
// machine could run, the loop fell behind by up to 0.17 s a second at
// 1,024 (slots recorded 2.8–5.4 s late, p99) and kept up at 4,096 (1.0–
// 1.2 s), for 20–60 MiB more of the core's memory
// (BenchmarkSimScheduledRuns, two interleaved runs each way). Each
// firing is a goroutine, parked on a store call while it waits.
const maxFiring = 4096

// skipSlot records a slot that fires no run, so that it is not caught up
// later, and notifies it missed.
func (r *Runner) skipSlot(ctx context.Context, job *config.Job, slot time.Time, trigger string, why error) {
	first, err := r.cfg.Store.RecordFire(ctx, job.Name, slot, "")
	switch {
	case err != nil:
		r.log.Error("skipped slot not recorded: it may be caught up later", "job", job.Name, "slot", slot, "error", err)
	case !first:
		r.log.Info("slot already fired", "job", job.Name, "slot", slot)
	default:
		r.log.Info("scheduled run skipped", "job", job.Name, "slot", slot, "trigger", trigger, "reason", why)
		r.missedSlot(ctx, job, slot, why)
	}
}

// errSlotTaken is start's answer for a slot the store had recorded.
var errSlotTaken = errors.New("slot already fired")

// startTimeout bounds recording a fired slot's run once the core is
// stopping.
const startTimeout = 10 * time.Second

// maxCatchUp bounds catch_up = "all": a core down for a week must not
// start a week of runs at once.
const maxCatchUp = 100

// catchUp fires, per the job's catch_up policy, the slots that passed
// since the job's last recorded slot while no core was firing: none, the
// latest one, or all of them (bounded), each as a run with trigger
// catch_up. A job that never fired has nothing to catch up. The last
// slots of every job that may catch up are read in one store call
// (LastFires); a store plugin built before it answers
// errors.ErrUnsupported, and they are read job by job instead.
func (r *Runner) catchUp(ctx context.Context, st *state) {
	now := r.cfg.Now()
	var jobs []*config.Job
	var names []string
	for _, job := range st.conf.Jobs {
		if job.CatchUp == "none" || !st.enabled(job) || job.ParsedSchedule == nil || job.ParsedSchedule.Manual() {
			continue
		}
		jobs, names = append(jobs, job), append(names, job.Name)
	}
	if len(jobs) == 0 {
		return
	}
	lasts, err := r.cfg.Store.LastFires(ctx, names)
	if errors.Is(err, errors.ErrUnsupported) {
		r.log.Debug("the store answers no LastFires (a plugin built before it): reading the last fired slots job by job", "jobs", len(names))
		lasts, err = make(map[string]time.Time, len(names)), nil
		for _, name := range names {
			last, lerr := r.cfg.Store.LastFire(ctx, name)
			if lerr != nil {
				r.log.Error("read the last fired slot", "job", name, "error", lerr)
				continue
			}
			if !last.IsZero() {
				lasts[name] = last
			}
		}
	}
	if err != nil {
		r.log.Error("read the last fired slots: nothing is caught up", "jobs", len(names), "error", err)
		return
	}
	for _, job := range jobs {
		last, ok := lasts[job.Name]
		if !ok || last.IsZero() {
			continue
		}
		// Slots that passed while the job was disabled are missed, not
		// caught up: count from its re-enabling when that is later.
		if o, ok := st.overrides[job.Name]; ok && o.Enabled && o.SetAt.After(last) {
			last = o.SetAt
		}
		loc := job.Location
		if loc == nil {
			loc = time.UTC
		}
		var missed []time.Time
		for s := job.ParsedSchedule.Next(last.In(loc)); !s.IsZero() && !s.After(now); s = job.ParsedSchedule.Next(s) {
			missed = append(missed, s)
			if len(missed) > maxCatchUp {
				missed = missed[1:]
			}
		}
		if len(missed) == 0 {
			continue
		}
		if job.CatchUp != "all" {
			missed = missed[len(missed)-1:]
		}
		r.log.Info("catching up missed slots", "job", job.Name, "policy", job.CatchUp, "slots", len(missed), "last_fired", last)
		for _, s := range missed {
			r.fireSlot(ctx, st, job, s, store.TriggerCatchUp)
		}
	}
}

// RunNow starts a manual run; it implements control.Control.
func (r *Runner) RunNow(ctx context.Context, name, by string) (string, error) {
	var (
		job  *config.Job
		conf *config.Config
		skip map[string]bool
		a    *activeRun
		err  error
	)
	if e := r.do(ctx, func(st *state) {
		conf, skip = st.conf, st.skipped()
		job = st.conf.Job(name)
		if job == nil {
			err = fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
			return
		}
		if st.maintenanceNow().Global {
			err = fmt.Errorf("global maintenance starts no new runs: %w", control.ErrMaintenance)
			return
		}
		a, err = r.reserve(st, job, "")
	}); e != nil {
		return "", e
	}
	if err != nil {
		return "", err
	}
	// A manual run is scheduled for the moment it was asked for: the one
	// it was reserved at.
	if err := r.start(ctx, conf, skip, job, a, store.TriggerManual, a.reserved, by); err != nil {
		return "", err
	}
	return a.id, nil
}

// start records the run, then resolves and dispatches in the background:
// the store write is the only synchronous step. It runs off the loop, in
// a firing's goroutine (fireSlot) or a run now's caller; the run's
// started_at is when the loop reserved it (activeRun.reserved).
func (r *Runner) start(ctx context.Context, conf *config.Config, skip map[string]bool, job *config.Job, a *activeRun, trigger string, slot time.Time, by string) error {
	spec := specOf(job, conf.Core.HeartbeatInterval)
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode spec of %s: %w", job.Name, err)
	}
	run := store.Run{ID: a.id, Job: job.Name, Trigger: trigger, ScheduledFor: slot.UTC(),
		StartedAt: a.reserved, Status: store.StatusRunning, RequestedBy: by, Spec: specJSON}
	if a.queued {
		run.Reason = queuedRunReason(job.Overlap)
	}
	if trigger != store.TriggerManual {
		a.jitter, a.jitterFrom = job.Jitter, a.reserved
	}
	// A run that dispatches at once is recorded with its machines, one
	// store write rather than two, when the target resolves them within
	// Config.PlanWait; one that takes longer (a salt master asked) is
	// recorded without, and dispatch adds them once they come.
	outputCap := conf.StoreOrDefault().MaxOutputPerMachine
	var mp *machinePlan
	var planned chan machinePlan
	if !a.queued {
		planned = make(chan machinePlan, 1)
		pctx := context.WithoutCancel(ctx)
		r.work.Add(1)
		go func() {
			defer r.work.Done()
			planned <- r.planMachines(pctx, job, a, skip, outputCap)
		}()
		wait := time.NewTimer(r.cfg.PlanWait)
		select {
		case p := <-planned:
			mp = &p
		case <-wait.C:
		}
		wait.Stop()
	}
	withMachines := mp != nil && mp.fail == ""
	if withMachines {
		run.Machines = mp.rows
	}
	if trigger == store.TriggerManual {
		err = r.cfg.Store.CreateRun(ctx, run)
	} else {
		var fired bool
		if fired, err = r.cfg.Store.FireRun(ctx, run); err == nil && !fired {
			err = errSlotTaken
		}
		if err == nil && trigger == store.TriggerSchedule && r.cfg.OnFired != nil {
			r.cfg.OnFired(r.cfg.Now().Sub(slot))
		}
	}
	if err != nil {
		r.forget(job.Name, a.id)
		return fmt.Errorf("record run of %s: %w", job.Name, err)
	}
	r.cfg.Publish(events.Event{Kind: events.RunCreated, Job: job.Name, RunID: a.id, Status: store.StatusRunning})
	r.log.Info("run started", "job", job.Name, "run_id", a.id, "trigger", trigger, "by", by)
	r.watchSoftTimeout(job, a.id, a.reserved)
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		// The run outlives the request that asked for it.
		dctx := context.WithoutCancel(ctx)
		if a.queued {
			if !r.waitTurn(dctx, job.Name, a) {
				return
			}
			a.jitterFrom = r.cfg.Now()
		}
		if mp == nil && planned != nil {
			p := <-planned
			mp = &p
		}
		r.dispatch(dctx, job, spec, a, skip, conf.Core.ConnectDeadline, outputCap, mp, withMachines)
		r.markDispatched(job.Name, a.id)
		r.finalize(dctx, a.id)
	}()
	return nil
}

// defaultPlanWait is Config.PlanWait's default: a target that resolves
// from its configuration (local, ssh, sim) answers in well under a
// millisecond, and one that asks elsewhere (a salt master) delays the
// record of its runs by no more than this.
const defaultPlanWait = 100 * time.Millisecond

// queuedRunReason is the reason a queued run shows until it dispatches.
func queuedRunReason(overlap string) string {
	if overlap == config.OverlapReplace {
		return "queued: overlap = \"replace\" killed the job's running runs; starts once they ended"
	}
	return "queued: overlap = \"queue\"; starts once the job's running runs ended"
}

// turnRecheck is how often a queued run looks again without being told:
// a lost machine stops counting as running when its timeout passes,
// which no machine's end announces.
const turnRecheck = time.Second

// waitTurn holds a queued run (overlap "queue" or "replace") until no
// other run of its job is running, killing them first under "replace".
// It reports whether to dispatch: not when the core stops meanwhile (the
// run stays recorded without machines, and the next core queues it
// again, see resume), nor when the run itself was killed while queued
// (it is then cancelled).
func (r *Runner) waitTurn(ctx context.Context, job string, a *activeRun) bool {
	log := r.log.With("job", job, "run_id", a.id)
	for _, id := range a.replaces {
		_, err := r.Kill(ctx, control.KillRequest{RunID: id, By: "overlap replace (run " + a.id + ")"})
		if err != nil && !errors.Is(err, control.ErrFinished) {
			log.Warn("kill a run being replaced", "replaced", id, "error", err)
		}
	}
	log.Info("run queued behind the job's running runs", "replaces", strings.Join(a.replaces, " "))
	tick := time.NewTicker(turnRecheck)
	defer tick.Stop()
	for {
		run, err := r.cfg.Store.GetRun(ctx, a.id)
		if err == nil {
			for _, act := range run.Actions {
				if act.Kind == killq.Kill && act.Machine == "" {
					r.endQueued(ctx, job, a, fmt.Sprintf("killed by %s before it started", act.By))
					return false
				}
			}
		} else {
			log.Warn("read a queued run", "error", err)
		}
		var waiting []string
		_ = r.do(ctx, func(st *state) {
			for _, o := range st.active[job] {
				if o != a && !o.queued && (!o.dispatched || r.cfg.Hub.Busy(o.id)) {
					waiting = append(waiting, o.id)
				}
			}
			if len(waiting) == 0 {
				a.queued = false
			}
		})
		if len(waiting) == 0 {
			none := ""
			if err := r.cfg.Store.UpdateRun(ctx, a.id, store.RunUpdate{Reason: &none}); err != nil {
				log.Warn("clear a queued run's reason", "error", err)
			}
			log.Info("queued run starts: the job's other runs ended")
			return true
		}
		select {
		case <-a.changed:
		case <-tick.C:
		case <-r.stopped:
			log.Info("the core is stopping: the queued run is left for the next core")
			return false
		}
	}
}

// endQueued records a queued run that will never start as cancelled.
func (r *Runner) endQueued(ctx context.Context, job string, a *activeRun, why string) {
	now := r.cfg.Now().UTC()
	status := store.StatusCancelled
	if err := r.cfg.Store.UpdateRun(ctx, a.id, store.RunUpdate{Status: &status, Reason: &why, FinishedAt: &now}); err != nil {
		r.log.Error("record a queued run's end", "run_id", a.id, "error", err)
	}
	r.log.Info("queued run not started", "job", job, "run_id", a.id, "reason", why)
	r.cfg.Publish(events.Event{Kind: events.RunUpdated, Job: job, RunID: a.id, Status: status})
	r.markDispatched(job, a.id)
}

// forget drops a run that never got recorded.
func (r *Runner) forget(job, id string) {
	go func() {
		_ = r.do(context.Background(), func(st *state) {
			runs := st.active[job]
			for i, a := range runs {
				if a.id == id {
					st.active[job] = append(runs[:i:i], runs[i+1:]...)
					return
				}
			}
		})
	}()
}

func (r *Runner) markDispatched(job, id string) {
	_ = r.do(context.Background(), func(st *state) {
		for _, a := range st.active[job] {
			if a.id == id {
				a.dispatched = true
			}
		}
	})
}

// plan is how one run's machines are launched.
type plan struct {
	log hclog.Logger
	tgt target.Target
	// job gives the target's args, the wrapper's path, batch_size and
	// abort_after_failures: for a run taken over after a restart they are
	// the job's as configured now, since the run's record keeps none of
	// them (see resumeRun).
	job *config.Job
	// spec is what the wrapper runs, the run's own: a run keeps the spec
	// it started with whatever a reload says later. timeout is its hard
	// timeout, for the hub.
	spec     wire.Spec
	timeout  time.Duration
	protocol int
	// connectDeadline counts from each machine's own dispatch.
	connectDeadline time.Duration
	// jitter delays each machine's dispatch by its own share of it (see
	// JitterOf); 0 for none.
	jitter time.Duration
}

// machinePlan is a run's machines as dispatch records and launches them:
// the target's, those under maintenance left out (their rows say
// skipped), number_of_targets picked among the rest, in batches; or why
// the run fails before any is launched.
type machinePlan struct {
	tgt      target.Target
	protocol int
	batches  [][]string
	rows     []store.Machine
	fail     string
}

// planMachines resolves the job's machines and makes their rows.
func (r *Runner) planMachines(ctx context.Context, job *config.Job, a *activeRun, skip map[string]bool, outputCap int64) machinePlan {
	tgt, err := r.cfg.Targets.Target(ctx, job.Target.Plugin)
	if err != nil {
		return machinePlan{fail: fmt.Sprintf("target plugin %s: %v", job.Target.Plugin, err)}
	}
	machines, err := tgt.Resolve(ctx, target.ResolveRequest{Job: job.Name, Args: job.Target.Args})
	if err != nil {
		return machinePlan{fail: fmt.Sprintf("resolve targets: %v", err)}
	}
	machines = dedupe(machines)
	if len(machines) == 0 {
		return machinePlan{fail: "no machines"}
	}
	// Machines under maintenance are left out, before number_of_targets
	// picks among the others, and shown in the run as skipped.
	var left []string
	machines = slices.DeleteFunc(machines, func(m string) bool {
		if skip[m] {
			left = append(left, m)
			return true
		}
		return false
	})
	machines = pick(machines, job.NumberOfTargets)
	protocol := job.Wrapper.Protocol
	if protocol == 0 {
		protocol = wire.ProtocolV2
	}
	batches := split(machines, job.BatchSize)
	now := r.cfg.Now().UTC()
	rows := make([]store.Machine, 0, len(machines)+len(left))
	for i, batch := range batches {
		var why string
		switch {
		case i > 0:
			why = fmt.Sprintf("%swaiting for batch %d of %d", hub.QueuedPrefix, i+1, len(batches))
		case a.jitter > 0:
			// Queued as a later batch is, so that a core stopping during
			// the jitter leaves them to the next one.
			why = fmt.Sprintf("%sjitter (up to %s)", hub.QueuedPrefix, wire.FormatDuration(a.jitter))
		}
		for _, m := range batch {
			rows = append(rows, store.Machine{RunID: a.id, Machine: m, Status: store.StatusPending, Reason: why,
				Protocol: protocol, OutputCap: outputCap})
		}
	}
	for _, m := range left {
		rows = append(rows, store.Machine{RunID: a.id, Machine: m, Status: store.StatusSkipped,
			Reason: "maintenance", StartedAt: now, FinishedAt: now})
	}
	if len(left) > 0 {
		r.log.Info("machines under maintenance left out", "job", job.Name, "run_id", a.id, "machines", strings.Join(left, " "))
	}
	return machinePlan{tgt: tgt, protocol: protocol, batches: batches, rows: rows}
}

// dispatch starts a wrapper on each of the run's machines, a batch at a
// time, planning them first unless mp is given (see start). Machines of
// later batches are recorded queued (see hub.QueuedPrefix), so that a
// core stopping between batches leaves them to the next core rather than
// losing them. recorded says mp's rows were stored with the run.
func (r *Runner) dispatch(ctx context.Context, job *config.Job, spec wire.Spec, a *activeRun, skip map[string]bool, connectDeadline time.Duration, outputCap int64,
	mp *machinePlan, recorded bool) {
	log := r.log.With("job", job.Name, "run_id", a.id)
	if mp == nil {
		planned := r.planMachines(ctx, job, a, skip, outputCap)
		mp, recorded = &planned, false
	}
	if mp.fail != "" {
		r.failRun(ctx, a.id, mp.fail)
		return
	}
	tgt, protocol, batches, rows := mp.tgt, mp.protocol, mp.batches, mp.rows
	if !recorded {
		if err := r.cfg.Store.AddMachines(ctx, a.id, rows); err != nil {
			r.failRun(ctx, a.id, fmt.Sprintf("record machines: %v", err))
			return
		}
	}
	r.track(ctx, a.id, job.Name, a.success, rows)
	// The hub's timeout is the spec's: a run redispatched after a restart
	// keeps the one it started with.
	timeout := job.Timeout
	if d, err := wire.ParseDuration(spec.Timeout); err == nil && spec.Timeout != "" {
		timeout = d
	}
	p := plan{log: log, tgt: tgt, job: job, spec: spec, timeout: timeout, protocol: protocol, connectDeadline: connectDeadline,
		jitter: a.jitter}
	var since time.Duration // since the first batch's shares count
	if !a.jitterFrom.IsZero() {
		since = max(0, r.cfg.Now().Sub(a.jitterFrom))
	}
	if !r.launch(ctx, p, a, batches[0], since, a.jitter > 0) {
		return
	}
	r.launchBatches(ctx, p, a, batches[0], batches[1:])
}

// launchBatches launches batches one after the other, each once every
// machine of the one before (after) is final, all of them queued. It
// stops when the run was killed or abort_after_failures was reached, and
// cancels what it did not launch; when the core stops, it leaves the
// machines it did not launch queued, for the next core to launch.
func (r *Runner) launchBatches(ctx context.Context, p plan, a *activeRun, after []string, batches [][]string) {
	prev := after
	for i, batch := range batches {
		if err := r.awaitBatch(ctx, a, prev, p.job.AbortAfterFailures); err != nil {
			var rest []string
			for _, b := range batches[i:] {
				rest = append(rest, b...)
			}
			if errors.Is(err, errStopped) {
				p.log.Info("the core is stopping: later batches left queued for the next core", "machines", len(rest))
				return
			}
			p.log.Info("later batches not launched", "reason", err, "machines", len(rest))
			r.cancelMachines(ctx, p.job.Name, a.id, rest, err.Error())
			return
		}
		p.log.Info("launching the next batch", "batches_left", len(batches)-i, "machines", len(batch))
		if !r.launch(ctx, p, a, batch, 0, true) {
			return
		}
		prev = batch
	}
}

// launch registers a batch of machines with the hub and dispatches each,
// at most DispatchConcurrency at a time; it returns once every dispatch
// answered. A machine's dispatch timeout and connect deadline count from
// when its own dispatch begins, not from when its turn was queued: a run
// on a thousand machines is not a thousand timeouts running at once.
// Queued machines lose their queued reason before their dispatch starts,
// never after: a machine still queued after a crash certainly never ran,
// and one caught in between is left to the hub (it may yet connect), so
// no machine is dispatched twice.
//
// With jitter each machine is dispatched at its own delay (in the order
// of the delays, still at most DispatchConcurrency at a time), counted
// from since ago, at once when that is past. A run's first batch counts
// from its firing, not from here: the firing's share of a second's burst
// of runs (resolving, recording) would otherwise delay every machine by
// as much again, though the core sat idle by the time most were due.
// launch reports false, leaving the rest queued or cancelled, when the
// core stopped or the run was killed before it launched them all.
func (r *Runner) launch(ctx context.Context, p plan, a *activeRun, machines []string, since time.Duration, queued bool) bool {
	log := p.log
	slots := make(chan struct{}, r.cfg.DispatchConcurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	start := time.Now().Add(-since)
	// Each machine's delay, hashed once rather than at every comparison
	// of the sort.
	var delays []time.Duration
	if p.jitter > 0 {
		type delayed struct {
			m string
			d time.Duration
		}
		order := make([]delayed, len(machines))
		for i, m := range machines {
			order[i] = delayed{m, JitterOf(p.job.Name, m, p.jitter)}
		}
		slices.SortStableFunc(order, func(x, y delayed) int { return cmp.Compare(x.d, y.d) })
		machines, delays = make([]string, len(order)), make([]time.Duration, len(order))
		for i, o := range order {
			machines[i], delays[i] = o.m, o.d
		}
	}
	for i, m := range machines {
		if p.jitter > 0 {
			wait := time.NewTimer(time.Until(start.Add(delays[i])))
		jitter:
			for !a.killed.Load() {
				select {
				case <-wait.C:
					break jitter
				case <-a.changed: // a kill, or a machine's end
				case <-r.stopped:
					wait.Stop()
					log.Info("the core is stopping: machines still waiting for their jitter left queued for the next core",
						"machines", len(machines)-i)
					return false
				}
			}
			wait.Stop()
		}
		if a.killed.Load() {
			rest := machines[i:]
			log.Info("the run was killed: machines not launched yet are cancelled", "machines", len(rest))
			r.cancelMachines(ctx, p.job.Name, a.id, rest, "the run was killed before this machine was launched")
			return false
		}
		slots <- struct{}{}
		wg.Add(1)
		go func(m string) {
			defer wg.Done()
			defer func() { <-slots }()
			if queued && !r.unqueue(ctx, log, a.id, m) {
				return
			}
			exp := hub.Expectation{RunID: a.id, Job: p.job.Name, Machine: m, Protocol: p.protocol,
				Spec: p.spec, Timeout: p.timeout, ConnectDeadline: r.cfg.Now().Add(p.connectDeadline)}
			if err := r.cfg.Hub.Expect(ctx, exp); err != nil {
				log.Error("register machine with hub", "machine", m, "error", err)
				_ = r.cfg.Hub.Fail(ctx, a.id, m, store.StatusError, wire.ExitError, "register with hub: "+err.Error())
				return
			}
			dctx, cancel := context.WithTimeout(ctx, r.cfg.DispatchTimeout)
			defer cancel()
			req := target.DispatchRequest{Job: p.job.Name, RunID: a.id, Machine: m, Args: p.job.Target.Args,
				WrapperPath: p.job.Wrapper.Path, Protocol: p.protocol, Env: r.dispatchEnv(p, a.id, m)}
			res, err := p.tgt.Dispatch(dctx, req)
			if err != nil {
				log.Warn("dispatch failed", "machine", m, "error", err)
				// A machine the target could not reach is an error; one
				// reached whose wrapper did not start is not_started.
				status, code := store.StatusNotStarted, wire.ExitNotStarted
				if errors.Is(err, target.ErrUnreachable) {
					status, code = store.StatusError, wire.ExitError
				}
				if ferr := r.cfg.Hub.Fail(ctx, a.id, m, status, code, "dispatch: "+err.Error()); ferr != nil {
					log.Error("record dispatch failure", "machine", m, "error", ferr)
				}
				return
			}
			at := r.cfg.Now().UTC()
			if err := r.cfg.Store.UpdateMachine(ctx, a.id, m, store.MachineUpdate{DispatchedAt: &at}); err != nil {
				log.Warn("record dispatch time", "machine", m, "error", err)
			}
			log.Debug("wrapper dispatched", "machine", m, "detail", res.Detail)
		}(m)
	}
	return true
}

// JitterOf is machine's share of a job's jitter: spread evenly over
// [0, jitter) by a hash of the job and the machine, so that it is the
// same at every firing and after a restart, and a fleet's machines do not
// all start at once. Exported for what measures a machine's lateness from
// its own due time rather than its run's slot (the benchmarks).
func JitterOf(job, machine string, jitter time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(job))
	h.Write([]byte{0})
	h.Write([]byte(machine))
	frac := float64(h.Sum64()>>11) / float64(1<<53)
	return time.Duration(frac * float64(jitter))
}

// unqueue clears a queued machine's reason before its dispatch, and says
// whether to dispatch it.
func (r *Runner) unqueue(ctx context.Context, log hclog.Logger, id, m string) bool {
	none := ""
	err := r.cfg.Store.UpdateMachine(ctx, id, m, store.MachineUpdate{Reason: &none, OnlyIfNotFinal: true})
	switch {
	case errors.Is(err, store.ErrFinal):
		log.Info("queued machine already final, not launched", "machine", m)
		r.settle(ctx, id, []string{m})
		return false
	case err != nil:
		// Still queued in the store, it would be launched by the next
		// core too: not launching it is what is safe.
		log.Error("record a queued machine's launch", "machine", m, "error", err)
		why := "record launch: " + err.Error()
		if ferr := r.cfg.Hub.Fail(ctx, id, m, store.StatusError, wire.ExitError, why); ferr != nil {
			log.Error("record launch failure", "machine", m, "error", ferr)
		}
		return false
	}
	return true
}

// dispatchEnv is the wrapper's environment. A v2 wrapper gets no command
// and no job env here: they travel in the connect ack, out of process
// lists and target logs.
func (r *Runner) dispatchEnv(p plan, runID, machine string) map[string]string {
	env := map[string]string{
		wire.EnvWebSocketURL:  r.cfg.URLs[0],
		wire.EnvWebSocketURLs: strings.Join(r.cfg.URLs, " "),
		wire.EnvJobName:       p.job.Name,
		wire.EnvJobInstance:   runID,
		wire.EnvMachineID:     machine,
	}
	if r.cfg.CAFile != "" {
		env[wire.EnvCAFile] = r.cfg.CAFile
	}
	if p.protocol != wire.ProtocolV1 {
		env[wire.EnvToken] = r.cfg.Tokens.Bootstrap(runID, machine)
		return env
	}
	for k, v := range p.spec.Env {
		env[k] = v
	}
	env[wire.EnvCommand] = p.spec.Command
	env[wire.EnvCwd] = p.spec.Cwd
	env[wire.EnvUser] = p.spec.User
	if p.timeout > 0 {
		// v1 reads 0 as "already expired", so no timeout means no variable.
		secs := int64((p.timeout + time.Second - 1) / time.Second)
		env[wire.EnvTimeout] = strconv.FormatInt(secs, 10)
	}
	return env
}

// failRun ends a run that never reached a machine.
func (r *Runner) failRun(ctx context.Context, id, reason string) {
	r.log.Warn("run failed before dispatch", "run_id", id, "reason", reason)
	now := r.cfg.Now().UTC()
	status := store.StatusError
	run, err := r.cfg.Store.GetRun(ctx, id)
	if err != nil {
		r.log.Error("read a run that failed", "run_id", id, "error", err)
		run = store.Run{ID: id}
	}
	var job *config.Job
	_ = r.do(ctx, func(st *state) { job = st.conf.Job(run.Job) })
	run.Status, run.Reason, run.FinishedAt = status, reason, now
	// endRun logs a failure to record it; there is nothing more to do.
	_ = r.endRun(ctx, job, run, store.RunUpdate{Status: &status, Reason: &reason, FinishedAt: &now})
}

// MachineFinal is the hub's OnFinal: it must not block.
func (r *Runner) MachineFinal(runID, machine, status string) {
	r.work.Add(1)
	go func() {
		defer r.work.Done()
		r.machineFinal(context.Background(), runID, machine, status)
	}()
}

// machineFinal counts a machine's end in its run's tally, wakes what
// waits for it, and finalizes the run when it was the last machine not
// final: O(1) for every machine but the last. A machine already counted
// changes nothing, whatever status it comes with: a lost machine stays
// lost for the run (its late complete is kept beside, see hub.late).
func (r *Runner) machineFinal(ctx context.Context, runID, machine, status string) {
	var tracked, over bool
	err := r.do(ctx, func(st *state) {
		// A dispatch waiting for its batch to finish looks again, and a
		// run queued behind this one may start now.
		wake := func(runs []*activeRun) {
			var mine bool
			for _, a := range runs {
				if a.id == runID {
					mine = true
					a.ends.add(machine, failedStatus(status))
					poke(a)
				}
			}
			for _, a := range runs {
				if mine && a.queued {
					poke(a)
				}
			}
		}
		t := st.tallies[runID]
		if t == nil {
			// Not a run this core tracks: look at every job's (a
			// fleet's machines end thousands of times a second, so
			// the tallied runs look at their own job's only).
			for _, runs := range st.active {
				wake(runs)
			}
			return
		}
		tracked = true
		if !t.end(machine) {
			return
		}
		over = len(t.open) == 0
		wake(st.active[t.job])
	})
	switch {
	case err != nil:
		// The core is stopping: the next one reads the run back and
		// finalizes it (resume).
		return
	case tracked && !over:
		return
	}
	r.finalize(ctx, runID)
}

// poke tells a run waiting for its batch or its turn to look again.
func poke(a *activeRun) {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// finalize records the run's status once every machine is final. A run
// the runner keeps a tally of is read from the store once, when the
// tally says its last machine ended, by one finalize (claimEnd). A run it
// keeps none of (another core's, or one whose end is recorded already)
// is read to decide, as a restarted core would.
func (r *Runner) finalize(ctx context.Context, id string) {
	var c endClaim
	if err := r.do(ctx, func(st *state) { c = st.claimEnd(id) }); err != nil {
		return // the core is stopping: the next one finalizes the run (resume)
	}
	if c.tracked && !c.claimed {
		return
	}
	run, err := r.cfg.Store.GetRun(ctx, id)
	if err != nil {
		r.log.Error("read run to finalize", "run_id", id, "error", err)
		r.unclaim(ctx, id, nil)
		return
	}
	if store.Final(run.Status) {
		// failRun, or another core, recorded its end.
		if c.tracked {
			r.untrack(ctx, id)
		}
		return
	}
	if len(run.Machines) == 0 {
		r.unclaim(ctx, id, nil)
		return
	}
	statuses := make([]string, len(run.Machines))
	for i, m := range run.Machines {
		statuses[i] = m.Status
	}
	status := store.Aggregate(statuses)
	if !store.Final(status) {
		if c.tracked {
			// Not expected: a machine counted as ended that the store
			// does not hold final. The store is the truth; its machines
			// are waited for again.
			r.log.Warn("run not finalized: the store holds machines not final that had ended", "run_id", id)
			r.unclaim(ctx, id, &run)
		}
		return
	}
	if !c.tracked {
		_ = r.do(ctx, func(st *state) {
			c.job = st.conf.Job(run.Job)
			if a := st.find(id); a != nil {
				c.policy = a.success
			} else if c.job != nil {
				// busy may have dropped the run already (its machines
				// are final): the job's policy as configured now is the
				// best left, better than none.
				c.policy = c.job.Success
			}
		})
	}
	status = applySuccess(c.policy, run.Machines, status)
	now := r.cfg.Now().UTC()
	run.Status, run.FinishedAt = status, now
	if err := r.endRun(ctx, c.job, run, store.RunUpdate{Status: &status, FinishedAt: &now}); err != nil {
		r.unclaim(ctx, id, nil)
		return
	}
	r.scheduleRetry(ctx, c.job, run)
}

// endRun records a run's end with the notifications it gives, in one
// store update, so that neither is recorded without the other. Once it
// is recorded the runner drops the run's tally.
func (r *Runner) endRun(ctx context.Context, job *config.Job, run store.Run, u store.RunUpdate) error {
	// Only a recovery needs the run before; most jobs do not ask for one.
	var prev string
	if job != nil && run.Status == store.StatusSucceeded && wantsAny(job, "recovered") {
		prev = r.previousStatus(ctx, run)
	}
	ns, err := notify.ForRun(job, run, prev, r.cfg.CoreURL, run.FinishedAt)
	if err != nil {
		r.log.Error("notifications of a run's end", "run_id", run.ID, "error", err)
	}
	u.Notifications = ns
	err = r.cfg.Store.UpdateRun(ctx, run.ID, u)
	if errors.Is(err, errors.ErrUnsupported) && len(ns) > 0 {
		r.log.Error("the store plugin keeps no notifications (built before the outbox): the run's are dropped", "run_id", run.ID)
		u.Notifications = nil
		err = r.cfg.Store.UpdateRun(ctx, run.ID, u)
	}
	if err != nil {
		r.log.Error("record run result", "run_id", run.ID, "error", err)
		return fmt.Errorf("record the result of run %s: %w", run.ID, err)
	}
	r.untrack(ctx, run.ID)
	if len(ns) > 0 && r.cfg.Notified != nil {
		r.cfg.Notified()
	}
	if r.cfg.OnRunEnd != nil {
		r.cfg.OnRunEnd(run)
	}
	r.log.Info("run finished", "job", run.Job, "run_id", run.ID, "status", run.Status, "notifications", len(ns))
	r.cfg.Publish(events.Event{Kind: events.RunUpdated, Job: run.Job, RunID: run.ID, Status: run.Status})
	return nil
}

// previousStatus is the status of the job's last run that ended before
// run, skipped and cancelled ones aside ("" when none): what tells a
// recovery.
func (r *Runner) previousStatus(ctx context.Context, run store.Run) string {
	runs, err := r.cfg.Store.ListRuns(ctx, store.RunFilter{Job: run.Job, Before: run.StartedAt, Limit: 10})
	if err != nil {
		r.log.Warn("read the job's previous run", "job", run.Job, "error", err)
		return ""
	}
	for _, p := range runs {
		if p.ID != run.ID && store.Final(p.Status) && p.Status != store.StatusSkipped && p.Status != store.StatusCancelled {
			return p.Status
		}
	}
	return ""
}

// enqueue puts notifications not tied to a run's end in the outbox.
func (r *Runner) enqueue(ctx context.Context, what string, ns []store.Notification, err error) {
	if err == nil && len(ns) > 0 {
		err = r.cfg.Store.EnqueueNotifications(ctx, ns)
	}
	if err != nil {
		r.log.Error("notify "+what, "error", err)
		return
	}
	if len(ns) > 0 && r.cfg.Notified != nil {
		r.cfg.Notified()
	}
}

func dedupe(ms []string) []string {
	seen := make(map[string]bool, len(ms))
	out := ms[:0:0]
	for _, m := range ms {
		if m != "" && !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

// pick chooses n machines at random (0: all).
func pick(ms []string, n int) []string {
	if n <= 0 || n >= len(ms) {
		return ms
	}
	out := append([]string(nil), ms...)
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	out = out[:n]
	sort.Strings(out)
	return out
}

// specOf is the job as a v2 wrapper receives it.
func specOf(j *config.Job, heartbeat time.Duration) wire.Spec {
	d := func(v time.Duration) string {
		if v <= 0 {
			return ""
		}
		return wire.FormatDuration(v)
	}
	return wire.Spec{
		Command: j.Command, Cwd: j.Cwd, User: j.User, Env: j.Env,
		Timeout: d(j.Timeout), NoOutputTimeout: d(j.NoOutputTimeout),
		Kill:      wire.KillPolicy{Signal: j.Kill.Signal, Grace: wire.FormatDuration(j.Kill.Grace)},
		Heartbeat: wire.FormatDuration(heartbeat), KeepChildren: j.KeepChildren,
	}
}

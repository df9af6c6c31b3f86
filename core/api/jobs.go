package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/saltpeter/saltpeter/core/control"
	"github.com/saltpeter/saltpeter/core/schedule"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// redacted replaces every env value: env is where secrets end up, and a
// read token is not meant to reveal them.
const redacted = "***"

// nextCount is GET .../next's default and maximum count.
const (
	nextDefault = 5
	nextMax     = 100
)

type lastRun struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	StartedAt  *string `json:"started_at"`
	FinishedAt *string `json:"finished_at"`
	// MachineCounts counts the run's machines by status; Machines are the
	// first lastRunMachines of them with their result, so that the jobs
	// list shows each machine's last result without a request per job,
	// and a run of thousands of machines does not swell it.
	MachineCounts map[string]int `json:"machine_counts"`
	Machines      []lastMachine  `json:"machines"`
}

// lastMachine is one machine's result in a job's last run.
type lastMachine struct {
	Machine  string `json:"machine"`
	Status   string `json:"status"`
	ExitCode *int   `json:"exit_code"`
}

// lastRunMachines bounds lastRun.Machines.
const lastRunMachines = 50

// newLastRun is a job's last run as the list shows it: the run's first
// lastRunMachines machines by name, and all of them counted by status.
func newLastRun(sum store.RunSummary) *lastRun {
	run := sum.Run
	lr := &lastRun{ID: run.ID, Status: run.Status, StartedAt: ts(run.StartedAt), FinishedAt: ts(run.FinishedAt),
		MachineCounts: map[string]int{}, Machines: []lastMachine{}}
	maps.Copy(lr.MachineCounts, sum.MachineCounts)
	for _, m := range run.Machines[:min(len(run.Machines), lastRunMachines)] {
		lr.Machines = append(lr.Machines, lastMachine{Machine: m.Machine, Status: m.Status, ExitCode: m.ExitCode})
	}
	return lr
}

// lastRuns reads the last run of each job named, by job, in one store
// call however many jobs there are. A store plugin built before LastRuns
// answers errors.ErrUnsupported: the runs are then read job by job, as
// store.SummarizeRun makes them alike.
func (a *API) lastRuns(ctx context.Context, jobs []string) (map[string]*lastRun, error) {
	out := make(map[string]*lastRun, len(jobs))
	if len(jobs) == 0 {
		return out, nil // LastRuns of no job named would be every job's
	}
	rs, err := a.store.LastRuns(ctx, store.LastRunsQuery{Jobs: jobs, Machines: lastRunMachines})
	if errors.Is(err, errors.ErrUnsupported) {
		a.log.Debug("the store answers no LastRuns (a plugin built before it): reading the last runs job by job", "jobs", len(jobs))
		return a.lastRunsEach(ctx, jobs)
	}
	if err != nil {
		return nil, fmt.Errorf("last runs of %d jobs: %w", len(jobs), err)
	}
	for _, r := range rs {
		out[r.Run.Job] = newLastRun(r)
	}
	return out, nil
}

// lastRunsEach is lastRuns with a store call per job.
func (a *API) lastRunsEach(ctx context.Context, jobs []string) (map[string]*lastRun, error) {
	out := make(map[string]*lastRun, len(jobs))
	for _, job := range jobs {
		runs, err := a.store.ListRuns(ctx, store.RunFilter{Job: job, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("last run of %s: %w", job, err)
		}
		if len(runs) > 0 {
			out[job] = newLastRun(store.SummarizeRun(runs[0], lastRunMachines))
		}
	}
	return out, nil
}

// jobSummary is a job in GET /api/v1/jobs.
type jobSummary struct {
	Name            string   `json:"name"`
	Group           string   `json:"group"`
	Schedule        string   `json:"schedule"`
	Timezone        string   `json:"timezone"`
	Enabled         bool     `json:"enabled"`
	EnabledInConfig bool     `json:"enabled_in_config"`
	OverrideBy      string   `json:"override_by,omitempty"`
	OverrideAt      *string  `json:"override_at"`
	NextRun         *string  `json:"next_run"`
	Running         []string `json:"running"`
	LastRun         *lastRun `json:"last_run"`
}

type targetJSON struct {
	Plugin string          `json:"plugin"`
	Args   json.RawMessage `json:"args"`
}

type killJSON struct {
	Signal string `json:"signal"`
	Grace  string `json:"grace"`
}

type retryJSON struct {
	Attempts int    `json:"attempts"`
	Backoff  string `json:"backoff"`
}

type expectJSON struct {
	MaxGap string `json:"max_gap"`
}

type notifyJSON struct {
	Notifier string   `json:"notifier"`
	On       []string `json:"on"`
}

type wrapperJSON struct {
	Path     string `json:"path"`
	Protocol int    `json:"protocol"`
}

// jobDetail is GET /api/v1/jobs/{name}: the summary plus the job as
// configured.
type jobDetail struct {
	jobSummary
	Command            string            `json:"command"`
	Cwd                string            `json:"cwd"`
	User               string            `json:"user"`
	Env                map[string]string `json:"env"`
	Target             targetJSON        `json:"target"`
	NumberOfTargets    int               `json:"number_of_targets"`
	BatchSize          int               `json:"batch_size"`
	Success            string            `json:"success"`
	AbortAfterFailures int               `json:"abort_after_failures"`
	Timeout            *string           `json:"timeout"`
	SoftTimeout        *string           `json:"soft_timeout"`
	NoOutputTimeout    *string           `json:"no_output_timeout"`
	Overlap            string            `json:"overlap"`
	Jitter             *string           `json:"jitter"`
	CatchUp            string            `json:"catch_up"`
	DSTGap             string            `json:"dst_gap"`
	DSTRepeat          string            `json:"dst_repeat"`
	KeepChildren       bool              `json:"keep_children"`
	Kill               killJSON          `json:"kill"`
	Retry              *retryJSON        `json:"retry"`
	Expect             *expectJSON       `json:"expect"`
	Notify             []notifyJSON      `json:"notify"`
	Wrapper            wrapperJSON       `json:"wrapper"`
}

// summary builds a job's list entry with its last run, last (nil: none).
func summary(js control.JobState, last *lastRun) (jobSummary, error) {
	j := js.Job
	if j == nil {
		return jobSummary{}, fmt.Errorf("job state without a job")
	}
	s := jobSummary{
		Name:            j.Name,
		Group:           j.Group,
		Schedule:        j.Schedule,
		Timezone:        j.Timezone,
		Enabled:         js.Enabled,
		EnabledInConfig: js.EnabledInConfig,
		OverrideBy:      js.OverrideBy,
		OverrideAt:      ts(js.OverrideAt),
		NextRun:         ts(js.NextRun),
		Running:         js.Running,
		LastRun:         last,
	}
	if s.Running == nil {
		s.Running = []string{}
	}
	return s, nil
}

func (a *API) detail(ctx context.Context, js control.JobState) (jobDetail, error) {
	j := js.Job
	if j == nil {
		return jobDetail{}, fmt.Errorf("job state without a job")
	}
	last, err := a.lastRuns(ctx, []string{j.Name})
	if err != nil {
		return jobDetail{}, err
	}
	s, err := summary(js, last[j.Name])
	if err != nil {
		return jobDetail{}, err
	}
	d := jobDetail{
		jobSummary:         s,
		Command:            j.Command,
		Cwd:                j.Cwd,
		User:               j.User,
		Env:                redactEnv(j.Env),
		Target:             targetJSON{Plugin: j.Target.Plugin, Args: j.Target.Args},
		NumberOfTargets:    j.NumberOfTargets,
		BatchSize:          j.BatchSize,
		Success:            j.Success,
		AbortAfterFailures: j.AbortAfterFailures,
		Timeout:            optDur(j.Timeout),
		SoftTimeout:        optDur(j.SoftTimeout),
		NoOutputTimeout:    optDur(j.NoOutputTimeout),
		Overlap:            j.Overlap,
		Jitter:             optDur(j.Jitter),
		CatchUp:            j.CatchUp,
		DSTGap:             j.DSTGap,
		DSTRepeat:          j.DSTRepeat,
		KeepChildren:       j.KeepChildren,
		Kill:               killJSON{Signal: j.Kill.Signal, Grace: dur(j.Kill.Grace)},
		Notify:             []notifyJSON{},
		Wrapper:            wrapperJSON{Path: j.Wrapper.Path, Protocol: j.Wrapper.Protocol},
	}
	if len(d.Target.Args) == 0 || !json.Valid(d.Target.Args) {
		// Args is JSON the config rendered; anything else would make the
		// whole response invalid.
		d.Target.Args = json.RawMessage("{}")
	}
	if j.Retry != nil {
		d.Retry = &retryJSON{Attempts: j.Retry.Attempts, Backoff: dur(j.Retry.Backoff)}
	}
	if j.Expect != nil {
		d.Expect = &expectJSON{MaxGap: dur(j.Expect.MaxGap)}
	}
	for _, n := range j.Notify {
		on := n.On
		if on == nil {
			on = []string{}
		}
		d.Notify = append(d.Notify, notifyJSON{Notifier: n.Notifier, On: on})
	}
	return d, nil
}

// redactEnv keeps the names, which say what a job depends on, and hides
// every value.
func redactEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out[k] = redacted
	}
	return out
}

func (a *API) listJobs(w http.ResponseWriter, r *http.Request) {
	states, err := a.control.Jobs(r.Context())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	names := make([]string, 0, len(states))
	for _, js := range states {
		if js.Job != nil {
			names = append(names, js.Job.Name)
		}
	}
	last, err := a.lastRuns(r.Context(), names)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]jobSummary, 0, len(states))
	for _, js := range states {
		var lr *lastRun
		if js.Job != nil {
			lr = last[js.Job.Name]
		}
		s, err := summary(js, lr)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out = append(out, s)
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"jobs": out})
}

// jobState fetches a job, turning the runner's unknown-job error into the
// 404 the path deserves.
func (a *API) jobState(ctx context.Context, name string) (control.JobState, error) {
	js, err := a.control.Job(ctx, name)
	if err != nil {
		return js, err
	}
	if js.Job == nil {
		return js, fmt.Errorf("job %q: %w", name, control.ErrUnknownJob)
	}
	return js, nil
}

func (a *API) writeJob(w http.ResponseWriter, r *http.Request, name string) {
	js, err := a.jobState(r.Context(), name)
	if err != nil {
		a.fail(w, r, jobErr(name, err))
		return
	}
	d, err := a.detail(r.Context(), js)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.writeJSON(w, http.StatusOK, d)
}

// jobErr words an unknown-job error with the name the client sent.
func jobErr(name string, err error) error {
	var e *Error
	if errors.Is(err, control.ErrUnknownJob) && !errors.As(err, &e) {
		return errorf(http.StatusNotFound, CodeJobNotFound, "There is no job named %q.", name)
	}
	return err
}

func (a *API) getJob(w http.ResponseWriter, r *http.Request) {
	a.writeJob(w, r, r.PathValue("name"))
}

func (a *API) runJob(w http.ResponseWriter, r *http.Request) {
	name, by := r.PathValue("name"), who(r).Name
	id, err := a.control.RunNow(r.Context(), name, by)
	if err != nil {
		a.fail(w, r, jobErr(name, err))
		return
	}
	a.log.Info("operator run", "job", name, "run_id", id, "by", by)
	a.writeJSON(w, http.StatusAccepted, map[string]string{"run_id": id})
}

func (a *API) killJob(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	a.kill(w, r, control.KillRequest{Job: name}, func(err error) error { return jobErr(name, err) })
}

func (a *API) setEnabled(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, by := r.PathValue("name"), who(r).Name
		if err := a.control.SetEnabled(r.Context(), name, enabled, by); err != nil {
			a.fail(w, r, jobErr(name, err))
			return
		}
		a.log.Info("operator set job enabled", "job", name, "enabled", enabled, "by", by)
		a.writeJob(w, r, name)
	}
}

func (a *API) resetEnabled(w http.ResponseWriter, r *http.Request) {
	name, by := r.PathValue("name"), who(r).Name
	if err := a.control.ResetEnabled(r.Context(), name, by); err != nil {
		a.fail(w, r, jobErr(name, err))
		return
	}
	a.log.Info("operator reset job enabled", "job", name, "by", by)
	a.writeJob(w, r, name)
}

// fireJSON is one fire time in GET /api/v1/jobs/{name}/next, whose answer
// is {"job", "timezone", "fires"}:
//   - at: the instant, RFC 3339 in UTC; at_local: the same instant in the
//     job's timezone, with its offset.
//   - dst_transition: the UTC offset changed since the previous fire (for
//     the first: since now), a daylight-saving transition lies between.
//   - dst, omitted for an ordinary fire: "shifted" when the slot's
//     wall-clock time does not exist that day and dst_gap = "shift" moved
//     it to the end of the gap; "second_pass" when the slot's wall-clock
//     time comes twice that day and this is the second time (dst_repeat =
//     "twice", or an interval schedule, which follows the clock);
//     "transition" when it is neither but dst_transition is true.
type fireJSON struct {
	At            *string `json:"at"`
	AtLocal       string  `json:"at_local"`
	DSTTransition bool    `json:"dst_transition"`
	DST           string  `json:"dst,omitempty"`
}

func (a *API) nextRuns(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	n, e := countParam(r.URL.Query(), "count", nextDefault, nextMax)
	if e != nil {
		a.writeError(w, e)
		return
	}
	fires, err := a.control.NextRuns(r.Context(), name, n)
	if err != nil {
		a.fail(w, r, jobErr(name, err))
		return
	}
	// The runner lists bare instants; the job's schedule, which carries
	// its zone and DST policies, says how each came about.
	js, err := a.control.Job(r.Context(), name)
	if err != nil {
		a.fail(w, r, jobErr(name, err))
		return
	}
	loc, tz := time.UTC, "UTC"
	var sched schedule.Schedule
	if j := js.Job; j != nil {
		sched = j.ParsedSchedule
		if j.Location != nil {
			loc, tz = j.Location, j.Location.String()
		}
	}
	out := make([]fireJSON, 0, len(fires))
	for _, f := range fires {
		fj := fireJSON{At: ts(f.At), AtLocal: f.At.In(loc).Format(time.RFC3339Nano), DSTTransition: f.DST}
		shifted, second := schedule.SlotDST(sched, f.At)
		switch {
		case shifted:
			fj.DST = "shifted"
		case second:
			fj.DST = "second_pass"
		case f.DST:
			fj.DST = "transition"
		}
		out = append(out, fj)
	}
	a.writeJSON(w, http.StatusOK, map[string]any{"job": name, "timezone": tz, "fires": out})
}

func (a *API) reload(w http.ResponseWriter, r *http.Request) {
	by := who(r).Name
	if err := a.control.Reload(r.Context(), by); err != nil {
		a.log.Info("operator reload refused", "by", by, "error", err)
		a.fail(w, r, err)
		return
	}
	a.log.Info("operator reload", "by", by)
	a.writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

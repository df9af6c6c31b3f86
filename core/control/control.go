package control

import (
	"context"
	"errors"
	"time"

	"github.com/saltpeter/saltpeter/core/config"
)

// Errors the runner returns; the API maps each to a status and code.
var (
	ErrUnknownJob     = errors.New("unknown job")      // 404 JOB_NOT_FOUND
	ErrUnknownRun     = errors.New("unknown run")      // 404 RUN_NOT_FOUND
	ErrUnknownMachine = errors.New("unknown machine")  // 404 MACHINE_NOT_FOUND
	ErrOverlap        = errors.New("overlap forbids")  // 409 OVERLAP
	ErrFinished       = errors.New("already finished") // 409 FINISHED
	ErrBadRequest     = errors.New("bad request")      // 400 BAD_REQUEST
	ErrMaintenance    = errors.New("in maintenance")   // 409 MAINTENANCE
)

// KillRequest names what to kill: a job (every running run), a run, or one
// machine of a run. Signal and Grace override the job's kill policy.
type KillRequest struct {
	Job     string
	RunID   string
	Machine string
	Signal  string
	Grace   time.Duration
	By      string
}

// SignalRequest sends a signal (never SIGKILL) to a run's process trees.
type SignalRequest struct {
	RunID   string
	Machine string // "": every machine
	Signal  string
	By      string
}

// JobState is a job as configured plus what the core knows of it now.
type JobState struct {
	Job             *config.Job
	Enabled         bool // effective: the override if any, else the HCL
	EnabledInConfig bool
	OverrideBy      string
	OverrideAt      time.Time
	NextRun         time.Time // zero: none (disabled, @manually)
	Running         []string  // run ids not final
}

// Control is what the operator surfaces ask of the core.
type Control interface {
	// Jobs lists every job in name order.
	Jobs(ctx context.Context) ([]JobState, error)
	// Job returns one job, or ErrUnknownJob.
	Job(ctx context.Context, name string) (JobState, error)
	// RunNow starts a manual run; the overlap policy applies.
	RunNow(ctx context.Context, job, by string) (runID string, err error)
	// Kill queues kills and returns the run ids they concern.
	Kill(ctx context.Context, req KillRequest) ([]string, error)
	Signal(ctx context.Context, req SignalRequest) error
	// SetEnabled stores an override of the job's HCL enabled flag.
	SetEnabled(ctx context.Context, job string, enabled bool, by string) error
	// ResetEnabled drops the override.
	ResetEnabled(ctx context.Context, job, by string) error
	// NextRuns lists the next n fire times of a job.
	NextRuns(ctx context.Context, job string, n int) ([]Fire, error)
	// Reload re-reads the configuration; a bad one is refused with its
	// diagnostics rendered as text in the error, and the running one stays.
	Reload(ctx context.Context, by string) error

	// Maintenance returns the maintenance in force.
	Maintenance(ctx context.Context) (MaintenanceState, error)
	// SetMaintenance stores an override of the HCL maintenance block.
	SetMaintenance(ctx context.Context, global bool, machines []string, by string) (MaintenanceState, error)
	// ResetMaintenance drops the override: the HCL's block holds again.
	ResetMaintenance(ctx context.Context, by string) (MaintenanceState, error)
}

// MaintenanceState is the maintenance in force: global maintenance starts
// no new runs; machines under maintenance are left out of every run.
type MaintenanceState struct {
	Global   bool
	Machines []string // sorted
	// Override is true when the API set it (SetBy, SetAt), false when it
	// is the HCL's maintenance block.
	Override bool
	SetBy    string
	SetAt    time.Time
}

// Fire is one upcoming fire time.
type Fire struct {
	At  time.Time `json:"at"`
	DST bool      `json:"dst_transition"`
}

// ConfigError is returned by Reload for a configuration with errors.
type ConfigError struct {
	Diagnostics string
}

func (e *ConfigError) Error() string { return "configuration has errors:\n" + e.Diagnostics }

package store

import (
	"context"
	"errors"
	"time"
)

// Machine statuses (http-api.md, "Runs").
const (
	StatusPending    = "pending"
	StatusRunning    = "running"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusTimeout    = "timeout"
	StatusKilled     = "killed"
	StatusLost       = "lost"
	StatusNotStarted = "not_started"
	StatusError      = "error"
	StatusCancelled  = "cancelled"
	StatusSkipped    = "skipped"
)

// Triggers: why a run exists.
const (
	TriggerSchedule = "schedule"
	TriggerManual   = "manual"
	TriggerCatchUp  = "catch_up"
	TriggerRetry    = "retry"
)

// Final reports whether a machine or run status is an end state. lost is
// final for the record, though the machine may still be running (see the
// wire protocol's note on 253).
func Final(status string) bool {
	switch status {
	case StatusPending, StatusRunning, "":
		return false
	}
	return true
}

// severity orders statuses for a run's aggregate, most severe first.
var severity = []string{StatusError, StatusNotStarted, StatusLost, StatusTimeout,
	StatusKilled, StatusFailed, StatusCancelled, StatusSucceeded}

// Aggregate computes a run's status from its machines' statuses: running
// while any is not final, else the most severe; skipped machines aside;
// all skipped is skipped; none is error.
func Aggregate(statuses []string) string {
	if len(statuses) == 0 {
		return StatusError
	}
	seen := map[string]bool{}
	counted := 0
	for _, s := range statuses {
		if !Final(s) {
			return StatusRunning
		}
		if s != StatusSkipped {
			counted++
		}
		seen[s] = true
	}
	if counted == 0 {
		return StatusSkipped
	}
	for _, s := range severity {
		if seen[s] {
			return s
		}
	}
	return StatusError
}

// Run is one firing of a job.
type Run struct {
	ID           string    `json:"id"`
	Job          string    `json:"job"`
	Trigger      string    `json:"trigger"`
	ScheduledFor time.Time `json:"scheduled_for"`
	StartedAt    time.Time `json:"started_at"`
	FinishedAt   time.Time `json:"finished_at"`
	Status       string    `json:"status"`
	Reason       string    `json:"reason,omitempty"`
	// RequestedBy is the token name that asked for a manual run, or
	// "scheduler".
	RequestedBy string `json:"requested_by,omitempty"`
	// KilledBy and KilledAt record the first kill asked for this run.
	KilledBy string    `json:"killed_by,omitempty"`
	KilledAt time.Time `json:"killed_at"`
	// Actions lists every operator action on the run (kills and signals)
	// with who asked and when, oldest first.
	Actions []Action `json:"actions"`
	// Spec is the job as it was when the run started, JSON; a run keeps it
	// across reloads.
	Spec []byte `json:"-"`
	// Machines is filled by GetRun and ListRuns.
	Machines []Machine `json:"machines"`
}

// Machine is a run's result on one machine.
type Machine struct {
	RunID      string `json:"-"`
	Machine    string `json:"machine"`
	Status     string `json:"status"`
	ExitCode   *int   `json:"exit_code"`
	Reason     string `json:"reason,omitempty"`
	SignalName string `json:"signal_name,omitempty"`
	Error      string `json:"error,omitempty"`
	PID        int    `json:"pid,omitempty"`
	// DispatchedAt is when the target plugin said the wrapper started;
	// ConnectedAt when the wrapper first connected. With StartedAt and
	// FinishedAt they show where a run's time went.
	DispatchedAt   time.Time `json:"dispatched_at"`
	ConnectedAt    time.Time `json:"connected_at"`
	StartedAt      time.Time `json:"started_at"`
	FinishedAt     time.Time `json:"finished_at"`
	LastHeartbeat  time.Time `json:"last_heartbeat"`
	WrapperVersion string    `json:"wrapper_version,omitempty"`
	Protocol       int       `json:"protocol,omitempty"`
	// OutputBytes is the size of everything the machine printed, dropped
	// bytes included; OutputDropped is how much of it the output cap
	// dropped from the middle.
	OutputBytes   int64 `json:"output_bytes"`
	OutputDropped int64 `json:"output_dropped_bytes,omitempty"`
	// OutputCap is the most output bytes kept for this machine, 0 for no
	// limit; set when the machine is added, so that a run keeps the cap it
	// started with whatever the configuration says later (see the
	// package doc's Output cap).
	OutputCap int64 `json:"-"`
	// NextSeq is the first output seq not stored.
	NextSeq int64 `json:"-"`
	// Late holds a complete that arrived after the machine was marked
	// lost: recorded beside the 253, not over it.
	LateExitCode *int   `json:"late_exit_code,omitempty"`
	LateReason   string `json:"late_reason,omitempty"`
}

// Action is one operator action on a run, or one the core records about
// it (ActionSoftTimeout).
type Action struct {
	Kind    string        `json:"kind"` // "kill", "signal" or ActionSoftTimeout
	Machine string        `json:"machine,omitempty"`
	Signal  string        `json:"signal,omitempty"`
	Grace   time.Duration `json:"-"`
	By      string        `json:"by"`
	At      time.Time     `json:"at"`
}

// ActionSoftTimeout is the action the core records when a run passed its
// job's soft_timeout still going (by "core"): the run carries
// soft_timeout_passed from then on.
const ActionSoftTimeout = "soft_timeout"

// MachineUpdate changes some fields of a Machine; nil fields stay.
type MachineUpdate struct {
	Status         *string
	ExitCode       *int
	Reason         *string
	SignalName     *string
	Error          *string
	PID            *int
	DispatchedAt   *time.Time
	ConnectedAt    *time.Time
	StartedAt      *time.Time
	FinishedAt     *time.Time
	LastHeartbeat  *time.Time
	WrapperVersion *string
	Protocol       *int
	LateExitCode   *int
	LateReason     *string
	// OnlyIfNotFinal makes the update a no-op (ErrFinal) when the stored
	// status is already final, so two racing writers cannot overwrite a
	// result.
	OnlyIfNotFinal bool
}

// RunUpdate changes some fields of a Run; nil fields stay.
type RunUpdate struct {
	Status     *string
	Reason     *string
	StartedAt  *time.Time
	FinishedAt *time.Time
	KilledBy   *string
	KilledAt   *time.Time
	// AddAction appends to the run's actions.
	AddAction *Action
	// Notifications are enqueued in the update's transaction, as
	// EnqueueNotifications does (an id already stored is left as it is),
	// so that a run is never recorded final without the notifications of
	// its end, nor they without it.
	Notifications []Notification
}

// Chunk is one output frame as the wrapper numbered it.
type Chunk struct {
	Seq    int64
	Stream string
	// Data stays the caller's: AppendOutput, and a Batcher's
	// AppendOutputBatch, read it only until they return, and a store
	// that keeps the bytes keeps a copy. The core's hub reads the next
	// frame into the same buffer once the call has returned, and a
	// plugin's server a later batch. A call may return before it is done
	// with Data only because its ctx is done (GRPCClient's wait ends
	// then, not its send), or because it failed with an error the store
	// plugin did not answer itself (one whose PluginAnswered method, if
	// it has one, reports false: GRPCClient hands large Data to gRPC
	// where they lie, and a failed stream may still be writing them).
	// The hub and the plugin's server then leave the buffer to the
	// collector.
	Data []byte
	At   time.Time
}

// RunFilter selects runs for ListRuns, newest first.
type RunFilter struct {
	Job    string
	Status string
	Before time.Time // zero: no bound
	Limit  int       // 0: a default
	// Active selects only runs whose status is not final.
	Active bool
}

// OutputQuery selects stored output bytes.
type OutputQuery struct {
	RunID   string
	Machine string
	Stream  string // "" for every stream in seq order
	Offset  int64  // byte offset into the selected bytes
	Limit   int64  // 0: everything
}

// Output is what ReadOutput answers.
type Output struct {
	// Data are the selected bytes from the query's offset on, with a
	// DroppedMarker where the output cap dropped bytes, so len(Data) need
	// not be Next minus the offset.
	Data []byte
	// Next is the offset to read on from: past the last byte Data holds,
	// and past any dropped bytes it marks.
	Next int64
	// Total is the selection's whole size, dropped bytes included: a
	// follower has everything once Next reaches it.
	Total int64
}

// JobOverride is an API-set override of a job's HCL enabled flag.
type JobOverride struct {
	Job     string    `json:"job"`
	Enabled bool      `json:"enabled"`
	SetBy   string    `json:"set_by"`
	SetAt   time.Time `json:"set_at"`
}

// Maintenance is the API-set override of the HCL maintenance block: once
// stored it wins over the HCL, across restarts and reloads, until it is
// deleted through the API.
type Maintenance struct {
	Global   bool      `json:"global"`
	Machines []string  `json:"machines"`
	SetBy    string    `json:"set_by"`
	SetAt    time.Time `json:"set_at"`
}

// Errors a Store returns; wrap them, callers test with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrFinal       = errors.New("already final")
	ErrOutOfOrder  = errors.New("output out of order")
	ErrUnavailable = errors.New("store unavailable")
)

// Store is what the core needs from run state. Implementations are safe
// for concurrent use.
type Store interface {
	// CreateRun stores a new run with its machines (which may be empty and
	// added later with AddMachines).
	CreateRun(ctx context.Context, run Run) error
	// AddMachines adds machines to a run, in pending status unless set.
	AddMachines(ctx context.Context, runID string, machines []Machine) error
	UpdateRun(ctx context.Context, runID string, u RunUpdate) error
	UpdateMachine(ctx context.Context, runID, machine string, u MachineUpdate) error
	GetRun(ctx context.Context, runID string) (Run, error)
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// LastRuns returns, for each job q names that has a run (every job
	// with a run when q names none), its latest run in ListRuns's order
	// (by StartedAt, or ScheduledFor while that is zero; ties to the run
	// created last) with at most q.Machines of its machines, the first by
	// name, and the count of all its machines by status (lastruns.go): what
	// ListRuns(RunFilter{Job: job, Limit: 1}) tells of each job, in one
	// call that loads only the machines it returns (the others are only
	// counted). The answer is ordered by job name.
	LastRuns(ctx context.Context, q LastRunsQuery) ([]RunSummary, error)

	// AppendOutput stores a chunk and returns the machine's next expected
	// seq. A chunk below it is a duplicate: nothing is stored and the
	// current next seq is returned. A chunk above it returns
	// ErrOutOfOrder with the expected seq. When the machine has an
	// OutputCap, the store drops output from the middle in the same
	// transaction, as the package doc's Output cap says.
	AppendOutput(ctx context.Context, runID, machine string, c Chunk) (next int64, err error)
	// ReadOutput returns stored bytes from q.Offset on, where to read on
	// from, and the selection's whole size; see Output and ReadPlan.
	ReadOutput(ctx context.Context, q OutputQuery) (Output, error)

	SetOverride(ctx context.Context, o JobOverride) error
	DeleteOverride(ctx context.Context, job string) error
	Overrides(ctx context.Context) ([]JobOverride, error)

	// SetMaintenance stores the maintenance override, replacing any.
	SetMaintenance(ctx context.Context, m Maintenance) error
	// GetMaintenance returns the stored override, ErrNotFound when none.
	GetMaintenance(ctx context.Context) (Maintenance, error)
	// DeleteMaintenance drops the override; none is fine.
	DeleteMaintenance(ctx context.Context) error

	// RecordFire records that job fired for the scheduled slot, making
	// the run runID. It returns false, recording nothing, when that
	// (job, slot) is already recorded, by this core or by another sharing
	// the store: a unique key in the store, not a flag in memory, is what
	// makes a slot fire at most once across restarts and cores.
	RecordFire(ctx context.Context, job string, slot time.Time, runID string) (bool, error)
	// FireRun is RecordFire(run.Job, run.ScheduledFor, run.ID) and
	// CreateRun(run) in one transaction: either both are stored or
	// neither, so a crash between them can neither leave a slot recorded
	// without its run (a slot lost) nor a run without its record. It
	// returns false, storing nothing, when the slot is already recorded;
	// a run id already stored fails with ErrExists, recording nothing.
	// RecordFire alone is for a slot that fires no run (skipped).
	FireRun(ctx context.Context, run Run) (bool, error)
	// LastFire returns the latest slot recorded for job, zero when none.
	LastFire(ctx context.Context, job string) (time.Time, error)
	// LastFires returns the latest slot recorded for each job named that
	// has one, in UTC: LastFire for many jobs in one call. A job without
	// a recorded slot is not in the map; naming no job answers an empty
	// map.
	LastFires(ctx context.Context, jobs []string) (map[string]time.Time, error)

	// PruneRuns deletes the runs that finished before the given time,
	// with their machines, actions and output, and returns how many it
	// deleted. Runs not finished are never pruned, however old; fire
	// records stay (they are what keeps a slot from firing twice). It also
	// deletes the delivered and failed notifications created before that
	// time (not counted in the answer); pending ones stay, however old;
	// and the audit entries recorded before that time. A
	// store gives the freed space back in its own time; PruneRuns must not
	// block other writers for long: delete in bounded batches.
	PruneRuns(ctx context.Context, finishedBefore time.Time) (int, error)

	// The notification outbox (outbox.go and the package doc's Outbox).
	//
	// EnqueueNotifications stores pending notifications (see
	// PrepareNotifications), all or none; an id already stored is left as
	// it is, without an error, so that a retried call never duplicates.
	EnqueueNotifications(ctx context.Context, ns []Notification) error
	// ClaimNotifications leases to r.Owner, until r.Now+r.Lease, up to
	// r.Limit pending notifications due at r.Now that no lease holds
	// (none, or expired), oldest DueAt first, and returns them. Two
	// owners never hold one notification at once, whichever cores share
	// the store.
	ClaimNotifications(ctx context.Context, r ClaimRequest) ([]Notification, error)
	// FinishNotification records how owner's delivery of notification id
	// ended and releases the lease: delivered; failed for good; or one
	// more failed attempt, pending again from r.RetryAt. It fails with
	// ErrLeaseLost, changing nothing, when the notification is no longer
	// leased to owner, and answers nil, changing nothing, when it meets
	// this very finish already applied (see CheckFinish); ErrNotFound
	// when there is no such notification.
	FinishNotification(ctx context.Context, id, owner string, r NotificationResult) error
	// ListNotifications returns the notifications f selects, newest
	// first.
	ListNotifications(ctx context.Context, f NotificationFilter) ([]Notification, error)

	// The audit log of operator actions (audit.go).
	//
	// AppendAudit stores an entry and returns the ID it gave it; the
	// entry's own ID is ignored.
	AppendAudit(ctx context.Context, e AuditEntry) (int64, error)
	// ListAudit returns the entries f selects, newest (largest ID) first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)

	// Ping reports whether the store can be reached, for /healthz.
	Ping(ctx context.Context) error
	Close() error
}

// Configurer is the optional ability of a store that takes a config: its
// plugin block's config, a JSON object ("{}" when there is none). The core
// calls Configure once a store plugin has started, before anything else,
// and again after the plugin is restarted; a store that is not a
// Configurer accepts only an empty config. A store's config is opened here
// rather than in its factory because the factory runs before the core has
// connected, and a restarted plugin must get the same config again.
type Configurer interface {
	Configure(ctx context.Context, config []byte) error
}

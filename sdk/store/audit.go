package store

import (
	"errors"
	"time"
)

// Audit actions: what an operator asked of the core.
const (
	AuditRun              = "run"               // run a job now
	AuditKill             = "kill"              // kill a job, a run or a machine
	AuditSignal           = "signal"            // send a signal to a run
	AuditEnable           = "enable"            // override a job's enabled flag to true
	AuditDisable          = "disable"           // ... to false
	AuditReset            = "reset"             // drop a job's enabled override
	AuditMaintenanceSet   = "maintenance_set"   // store a maintenance override
	AuditMaintenanceReset = "maintenance_reset" // drop it
	AuditReload           = "reload"            // re-read the configuration
	AuditSignIn           = "sign_in"           // trade a token for a session
	AuditSignOut          = "sign_out"          // end a session
)

// Audit outcomes.
const (
	// AuditOK: the core did what was asked.
	AuditOK = "ok"
	// AuditRefused: the core refused, before doing anything (a read-only
	// token, an unknown job, overlap, a bad configuration).
	AuditRefused = "refused"
	// AuditFailed: the core tried and failed (the store was down).
	AuditFailed = "failed"
)

// DefaultAuditLimit is how many entries ListAudit returns when the filter
// sets no limit.
const DefaultAuditLimit = 100

// AuditEntry is one operator action as the audit log keeps it: who asked
// what, through which surface, and how it ended. Entries are appended,
// never changed.
type AuditEntry struct {
	// ID is the store's, assigned by AppendAudit: positive, and larger for
	// every later append to one store, so that it orders and pages the
	// log even where clocks of several cores disagree.
	ID int64     `json:"id"`
	At time.Time `json:"at"`
	// By is the token name that asked ("local" when the core has no API
	// tokens), or the signal's name for a reload by signal ("SIGHUP").
	By     string `json:"by"`
	Action string `json:"action"`
	// Via is the surface: "api", "events" (a command over the events
	// socket) or "signal".
	Via string `json:"via"`
	// Remote is the client's address as the core saw it, "" for none.
	Remote  string `json:"remote,omitempty"`
	Job     string `json:"job,omitempty"`
	RunID   string `json:"run_id,omitempty"`
	Machine string `json:"machine,omitempty"`
	// Detail says the rest in words, e.g. "signal SIGINT, grace 30s".
	Detail  string `json:"detail,omitempty"`
	Outcome string `json:"outcome"`
	// Error is why it was refused or failed.
	Error string `json:"error,omitempty"`
}

// AuditFilter selects entries for ListAudit, newest (largest ID) first.
// Empty fields select everything; the fields set combine (AND).
type AuditFilter struct {
	Job    string
	By     string
	Action string
	// BeforeID selects entries whose ID is below it: the ID of the last
	// entry of a page asks for the next page. 0: no bound.
	BeforeID int64
	Limit    int // 0 (or below): DefaultAuditLimit
}

// AuditLimit is the limit a listing uses: n, or DefaultAuditLimit when n
// is not positive.
func AuditLimit(n int) int {
	if n <= 0 {
		return DefaultAuditLimit
	}
	return n
}

// PrepareAudit checks an entry for AppendAudit and returns it as a store
// keeps it, so that every store refuses and keeps alike: At is required
// (PruneRuns goes by it) and kept in UTC; ID is cleared, the store gives
// one.
func PrepareAudit(e AuditEntry) (AuditEntry, error) {
	if e.At.IsZero() {
		return e, errors.New("audit entry without a time")
	}
	e.ID = 0
	e.At = e.At.UTC()
	return e, nil
}

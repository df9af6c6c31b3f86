package notifier

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// EventKind says what a notification is about.
type EventKind string

// The kinds of event. A job's notify block lists those it wants in its on
// list.
const (
	// EventSuccess: a run succeeded.
	EventSuccess EventKind = "success"
	// EventFailure: a run failed (its success rule was not met).
	EventFailure EventKind = "failure"
	// EventTimeout: a run hit its hard timeout and was killed.
	EventTimeout EventKind = "timeout"
	// EventSoftTimeout: a run is still going past its soft timeout; it
	// goes on.
	EventSoftTimeout EventKind = "soft_timeout"
	// EventKilled: a run was killed by an operator (or replaced).
	EventKilled EventKind = "killed"
	// EventLost: the core lost a run's machines (no heartbeat).
	EventLost EventKind = "lost"
	// EventNotStarted: a run's wrappers did not start or connect.
	EventNotStarted EventKind = "not_started"
	// EventMissed: the dead-man check: the job has not succeeded within
	// its expect block's max_gap, or a slot passed while the job was
	// disabled or in maintenance. It belongs to no run.
	EventMissed EventKind = "missed"
	// EventRecovered: a run succeeded after the job's last one had not.
	EventRecovered EventKind = "recovered"
)

// EventKinds lists every kind, in the order above.
var EventKinds = []EventKind{
	EventSuccess, EventFailure, EventTimeout, EventSoftTimeout, EventKilled,
	EventLost, EventNotStarted, EventMissed, EventRecovered,
}

// Valid reports whether k is one of EventKinds.
func (k EventKind) Valid() bool { return slices.Contains(EventKinds, k) }

// Event is one notification. Its JSON form (MarshalJSON) is a public,
// documented schema (docs/notifications.md): the names are snake_case,
// times are RFC 3339 in UTC to the second, and fields may be added but
// never renamed or retyped.
type Event struct {
	// ID is the notification's id: the same on every delivery attempt of
	// this notification, and different for any other. Receivers
	// de-duplicate by it.
	ID string `json:"id"`
	// Kind is what happened.
	Kind EventKind `json:"kind"`
	// Job and Group are the job's name and group ("" for none).
	Job   string `json:"job"`
	Group string `json:"group"`
	// RunID is the run's id; empty for a missed event, which belongs to
	// no run.
	RunID string `json:"run_id"`
	// Status is the run's status, as the store names it (succeeded,
	// failed, timeout, killed, lost, not_started, error, cancelled;
	// running for a soft timeout); empty for missed.
	Status string `json:"status"`
	// Trigger is what started the run: schedule, manual, catch_up,
	// retry; empty for missed.
	Trigger string `json:"trigger"`
	// ScheduledFor is the slot the run was for (for missed, the slot
	// that was missed, or the time the job was last expected to have
	// succeeded by); StartedAt and FinishedAt the run's. Omitted from the
	// JSON when zero.
	ScheduledFor time.Time `json:"scheduled_for,omitzero"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	FinishedAt   time.Time `json:"finished_at,omitzero"`
	// Machines are the run's machines, failing ones first; the core caps
	// the list, and MachinesOmitted says how many it left out.
	Machines        []MachineResult `json:"machines,omitempty"`
	MachinesOmitted int             `json:"machines_omitted,omitempty"`
	// Counts is the number of the run's machines in each status, all of
	// them (MachinesOmitted included).
	Counts map[string]int `json:"counts,omitempty"`
	// Message is one line for people, composed by the core, such as
	// `backup-db failed on 2 of 12 machines (db3: exit 2, db7: lost)`.
	Message string `json:"message"`
	// Core is the core's base URL, for links (see RunURL); empty when
	// the core does not know it.
	Core string `json:"core"`
	// At is when the event happened.
	At time.Time `json:"at"`
	// Attempt is the delivery attempt, from 1: retries of one
	// notification carry the same ID and a higher Attempt.
	Attempt int `json:"attempt"`
}

// MachineResult is one machine of a run as an Event reports it.
type MachineResult struct {
	Machine string `json:"machine"`
	Status  string `json:"status"`
	// ExitCode is the job's exit code on the machine; omitted when there
	// is none (the job never ran there, or is still running).
	ExitCode *int `json:"exit_code,omitempty"`
	// Reason says why the machine ended as it did when the exit code
	// does not (not started, lost, killed by whom); may be empty.
	Reason string `json:"reason,omitempty"`
}

// RunURL returns the link to the event's run, the core's API resource
// for it (Core + "/api/v1/runs/" + RunID), or "" when the core's URL or
// the run is not known.
func (e Event) RunURL() string {
	if e.Core == "" || e.RunID == "" {
		return ""
	}
	return trimSlash(e.Core) + "/api/v1/runs/" + e.RunID
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// timeLayout is how Event's times are written: RFC 3339, UTC, whole
// seconds (the form every language's date parser takes).
const timeLayout = "2006-01-02T15:04:05Z"

// eventFields is Event without its methods, so that the wire types below
// can embed it without recursing into MarshalJSON.
type eventFields Event

// wireEvent shadows Event's times with their written form: a field of
// the outer struct wins over the embedded one of the same JSON name.
type wireEvent struct {
	eventFields
	ScheduledFor string `json:"scheduled_for,omitempty"`
	StartedAt    string `json:"started_at,omitempty"`
	FinishedAt   string `json:"finished_at,omitempty"`
	At           string `json:"at"`
}

// MarshalJSON writes the documented schema: times in UTC to the second,
// zero times other than At left out.
func (e Event) MarshalJSON() ([]byte, error) {
	w := wireEvent{
		eventFields:  eventFields(e),
		ScheduledFor: formatTime(e.ScheduledFor),
		StartedAt:    formatTime(e.StartedAt),
		FinishedAt:   formatTime(e.FinishedAt),
		At:           e.At.UTC().Format(timeLayout),
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the documented schema. Times may carry any RFC 3339
// offset or fraction; they are kept in UTC.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	ev := Event(w.eventFields)
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Time
	}{
		{"scheduled_for", w.ScheduledFor, &ev.ScheduledFor},
		{"started_at", w.StartedAt, &ev.StartedAt},
		{"finished_at", w.FinishedAt, &ev.FinishedAt},
		{"at", w.At, &ev.At},
	} {
		t, err := parseTime(f.s)
		if err != nil {
			return fmt.Errorf("event %s: %w", f.name, err)
		}
		*f.dst = t
	}
	*e = ev
	return nil
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

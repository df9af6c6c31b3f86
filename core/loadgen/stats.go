package loadgen

import (
	"sort"
	"sync"
	"time"
)

// Record is what the load generator saw of one (run, machine): the
// times a benchmark sets against the core's own stored times (its clock
// is this machine's, as the core's is when both run here).
type Record struct {
	Job     string `json:"job"`
	RunID   string `json:"run_id"`
	Machine string `json:"machine"`
	// Dispatches counts the dispatches of this (run, machine); more than
	// one means the core dispatched it again.
	Dispatches int `json:"dispatches"`
	// Connects counts the connect acks (1 + the resumes).
	Connects        int       `json:"connects"`
	DispatchedAt    time.Time `json:"dispatched_at"`
	ConnectedAt     time.Time `json:"connected_at,omitzero"`      // first connect ack
	StartSentAt     time.Time `json:"start_sent_at,omitzero"`     // first start frame
	KillAt          time.Time `json:"kill_at,omitzero"`           // first kill frame received
	CompleteSentAt  time.Time `json:"complete_sent_at,omitzero"`  // first complete frame
	CompleteAckedAt time.Time `json:"complete_acked_at,omitzero"` // its ack
	// ExitCode and Reason are what the complete frame said.
	ExitCode *int   `json:"exit_code,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Error says why the fake wrapper gave up before its complete was
	// acked (refused by the core, no core reachable).
	Error string `json:"error,omitempty"`
}

// Stats is a snapshot of the load generator.
type Stats struct {
	At time.Time `json:"at"`
	// Dispatches counts every dispatch accepted; Refused those answered
	// with an error.
	Dispatches int64 `json:"dispatches"`
	Refused    int64 `json:"refused"`
	// Active fake wrappers (dispatched, complete not yet acked, not
	// given up); Connected of those, the ones with a live connection.
	Active    int64 `json:"active"`
	Connected int64 `json:"connected"`
	// ConnectAcks counts the connect acks of every fake wrapper, resumes
	// included: the sum of the records' Connects, without the records.
	ConnectAcks int64 `json:"connect_acks"`
	// Completed had their complete acked; Failed gave up.
	Completed int64 `json:"completed"`
	Failed    int64 `json:"failed"`
	// Records, sorted by run and machine; nil when not asked for.
	Records []Record `json:"records,omitempty"`
}

type recKey struct{ run, machine string }

// stats is the load generator's book; one mutex, held for a few field
// writes, is far below the cost of the frames being counted.
type stats struct {
	mu      sync.Mutex
	records map[recKey]*Record
	c       Stats // counters only
}

func newStats() *stats { return &stats{records: map[recKey]*Record{}} }

// dispatched records a dispatch and returns its record.
func (s *stats) dispatched(job, run, machine string, at time.Time) *Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Dispatches++
	s.c.Active++
	k := recKey{run, machine}
	r := s.records[k]
	if r == nil {
		r = &Record{Job: job, RunID: run, Machine: machine, DispatchedAt: at}
		s.records[k] = r
	}
	r.Dispatches++
	return r
}

func (s *stats) refused() {
	s.mu.Lock()
	s.c.Refused++
	s.mu.Unlock()
}

// update changes a record (and the counters) under the lock.
func (s *stats) update(f func(c *Stats)) {
	s.mu.Lock()
	f(&s.c)
	s.mu.Unlock()
}

// stamp sets *t to now unless it is set.
func stampOnce(t *time.Time, now time.Time) {
	if t.IsZero() {
		*t = now
	}
}

func (s *stats) snapshot(records bool) Stats {
	s.mu.Lock()
	out := s.c
	if records {
		out.Records = make([]Record, 0, len(s.records))
		for _, r := range s.records {
			out.Records = append(out.Records, *r)
		}
	}
	s.mu.Unlock()
	out.At = time.Now()
	sort.Slice(out.Records, func(i, j int) bool {
		a, b := out.Records[i], out.Records[j]
		if a.RunID != b.RunID {
			return a.RunID < b.RunID
		}
		return a.Machine < b.Machine
	})
	return out
}

// forgetDone drops the records of fake wrappers that are over, so that a
// long benchmark's book does not grow without bound.
func (s *stats) forgetDone() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.records {
		if !r.CompleteAckedAt.IsZero() || r.Error != "" {
			delete(s.records, k)
		}
	}
}

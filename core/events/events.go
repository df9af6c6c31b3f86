package events

import (
	"sync"
	"time"
)

// Event kinds.
const (
	RunCreated     = "run_created"
	RunUpdated     = "run_updated"
	MachineUpdated = "machine_updated"
	Output         = "output"
	JobUpdated     = "job_updated"
	// MaintenanceUpdated: the maintenance in force changed.
	MaintenanceUpdated = "maintenance_updated"
)

// Event says that something changed; the store has the details.
type Event struct {
	Kind    string    `json:"kind"`
	Job     string    `json:"job,omitempty"`
	RunID   string    `json:"run_id,omitempty"`
	Machine string    `json:"machine,omitempty"`
	Status  string    `json:"status,omitempty"`
	At      time.Time `json:"at"`
}

// Subscription is one subscriber's feed.
type Subscription struct {
	C <-chan Event
	c chan Event
	// Lost is closed the first time an event could not be delivered
	// because C was full: the subscriber must re-read the store.
	Lost <-chan struct{}
	lost chan struct{}
	once sync.Once
}

// Bus fans events out to subscribers.
type Bus struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
}

// New returns an empty bus.
func New() *Bus { return &Bus{subs: map[*Subscription]struct{}{}} }

// Publish delivers e to every subscriber whose buffer has room.
func (b *Bus) Publish(e Event) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			s.once.Do(func() { close(s.lost) })
		}
	}
}

// Subscribe returns a feed with room for buf events and the function that
// ends it.
func (b *Bus) Subscribe(buf int) (*Subscription, func()) {
	if buf < 1 {
		buf = 1
	}
	c := make(chan Event, buf)
	l := make(chan struct{})
	s := &Subscription{C: c, c: c, Lost: l, lost: l}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s, func() {
		b.mu.Lock()
		delete(b.subs, s)
		b.mu.Unlock()
	}
}

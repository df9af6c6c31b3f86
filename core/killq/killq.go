package killq

import (
	"sync"
	"time"
)

// Command kinds.
const (
	Kill   = "kill"
	Signal = "signal"
)

// Request is one kill or signal command for a run, or one machine of it.
type Request struct {
	Kind    string
	RunID   string
	Machine string        // "": every machine of the run
	Signal  string        // kill: override of the job's signal ("" keeps it); signal: the signal
	Grace   time.Duration // kill: override of the job's grace (0 keeps it)
	By      string        // who asked (token name, or "local")
	At      time.Time
}

// Queue is an unbounded FIFO: Push never blocks, the hub reads C.
type Queue struct {
	mu      sync.Mutex
	pending []Request
	wake    chan struct{}
	out     chan Request
}

// New returns an empty queue. Call Run to move requests to C.
func New() *Queue {
	return &Queue{wake: make(chan struct{}, 1), out: make(chan Request)}
}

// Push adds a request.
func (q *Queue) Push(r Request) {
	if r.At.IsZero() {
		r.At = time.Now().UTC()
	}
	q.mu.Lock()
	q.pending = append(q.pending, r)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// C is where the hub receives requests, in the order they were pushed.
func (q *Queue) C() <-chan Request { return q.out }

// Len is how many requests wait to be drained.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.pending)
}

// Run moves requests to C until done is closed.
func (q *Queue) Run(done <-chan struct{}) {
	for {
		q.mu.Lock()
		var next *Request
		if len(q.pending) > 0 {
			r := q.pending[0]
			next = &r
		}
		q.mu.Unlock()
		if next == nil {
			select {
			case <-q.wake:
				continue
			case <-done:
				return
			}
		}
		select {
		case q.out <- *next:
			q.mu.Lock()
			q.pending = q.pending[1:]
			q.mu.Unlock()
		case <-done:
			return
		}
	}
}

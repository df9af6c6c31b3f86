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

// bufferSize is how many requests C holds for the hub. A request pushed
// while nothing waits before it goes into C at once, so that it reaches
// the hub from the pusher's goroutine rather than through Run's: a kill is
// one goroutine's wake-up nearer its wrapper. Past that, or behind
// requests waiting, it waits in pending for Run, so Push still never
// blocks.
const bufferSize = 64

// New returns an empty queue. Call Run to move the requests that did not
// fit in C there.
func New() *Queue {
	return &Queue{wake: make(chan struct{}, 1), out: make(chan Request, bufferSize)}
}

// Push adds a request.
func (q *Queue) Push(r Request) {
	if r.At.IsZero() {
		r.At = time.Now().UTC()
	}
	q.mu.Lock()
	if len(q.pending) == 0 {
		// Run takes a request out of pending only once it is in C, so
		// with none pending, none is on its way: this one is next.
		select {
		case q.out <- r:
			q.mu.Unlock()
			return
		default:
		}
	}
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
	return len(q.pending) + len(q.out)
}

// Run moves the requests that wait in pending to C, in order, until done
// is closed.
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

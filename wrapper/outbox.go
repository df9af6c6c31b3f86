package wrapper

import (
	"sync"
	"time"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// outbox holds the control frames the supervisor wants sent, for whichever
// connection is up. Frames that must reach the core (start until acked;
// error and complete until complete is acked) are state, sent again on
// every new connection; killed frames are one-shot, since the core re-sends
// a kill until it sees one.
type outbox struct {
	mu         sync.Mutex
	wake       chan struct{}
	start      *wire.Frame
	startAcked bool
	queue      []wire.Frame
	errText    string
	complete   *wire.Frame
	finishedAt time.Time

	acked     chan struct{} // closed when complete is acked
	ackedOnce sync.Once
}

func newOutbox() *outbox {
	return &outbox{wake: make(chan struct{}, 1), acked: make(chan struct{})}
}

// Wake is signalled when there is a frame to send.
func (o *outbox) Wake() <-chan struct{} { return o.wake }

func (o *outbox) notify() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// SetStart records the start frame, sent until the core acks it.
func (o *outbox) SetStart(f wire.Frame) {
	o.mu.Lock()
	o.start = &f
	o.mu.Unlock()
	o.notify()
}

// Push queues a one-shot frame.
func (o *outbox) Push(f wire.Frame) {
	o.mu.Lock()
	o.queue = append(o.queue, f)
	o.mu.Unlock()
	o.notify()
}

// Finish records how the run ended: an error text ("" for none) sent
// before the complete frame. Both go out once every output chunk is acked.
func (o *outbox) Finish(errText string, complete wire.Frame) {
	o.mu.Lock()
	o.errText, o.complete = errText, &complete
	o.finishedAt = time.Now()
	o.mu.Unlock()
	o.notify()
}

// FinishedAt is when Finish was called, zero before.
func (o *outbox) FinishedAt() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.finishedAt
}

// AckStart is the core's ack of start.
func (o *outbox) AckStart() {
	o.mu.Lock()
	o.startAcked = true
	o.mu.Unlock()
}

// AckComplete is the core's ack of complete: the run is over.
func (o *outbox) AckComplete() {
	o.ackedOnce.Do(func() { close(o.acked) })
}

// Done is closed once complete is acked.
func (o *outbox) Done() <-chan struct{} { return o.acked }

// pendingStart is the start frame while it is unacked.
func (o *outbox) pendingStart() (wire.Frame, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.start == nil || o.startAcked {
		return wire.Frame{}, false
	}
	return *o.start, true
}

// takeQueue empties the one-shot queue.
func (o *outbox) takeQueue() []wire.Frame {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.queue
	o.queue = nil
	return q
}

// final returns the error text and complete frame, ok false before Finish.
func (o *outbox) final() (errText string, complete wire.Frame, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.complete == nil {
		return "", wire.Frame{}, false
	}
	return o.errText, *o.complete, true
}

package hub

import "sync"

// sendQueue is a connection's frames waiting for its writer, oldest
// first, at most max of them. Not a channel of max frames: that would be
// 640 bytes (max is 64 by default) that every connection keeps all its
// life, more than any other allocation of an idle one, when it seldom
// has more than one frame waiting. This holds one frame in place and
// grows only while more wait.
type sendQueue struct {
	mu     sync.Mutex
	max    int
	frames []*outFrame // waiting, oldest first; nil or in one while at most one waits
	one    [1]*outFrame
	// room is made by a sender that found the queue full, and closed
	// when a frame leaves it.
	room chan struct{}
}

// push queues m, or, when max frames wait already, returns a channel that
// is closed once one of them has left: the check and the channel are
// made under one lock with pop's, so that no wake-up is lost between a
// full queue and the wait for room.
func (q *sendQueue) push(m *outFrame) (bool, <-chan struct{}) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) >= q.max {
		if q.room == nil {
			q.room = make(chan struct{})
		}
		return false, q.room
	}
	if q.frames == nil {
		q.frames = q.one[:0]
	}
	q.frames = append(q.frames, m)
	return true, nil
}

// pop takes the oldest frame, nil when none waits.
func (q *sendQueue) pop() *outFrame {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.frames) == 0 {
		return nil
	}
	m := q.frames[0]
	q.frames[0] = nil
	q.frames = q.frames[1:]
	if len(q.frames) == 0 {
		// Drops an array grown for a burst, and the one frame's slot
		// goes back to the front.
		q.frames = nil
	}
	if q.room != nil {
		close(q.room)
		q.room = nil
	}
	return m
}

// len is how many frames wait.
func (q *sendQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.frames)
}

package hub

import "time"

// SetFrameQueued lets a test await frames queued behind a busy store.
func SetFrameQueued(f func()) { frameQueued = f }

// SetDrainStarted lets a test await the start of a graceful stop.
func SetDrainStarted(f func()) { drainStarted = f }

// SetLookupWaiting lets a test await connections sharing a store read.
func SetLookupWaiting(f func()) { lookupWaiting = f }

// HeartbeatWriteEvery is how often a connection stores its heartbeat.
func HeartbeatWriteEvery(timeout time.Duration) time.Duration { return heartbeatWriteEvery(timeout) }

// SweepTicks is how many ticks apart the hub sweeps every machine.
func SweepTicks(tick, heartbeatTimeout time.Duration) int { return sweepTicks(tick, heartbeatTimeout) }

// FlushHeartbeats has the heartbeat writer store every heartbeat noted so
// far, and returns once it did.
func (h *Hub) FlushHeartbeats() { h.flushHeartbeats() }

// SetChunkRecycled lets a test see each output buffer the hub gives back.
func SetChunkRecycled(f func([]byte)) { chunkRecycled = f }

// SetSwept lets a test await sweeps, count the machines each looked at,
// and see the entries of the heap of deadlines after each.
func SetSwept(f func(visits, due int)) { swept = f }

// SetDueSlack sets how many stale entries the heap of deadlines may hold
// beyond twice its live ones; it returns the previous value.
func SetDueSlack(n int) int {
	old := dueSlack
	dueSlack = n
	return old
}

// SetRoomWaited lets a test see the reader wait for room in a
// connection's queue, with the bytes queued then.
func SetRoomWaited(f func(queued int64)) { roomWaited = f }

// QueueBytes is what a connection's queued frames may hold.
const QueueBytes = queueBytes

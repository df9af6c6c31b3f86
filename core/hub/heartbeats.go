package hub

import (
	"cmp"
	"errors"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// A connection's heartbeat reaches the store (LastHeartbeat, for the
// operator) every hbEvery, through the heartbeat writer: the reader notes
// it and goes back to reading, and the writer stores what was noted in
// one batch a second. Stored by each reader, an idle fleet's heartbeats
// were a store call apiece: a fifth of the core's CPU with 12,000
// wrappers, half of it the reader's stack growing for the call (and
// shrinking again at the next collection), which kept each idle
// connection's stack at 8 KiB instead of 4.

// heartbeatFlushEvery is how long a noted heartbeat waits for others to
// be stored with it.
const heartbeatFlushEvery = time.Second

// heartbeatQueue bounds the heartbeats noted and not taken by the writer
// yet: a heartbeat that finds it full is not stored, and its connection
// notes its next one instead.
const heartbeatQueue = 4096

// heartbeat is a machine's heartbeat time, noted for the store.
type heartbeat struct {
	key key
	at  time.Time
}

// noteHeartbeat hands a heartbeat to the writer without waiting; false
// when its queue is full.
func (h *Hub) noteHeartbeat(k key, at time.Time) bool {
	select {
	case h.heartbeats <- heartbeat{k, at}:
		return true
	default:
		return false
	}
}

// heartbeatWriter stores the heartbeats noted, each machine's latest, a
// batch at a time, until the hub's context ends; what is noted then is
// not stored (it is a time for display: Recover restarts every heartbeat
// clock).
func (h *Hub) heartbeatWriter() {
	defer h.wg.Done()
	due := map[key]time.Time{}
	timer := time.NewTimer(heartbeatFlushEvery)
	timer.Stop()
	defer timer.Stop()
	take := func(hb heartbeat) {
		if len(due) == 0 {
			timer.Reset(heartbeatFlushEvery)
		}
		due[hb.key] = hb.at
	}
	flush := func() {
		timer.Stop()
		h.storeHeartbeats(due)
		clear(due)
	}
	for {
		select {
		case hb := <-h.heartbeats:
			take(hb)
		case <-timer.C:
			flush()
		case done := <-h.flushHeartbeatsNow:
			for more := true; more; {
				select {
				case hb := <-h.heartbeats:
					take(hb)
				default:
					more = false
				}
			}
			flush()
			close(done)
		case <-h.ctx.Done():
			return
		}
	}
}

// storeHeartbeats stores one batch of heartbeat times. A machine final by
// then refuses its own, which it no longer needs.
func (h *Hub) storeHeartbeats(due map[key]time.Time) {
	if len(due) == 0 {
		return
	}
	batch := make([]store.MachineChange, 0, len(due))
	for k, at := range due {
		batch = append(batch, store.MachineChange{RunID: k.run, Machine: k.machine,
			Update: store.MachineUpdate{LastHeartbeat: &at, OnlyIfNotFinal: true}})
	}
	var failed int
	var first error
	for _, err := range store.UpdateBatch(h.ctx, h.cfg.Store, batch) {
		if err != nil && !errors.Is(err, store.ErrFinal) {
			failed++
			first = cmp.Or(first, err)
		}
	}
	if failed > 0 && h.ctx.Err() == nil {
		h.log.Warn("store heartbeats", "failed", failed, "of", len(batch), "error", first)
	}
}

// flushHeartbeats has the writer store every heartbeat noted so far, and
// returns once it did (or the hub stopped). For tests.
func (h *Hub) flushHeartbeats() {
	done := make(chan struct{})
	select {
	case h.flushHeartbeatsNow <- done:
	case <-h.done:
		return
	}
	select {
	case <-done:
	case <-h.done:
	}
}

package hub

import (
	"container/heap"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// The hub's deadlines (a pending machine's connect deadline, a running
// one's heartbeat timeout, a lost one's job timeout) are kept in a heap
// by the time each machine must next be looked at, rather than found by
// looking at every machine each sweep: with 12,000 idle wrappers the
// sweep's visits were a fifth of the core's CPU, each one a machine's
// state and its connection out of the cache. A heartbeat moves a running
// machine's deadline later without touching the heap: the entry comes
// due at the old deadline, and the machine is put back at its new one.
// So a running machine is looked at about once per heartbeat timeout,
// not at every sweep (twenty to thirty times, see sweepTicks).

// dueEntry is a machine to look at, at (unix nanoseconds). It is stale
// when the machine has been put back earlier since (its dueAt differs),
// or forgotten.
type dueEntry struct {
	at int64
	st *mstate
}

type dueHeap []dueEntry

func (d dueHeap) Len() int           { return len(d) }
func (d dueHeap) Less(i, j int) bool { return d[i].at < d[j].at }
func (d dueHeap) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *dueHeap) Push(x any)        { *d = append(*d, x.(dueEntry)) }
func (d *dueHeap) Pop() any {
	old := *d
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*d = old[:len(old)-1]
	return e
}

// deadline is when the machine's state may call for the hub to act, zero
// when nothing can.
func (h *Hub) deadline(st *mstate) time.Time {
	switch st.status {
	case store.StatusPending:
		return st.exp.ConnectDeadline
	case store.StatusRunning:
		return st.seen().Add(h.cfg.HeartbeatTimeout)
	case store.StatusLost:
		if s := st.start(); st.exp.Timeout > 0 && !s.IsZero() {
			return s.Add(st.exp.Timeout)
		}
	}
	return time.Time{}
}

// schedule has the machine looked at by its deadline: called whenever
// what deadline reads may have moved it earlier or given it one (a new
// state, a status, a start). Nothing else does: a heartbeat, or the end
// of a connection, leaves seen where it was or later. An entry already
// due sooner stands: when it comes due, the machine is put back at its
// deadline then.
func (h *Hub) schedule(st *mstate) {
	if dl := h.deadline(st); !dl.IsZero() {
		h.scheduleAt(st, dl.UnixNano())
	}
}

func (h *Hub) scheduleAt(st *mstate, at int64) {
	if st.dueAt != 0 && st.dueAt <= at {
		return
	}
	st.dueAt = at
	heap.Push(&h.due, dueEntry{at: at, st: st})
	h.compactDue()
}

// dueSlack is how many stale entries the heap may hold beyond twice its
// live ones (one at most a machine) before compactDue drops them; a
// variable for tests.
var dueSlack = 1024

// compactDue drops the heap's stale entries once they are most of it.
// A stale entry keeps its machine's state, and through it the
// connection that ended (its WebSocket, its buffers), until it comes due:
// a heartbeat timeout after the machine's last start, a connect deadline
// after its dispatch. At 2,500 runs a second that was every run of the
// last half-minute: the core's RSS was 530 to 560 MiB, 170 once
// compacted (BenchmarkSimScheduledRuns/jobs=2500, two interleaved runs
// each way). Compacting when the heap has grown past twice its live
// entries and dueSlack costs each entry pushed a constant share of one
// pass.
func (h *Hub) compactDue() {
	if len(h.due) <= 2*len(h.machines)+dueSlack {
		return
	}
	live := h.due[:0]
	for _, e := range h.due {
		if e.st.dueAt == e.at && h.machines[e.st.key] == e.st {
			live = append(live, e)
		}
	}
	clear(h.due[len(live):])
	h.due = live
	heap.Init(&h.due)
}

// sweep looks at the machines due by now, ends those past their
// deadlines, and puts the rest back. One whose deadline has passed
// without an end (its result being written, a connection that came in
// time, a store that failed) is looked at again at the next sweep, as
// every machine once was.
func (h *Hub) sweep() {
	now := h.now()
	visits := 0
	for len(h.due) > 0 && h.due[0].at <= now.UnixNano() {
		e := heap.Pop(&h.due).(dueEntry)
		st := e.st
		if st.dueAt != e.at || h.machines[st.key] != st {
			continue
		}
		st.dueAt = 0
		visits++
		h.check(st, now)
		if h.machines[st.key] != st {
			continue
		}
		dl := h.deadline(st)
		switch {
		case dl.IsZero():
		case dl.After(now):
			h.scheduleAt(st, dl.UnixNano())
		default:
			h.scheduleAt(st, now.Add(h.sweepEvery).UnixNano())
		}
	}
	if swept != nil {
		swept(visits, len(h.due))
	}
}

// swept, set only by tests, hears of each sweep, how many machines it
// looked at and how many entries the heap holds after it.
var swept func(visits, due int)

package hub_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// TestSweepLooksAtMachinesByDeadline: a sweep looks only at the machines
// whose deadline has come: none while every heartbeat timeout is ahead,
// each once when its deadline comes though a heartbeat has moved it on
// since, and a machine silent past its timeout is still lost.
func TestSweepLooksAtMachinesByDeadline(t *testing.T) {
	clock := &fakeClock{t: t0}
	var looked, swept atomic.Int64
	sweptNow := make(chan struct{}, 1)
	hub.SetSwept(func(visits, _ int) {
		looked.Add(int64(visits))
		swept.Add(1)
		select {
		case sweptNow <- struct{}{}:
		default:
		}
	})
	t.Cleanup(func() { hub.SetSwept(nil) })
	const hb = time.Second
	h := newHarness(t, opts{clock: clock, hb: hb})
	const n = 20
	var cs []*client
	for i := range n {
		m := fmt.Sprintf("m%02d", i)
		h.expect(exp{run: "r1", machine: m})
		c := h.dial("r1", m)
		c.connect()
		cs = append(cs, c)
	}
	// visits counts what sweeps look at from the call until k more have
	// ended (the clock does not move meanwhile).
	visits := func(k int64) int64 {
		t.Helper()
		from, end := looked.Load(), swept.Load()+k
		for swept.Load() < end {
			select {
			case <-sweptNow:
			case <-time.After(wait):
				t.Fatal("no sweep")
			}
		}
		return looked.Load() - from
	}
	if v := visits(5); v != 0 {
		t.Errorf("5 sweeps before any deadline looked at %d machines, want none", v)
	}

	clock.Advance(600 * time.Millisecond)
	for _, c := range cs {
		c.send(c.frame(wire.TypeHeartbeat))
		c.sync()
	}
	before := looked.Load()
	clock.Advance(600 * time.Millisecond) // past the first deadlines, not the new ones
	visits(3)
	if v := looked.Load() - before; v != n {
		t.Errorf("3 sweeps past the first deadlines looked at %d machines, want each of %d once", v, n)
	}
	for i := range n {
		if m := h.machine("r1", fmt.Sprintf("m%02d", i)); m.Status != store.StatusRunning {
			t.Errorf("machine %s is %s after a heartbeat within its timeout", m.Machine, m.Status)
		}
	}

	clock.Advance(hb)
	lost := map[string]bool{}
	for range n {
		select {
		case f := <-h.finals:
			if f.status != store.StatusLost {
				t.Errorf("machine %s: %s past its heartbeat timeout, want lost", f.machine, f.status)
			}
			lost[f.machine] = true
		case <-time.After(wait):
			t.Fatalf("%d of %d machines lost past their heartbeat timeout", len(lost), n)
		}
	}
}

// TestDueHeapDropsFinishedMachines: the heap of deadlines does not keep
// the machines that finished (and through them their connections) until
// their deadlines come: past its slack it is compacted, so that after a
// hundred runs, each leaving the entry for its connect deadline (its
// heartbeat timeout, later, takes none of its own), none of them due, it
// holds a few: without compaction it holds the hundred.
func TestDueHeapDropsFinishedMachines(t *testing.T) {
	const slack = 8
	old := hub.SetDueSlack(slack)
	t.Cleanup(func() { hub.SetDueSlack(old) })
	dueAfter := make(chan int, 1)
	hub.SetSwept(func(_, due int) {
		select {
		case dueAfter <- due:
		default:
		}
	})
	t.Cleanup(func() { hub.SetSwept(nil) })
	clock := &fakeClock{t: t0} // no deadline comes: the clock stands still
	h := newHarness(t, opts{clock: clock, hb: time.Hour})
	const runs = 100
	for i := range runs {
		run := fmt.Sprintf("r%03d", i)
		h.expect(exp{run: run, machine: "m1"})
		c := h.dial(run, "m1")
		c.connect()
		c.start(100 + i)
		c.complete(0, "")
		c.ws.Close()
	}
	// A sweep that began after the last run ended says what the heap
	// holds: at most the entries pushed since it was last compacted.
	var due int
	for range 2 { // the first may have begun before
		select {
		case due = <-dueAfter:
		case <-time.After(wait):
			t.Fatal("no sweep")
		}
	}
	// At the last push the heap held at most twice the machines then
	// live (a run or two) and the slack; a few entries may come after.
	if limit := 2*2 + slack + 4; due > limit {
		t.Errorf("after %d finished runs the heap of deadlines holds %d entries, want at most %d", runs, due, limit)
	}
}

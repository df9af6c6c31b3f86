package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/events"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// TestRecoverTakesOverMachinesInFlight: a core restarted on the same
// store takes over a running machine, which counts as busy at once, and
// is lost when its wrapper does not come back within the heartbeat
// timeout; a pending one gets the connect deadline.
func TestRecoverTakesOverMachinesInFlight(t *testing.T) {
	// The first core's clock stands still: only the restarted one's moves.
	h := newHarness(t, opts{clock: &fakeClock{t: t0}, hb: 10 * time.Second})
	clock := &fakeClock{t: t0}
	h.expect(exp{run: "r1", machine: "gone"})
	h.expect(exp{run: "r1", machine: "never"})
	c := h.dial("r1", "gone")
	c.connect()
	c.start(42)

	// The core restarts: a new hub on the same store.
	h2 := newHarness(t, opts{clock: clock, hb: 10 * time.Second, store: h.store})
	n, err := h2.hub.Recover(context.Background(), 30*time.Second)
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want both machines", n, err)
	}
	if !h2.hub.Busy("r1") {
		t.Fatal("a recovered run is not busy")
	}
	again, err := h2.hub.Recover(context.Background(), 30*time.Second)
	if err != nil || again != 0 {
		t.Fatalf("a second Recover took over %d machines again (%v)", again, err)
	}

	clock.Advance(11 * time.Second)
	if f := h2.awaitFinal("r1", "gone"); f.status != store.StatusLost {
		t.Fatalf("running machine without its wrapper: %s, want lost", f.status)
	}
	if m := h2.machine("r1", "gone"); ptrInt(m.ExitCode) != "253" {
		t.Fatalf("lost exit code %s", ptrInt(m.ExitCode))
	}
	clock.Advance(20 * time.Second)
	if f := h2.awaitFinal("r1", "never"); f.status != store.StatusNotStarted {
		t.Fatalf("pending machine past the deadline: %s, want not_started", f.status)
	}
	if m := h2.machine("r1", "never"); ptrInt(m.ExitCode) != "254" {
		t.Fatalf("not_started exit code %s", ptrInt(m.ExitCode))
	}
}

// TestRecoverLeavesQueuedMachinesToTheRunner: a machine of a later batch
// that the runner recorded but never dispatched (its reason still says
// queued) is not taken over after a restart: no connect deadline turns
// it into not_started, it does not keep the run busy, and no wrapper may
// connect as it. The runner launches it.
func TestRecoverLeavesQueuedMachinesToTheRunner(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, opts{clock: &fakeClock{t: t0}})
	h.expect(exp{run: "r1", machine: "first"})
	why := hub.QueuedPrefix + "waiting for batch 2 of 2"
	if err := h.store.AddMachines(ctx, "r1", []store.Machine{{Machine: "later", Protocol: 2, Reason: why}}); err != nil {
		t.Fatal(err)
	}

	clock := &fakeClock{t: t0}
	h2 := newHarness(t, opts{clock: clock, store: h.store})
	n, err := h2.hub.Recover(ctx, 30*time.Second)
	if err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want the dispatched machine alone", n, err)
	}
	c := h2.dial("r1", "later")
	f := c.frame(wire.TypeConnect)
	f.Protocol, f.Token, f.Version = 2, h2.token("r1", "later"), "2.0.0-test"
	c.send(f)
	c.errorCode(wire.CodeUnauthorized)

	clock.Advance(31 * time.Second)
	if f := h2.awaitFinal("r1", "first"); f.status != store.StatusNotStarted {
		t.Fatalf("dispatched machine past the deadline: %s, want not_started", f.status)
	}
	if h2.hub.Busy("r1") {
		t.Fatal("the run is busy with only a queued machine left: the hub took it over")
	}
	if m := h2.machine("r1", "later"); m.Status != store.StatusPending || m.Reason != why {
		t.Fatalf("queued machine after Recover: %s (%q), want pending and still queued", m.Status, m.Reason)
	}
}

// TestTakeoverEnds: a restarted core calls OnTakenOver once, when the
// last machine it took over is back (its wrapper resumed) or ended, or,
// for a machine that never comes back, once the heartbeat timeout has
// passed; a machine back later does not call it again.
func TestTakeoverEnds(t *testing.T) {
	const hb = 10 * time.Second
	cases := []struct {
		name string
		// last brings the third machine back, or not, and moves the
		// restarted core's clock.
		last func(t *testing.T, h2 *harness, clock *fakeClock, session string)
		// away: the third machine is still away once the takeover ended.
		away bool
	}{
		{"the last machine resumes", func(t *testing.T, h2 *harness, _ *fakeClock, session string) {
			resumeAt(t, h2, 2, session)
		}, false},
		{"the last machine ends", func(t *testing.T, h2 *harness, _ *fakeClock, _ string) {
			if err := h2.hub.Fail(context.Background(), "r1", fleetMachine(2), store.StatusError, wire.ExitError, "test"); err != nil {
				t.Fatal(err)
			}
		}, false},
		{"the last machine stays away past the heartbeat timeout", func(t *testing.T, _ *harness, clock *fakeClock, _ string) {
			clock.Advance(hb)
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, opts{clock: &fakeClock{t: t0}, hb: hb})
			sessions := startFleet(t, h, 3)
			clock := &fakeClock{t: t0}
			over := make(chan struct{}, 4)
			h2 := newHarness(t, opts{clock: clock, hb: hb, store: h.store, onTakenOver: func() {
				select { // never blocking the hub, however often it is called
				case over <- struct{}{}:
				default:
				}
			}})
			if n, err := h2.hub.Recover(context.Background(), time.Minute); err != nil || n != 3 {
				t.Fatalf("Recover = %d, %v; want 3", n, err)
			}
			resumeAt(t, h2, 0, sessions[0])
			clock.Advance(hb - time.Second)
			resumeAt(t, h2, 1, sessions[1])
			select {
			case <-over:
				t.Fatal("OnTakenOver called with a machine still away, before the heartbeat timeout")
			default:
			}
			tc.last(t, h2, clock, sessions[2])
			select {
			case <-over:
			case <-time.After(wait):
				t.Fatal("OnTakenOver not called")
			}
			// A machine back later ends no takeover.
			if tc.away {
				resumeAt(t, h2, 2, sessions[2])
			}
			// Past the takeover's deadline again, and past the heartbeat
			// timeout of machine 0, which sends none: the tick whose sweep
			// finds it lost has looked at the deadline too by the time
			// its loss is published.
			clock.Advance(hb)
			h2.awaitEvent(func(e events.Event) bool {
				return e.Kind == events.MachineUpdated && e.Machine == fleetMachine(0) && e.Status == store.StatusLost
			})
			select {
			case <-over:
				t.Fatal("OnTakenOver called twice")
			default:
			}
		})
	}
}

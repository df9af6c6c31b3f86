package hub_test

import (
	"context"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
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

package hub_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// countingStore is the memory store counting the reads of whole runs
// (GetRun) and the writes of a heartbeat alone. gate, when set, holds the
// first GetRun until it is closed; blocked, when set, makes every GetRun
// wait for the end of its context and sends the context's error there.
type countingStore struct {
	*memory.Store
	getRuns    atomic.Int64
	heartbeats atomic.Int64
	gate       chan struct{}
	gateOnce   sync.Once
	blocked    chan error
}

func (s *countingStore) GetRun(ctx context.Context, runID string) (store.Run, error) {
	s.getRuns.Add(1)
	if s.gate != nil {
		s.gateOnce.Do(func() { <-s.gate })
	}
	if s.blocked != nil {
		<-ctx.Done()
		s.blocked <- ctx.Err()
		return store.Run{}, ctx.Err()
	}
	return s.Store.GetRun(ctx, runID)
}

func (s *countingStore) UpdateMachine(ctx context.Context, runID, machine string, u store.MachineUpdate) error {
	if u.LastHeartbeat != nil && u.Status == nil {
		s.heartbeats.Add(1)
	}
	return s.Store.UpdateMachine(ctx, runID, machine, u)
}

func (s *countingStore) wrap(m *memory.Store) store.Store {
	s.Store = m
	return s
}

// fleetMachine names machine i of the tests' fleets.
func fleetMachine(i int) string { return fmt.Sprintf("m%03d", i) }

// startFleet expects n machines of run r1 at h, connects each, stores one
// chunk of output and returns their sessions; the connections stay open.
func startFleet(t *testing.T, h *harness, n int) []string {
	t.Helper()
	sessions := make([]string, n)
	for i := range n {
		h.expect(exp{run: "r1", machine: fleetMachine(i)})
		c := h.dial("r1", fleetMachine(i))
		sessions[i] = c.connect().Session
		c.start(1)
		c.out(0, wire.StreamStdout, []byte("x"))
		c.ackOutput(0)
	}
	return sessions
}

// TestBindDoesNotReadTheRunPerConnection: binding a connection costs no
// read of its whole run when the hub knows the machine (it expected it,
// or recovered it after a restart), and the connections of machines it
// does not know share their reads, so that a fleet's connects cost the
// store O(1) reads of the run, not one each.
func TestBindDoesNotReadTheRunPerConnection(t *testing.T) {
	const n = 40
	cases := []struct {
		name string
		// connect connects the fleet and returns the store the core
		// under test reads.
		connect            func(t *testing.T) *countingStore
		minReads, maxReads int64
	}{
		{"expected machines connect", func(t *testing.T) *countingStore {
			cs := &countingStore{}
			h := newHarness(t, opts{wrap: cs.wrap})
			startFleet(t, h, n)
			return cs
		}, 0, 0},
		{"recovered machines resume after a restart", func(t *testing.T) *countingStore {
			h := newHarness(t, opts{})
			sessions := startFleet(t, h, n)
			cs := &countingStore{}
			h2 := newHarness(t, opts{wrap: cs.wrap, store: h.store})
			if got, err := h2.hub.Recover(context.Background(), time.Minute); err != nil || got != n {
				t.Fatalf("Recover = %d, %v; want %d", got, err, n)
			}
			for i, s := range sessions {
				resumeAt(t, h2, i, s)
			}
			return cs
		}, 0, 0},
		{"machines unknown to the core resume at once", func(t *testing.T) *countingStore {
			h := newHarness(t, opts{})
			sessions := startFleet(t, h, n)
			cs := &countingStore{gate: make(chan struct{})}
			joined := make(chan struct{}, n)
			hub.SetLookupWaiting(func() { joined <- struct{}{} })
			t.Cleanup(func() { hub.SetLookupWaiting(nil) })
			// No Recover: each connection must ask the store.
			h2 := newHarness(t, opts{wrap: cs.wrap, store: h.store})
			clients := make([]*client, n)
			for i, s := range sessions {
				clients[i] = h2.dial("r1", fleetMachine(i))
				f := clients[i].frame(wire.TypeConnect)
				f.Protocol, f.Session, f.Resume = 2, s, true
				clients[i].send(f)
			}
			// The first read is held: all but the first two connections
			// (the one holding it, the one leading the next) join one.
			for range n - 2 {
				select {
				case <-joined:
				case <-time.After(wait):
					t.Fatal("the connections did not wait for a shared read")
				}
			}
			close(cs.gate)
			for _, c := range clients {
				if ack := c.ackOf(wire.TypeConnect); ack.NextSeq == nil || *ack.NextSeq != 1 {
					t.Fatalf("resume of %s: next_seq %v, want 1", c.machine, ack.NextSeq)
				}
			}
			return cs
		}, 1, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cs := tc.connect(t)
			if got := cs.getRuns.Load(); got < tc.minReads || got > tc.maxReads {
				t.Fatalf("%d connections read the run %d times, want %d to %d", n, got, tc.minReads, tc.maxReads)
			}
		})
	}
}

// resumeAt resumes fleet machine i at h with its session and checks that
// the core knows its stored output.
func resumeAt(t *testing.T, h *harness, i int, session string) {
	t.Helper()
	c := h.dial("r1", fleetMachine(i))
	if ack := c.resume(session); ack.NextSeq == nil || *ack.NextSeq != 1 {
		t.Fatalf("resume of %s: next_seq %v, want 1", c.machine, ack.NextSeq)
	}
}

// TestUnboundConnectionIsClosed: a connection not bound within the bind
// timeout is closed, whatever it sends, and a bind stuck behind the store
// gives up at that deadline too; a bound connection outlives it.
func TestUnboundConnectionIsClosed(t *testing.T) {
	// Long enough for a loaded machine to answer a frame before it.
	const bindTimeout = time.Second
	cases := []struct {
		name   string
		legacy bool
		cs     *countingStore
		// act is what the client does; the connection must then close.
		act func(t *testing.T, h *harness, c *client)
	}{
		{"silent", false, nil, func(*testing.T, *harness, *client) {}},
		{"frames that bind nothing", false, nil, func(t *testing.T, h *harness, c *client) {
			c.send(c.frame("telemetry"))
			c.errorCode(wire.CodeUnknownType)
		}},
		{"v1 frames of an unknown run", true, nil, func(t *testing.T, h *harness, c *client) {
			c.run = "gone"
			if got := c.sync(); got != -1 {
				t.Fatalf("sync of an unknown run: %d, want -1", got)
			}
		}},
		{"bind stuck behind the store", false, &countingStore{blocked: make(chan error, 1)},
			func(t *testing.T, h *harness, c *client) {
				// A machine the hub does not know: the bind reads the
				// store, which does not answer.
				if err := h.store.AddMachines(context.Background(), "r1", []store.Machine{{Machine: "other"}}); err != nil {
					t.Fatal(err)
				}
				c.machine = "other"
				f := c.frame(wire.TypeConnect)
				f.Protocol, f.Resume, f.Session = 2, true, h.tokens.NewSession("r1", "other")
				c.send(f)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := opts{legacy: tc.legacy, bindTimeout: bindTimeout}
			if tc.cs != nil {
				o.wrap = tc.cs.wrap
			}
			h := newHarness(t, o)
			h.expect(exp{run: "r1", machine: "m"})
			c := h.dial("r1", "m")
			tc.act(t, h, c)
			c.closed()
			if tc.cs != nil {
				select {
				case err := <-tc.cs.blocked:
					if !errors.Is(err, context.DeadlineExceeded) {
						t.Fatalf("the store read ended with %v, want the bind's deadline", err)
					}
				case <-time.After(wait):
					t.Fatal("the store read is still waiting after the connection closed")
				}
			}
			if m := h.machine("r1", "m"); m.Status != store.StatusPending {
				t.Fatalf("machine %s after an unbound connection, want pending", m.Status)
			}
		})
	}

	t.Run("a bound connection outlives it", func(t *testing.T) {
		h := newHarness(t, opts{bindTimeout: bindTimeout})
		h.expect(exp{run: "r1", machine: "m"})
		c := h.dial("r1", "m")
		c.connect()
		time.Sleep(2 * bindTimeout) // the time passing is what is tested
		c.out(0, wire.StreamStdout, []byte("still here"))
		c.ackOutput(0)
	})
}

// TestHeartbeatWrites: the store gets a machine's heartbeat every half
// heartbeat timeout, not every heartbeat; the exact time of the last one
// is stored with the lost result.
func TestHeartbeatWrites(t *testing.T) {
	cases := []struct {
		name    string
		timeout time.Duration
		writes  int64 // for 12 heartbeats 5s apart
	}{
		{"30s timeout: every 15s", 30 * time.Second, 4},
		{"10s timeout: every 5s", 10 * time.Second, 12},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if every := hub.HeartbeatWriteEvery(tc.timeout); every != tc.timeout/2 {
				t.Fatalf("heartbeat written every %s, want %s", every, tc.timeout/2)
			}
			clock := &fakeClock{t: t0}
			cs := &countingStore{}
			h := newHarness(t, opts{clock: clock, hb: tc.timeout, wrap: cs.wrap})
			h.expect(exp{run: "r1", machine: "m"})
			c := h.dial("r1", "m")
			c.connect()
			beat := func(after time.Duration) {
				t.Helper()
				clock.Advance(after)
				c.send(c.frame(wire.TypeHeartbeat))
				c.sync() // answered once the heartbeat is handled
				h.hub.FlushHeartbeats()
			}
			for range 12 {
				beat(5 * time.Second)
			}
			if got := cs.heartbeats.Load(); got != tc.writes {
				t.Errorf("%d heartbeat writes for 12 heartbeats, want %d", got, tc.writes)
			}
			if m := h.machine("r1", "m"); !m.LastHeartbeat.Equal(t0.Add(time.Minute)) {
				t.Errorf("stored heartbeat %s, want %s", m.LastHeartbeat, t0.Add(time.Minute))
			}
			beat(3 * time.Second) // not written: too soon after the last write
			last := t0.Add(63 * time.Second)
			clock.Advance(tc.timeout + time.Second)
			if f := h.awaitFinal("r1", "m"); f.status != store.StatusLost {
				t.Fatalf("status %s, want lost", f.status)
			}
			if m := h.machine("r1", "m"); !m.LastHeartbeat.Equal(last) {
				t.Errorf("lost machine's stored heartbeat %s, want its last one, %s", m.LastHeartbeat, last)
			}
		})
	}
}

// TestV1SyncCountsOutputStoredThroughAnotherCore: a v1 wrapper reads a
// sync answer of -1 as "job gone". A core that expected the machine, and
// never saw the output its wrapper stored through another core, asks the
// store before it answers that nothing is stored.
func TestV1SyncCountsOutputStoredThroughAnotherCore(t *testing.T) {
	h := newHarness(t, opts{legacy: true})
	h.expect(exp{run: "r1", machine: "legacy", protocol: 1})
	other := newHarness(t, opts{legacy: true, store: h.store})
	c := other.dial("r1", "legacy")
	c.send(c.frame(wire.TypeConnect))
	c.ackOf(wire.TypeConnect)
	c.out(0, wire.StreamStdout, []byte("one\n"))
	c.ackOutput(0)
	c.out(1, wire.StreamStdout, []byte("two\n"))
	c.ackOutput(1)
	c.ws.Close()

	back := h.dial("r1", "legacy")
	if got := back.sync(); got != 1 {
		t.Fatalf("last_seq %d at the core that expected the machine, want 1", got)
	}
	back.out(2, wire.StreamStdout, []byte("three\n"))
	back.ackOutput(2)
	if got := h.output("r1", "legacy", ""); got != "one\ntwo\nthree\n" {
		t.Fatalf("stored %q", got)
	}
}

func TestSweepTicks(t *testing.T) {
	for _, tc := range []struct {
		tick, heartbeatTimeout time.Duration
		want                   int
	}{
		// The defaults: a tick of 250ms, a sweep every second.
		{250 * time.Millisecond, hub.DefaultHeartbeatTimeout, 4},
		// 10s: a sweep every 500ms.
		{25 * time.Millisecond, 10 * time.Second, 20},
		// A timeout short beside the tick: every tick.
		{200 * time.Millisecond, 2 * time.Second, 1},
		{5 * time.Millisecond, 50 * time.Millisecond, 1},
		// A long timeout: still a sweep a second.
		{time.Second, time.Hour, 1},
		{100 * time.Millisecond, time.Hour, 10},
	} {
		if got := hub.SweepTicks(tc.tick, tc.heartbeatTimeout); got != tc.want {
			t.Errorf("SweepTicks(%s, %s) = %d, want %d", tc.tick, tc.heartbeatTimeout, got, tc.want)
		}
	}
}

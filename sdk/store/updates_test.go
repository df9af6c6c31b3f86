package store

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// machineStore is a fakeStore whose UpdateMachine keeps each machine's
// status, so that an update fails for its own machine as a store's
// would: ErrNotFound for a machine it does not have, ErrFinal with
// OnlyIfNotFinal when the machine is final. applied has the reasons each
// machine got, in the order they were applied. hold, when set, runs
// first: a test holds a call in the store with it.
type machineStore struct {
	fakeStore
	status  map[string]string
	applied map[string][]string
	hold    func(ctx context.Context, machine string) error
}

func newMachineStore(status map[string]string) *machineStore {
	return &machineStore{status: status, applied: map[string][]string{}}
}

func (s *machineStore) UpdateMachine(ctx context.Context, runID, machine string, u MachineUpdate) error {
	if s.hold != nil {
		if err := s.hold(ctx, machine); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.status[machine]
	if !ok {
		return fmt.Errorf("machine %s of run %s: %w", machine, runID, ErrNotFound)
	}
	if u.OnlyIfNotFinal && Final(st) {
		return fmt.Errorf("update machine %s of run %s (%s): %w", machine, runID, st, ErrFinal)
	}
	if u.Status != nil {
		s.status[machine] = *u.Status
	}
	if u.Reason != nil {
		s.applied[machine] = append(s.applied[machine], *u.Reason)
	}
	return nil
}

func (s *machineStore) appliedTo(machine string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.applied[machine])
}

// gate holds the store calls of one machine: each says it entered, then
// waits for open (or its ctx).
type gate struct {
	machine string
	entered chan struct{}
	open    chan struct{}
}

func newGate(machine string) *gate {
	return &gate{machine: machine, entered: make(chan struct{}, 8), open: make(chan struct{})}
}

func (g *gate) hold(ctx context.Context, machine string) error {
	if machine != g.machine {
		return nil
	}
	g.entered <- struct{}{}
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// updateCase is one UpdateMachine call of a test and what it must answer.
type updateCase struct {
	machine string
	u       MachineUpdate
	want    error // the sentinel, nil for success
}

// await is what ch delivers; the test fails if nothing comes in 10 s, so
// that a broken batcher fails its test rather than hang it.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("still waiting for %s after 10 s", what)
		panic("unreachable")
	}
}

// queueCalls starts n calls, each once the one before has joined a
// combiner's queue (queued is what its onQueue sends on), and returns
// their errors, in order.
func queueCalls(t *testing.T, queued <-chan int, n int, call func(i int) error) []chan error {
	t.Helper()
	out := make([]chan error, n)
	for i := range n {
		out[i] = make(chan error, 1)
		go func() { out[i] <- call(i) }()
		await(t, queued, fmt.Sprintf("call %d to queue", i))
	}
	return out
}

// holdCalls starts n calls that find room in flight and go alone, and
// returns once g holds all of them in the store.
func holdCalls(t *testing.T, g *gate, n int, call func() error) chan error {
	t.Helper()
	out := make(chan error, n)
	for i := range n {
		go func() { out <- call() }()
		await(t, g.entered, fmt.Sprintf("lone call %d in the store", i))
	}
	return out
}

// release opens g and checks the n held calls' answers.
func release(t *testing.T, g *gate, held chan error, n int) {
	t.Helper()
	close(g.open)
	for i := range n {
		if err := await(t, held, fmt.Sprintf("held call %d's answer", i)); err != nil {
			t.Fatalf("a held call: %v", err)
		}
	}
}

// queueInOrder queues the UpdateMachine calls in the order given (see
// queueCalls); queued must be what c.upd.onQueue sends on.
func queueInOrder(t *testing.T, ctx context.Context, c *GRPCClient, queued <-chan int, calls []updateCase) []chan error {
	t.Helper()
	return queueCalls(t, queued, len(calls), func(i int) error { return c.UpdateMachine(ctx, "r", calls[i].machine, calls[i].u) })
}

// holdLone sends a call of g's machine, which finds nothing in flight and
// goes alone, and returns once g holds it in the store, with its answer
// to come.
func holdLone(t *testing.T, c *GRPCClient, g *gate) chan error {
	t.Helper()
	return holdCalls(t, g, 1, func() error { return c.UpdateMachine(context.Background(), "r", g.machine, MachineUpdate{}) })
}

// sameError fails unless got is the very error want is: the same text,
// gRPC status (code, message and details), store errors and answer.
func sameError(t *testing.T, got, want error) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got == nil {
		return
	}
	if got.Error() != want.Error() {
		t.Errorf("text %q, want %q", got, want)
	}
	if g, w := status.Convert(got).Proto(), status.Convert(want).Proto(); !proto.Equal(g, w) {
		t.Errorf("status %v, want %v", g, w)
	}
	for _, s := range sentinels {
		if errors.Is(got, s) != errors.Is(want, s) {
			t.Errorf("errors.Is(%v, %v) = %v, unlike the unary call's error", got, s, errors.Is(got, s))
		}
	}
	var ga, wa interface{ PluginAnswered() bool }
	if errors.As(got, &ga) != errors.As(want, &wa) || (ga != nil && ga.PluginAnswered() != wa.PluginAnswered()) {
		t.Errorf("PluginAnswered differs from the unary call's error")
	}
}

// TestUpdateMachineBatches: calls that arrive while a call is in flight
// go together in the next, and each caller gets its own answer, the very
// error its unary call gets, in the order the calls queued (a machine
// made final earlier in the batch refuses a later OnlyIfNotFinal).
func TestUpdateMachineBatches(t *testing.T) {
	final, running := StatusSucceeded, StatusRunning
	s := newMachineStore(map[string]string{"m0": running, "a": running, "b": running, "c": running,
		"f": StatusFailed})
	g := newGate("m0")
	s.hold = g.hold
	c := dial(t, s)
	queued := make(chan int, 64)
	c.client.upd.onQueue = func(n int) { queued <- n }
	ctx := context.Background()

	first := holdLone(t, c.client, g)
	calls := []updateCase{
		{"a", MachineUpdate{Reason: ptr("a1")}, nil},
		{"b", MachineUpdate{Reason: ptr("b1")}, nil},
		{"f", MachineUpdate{Reason: ptr("late"), OnlyIfNotFinal: true}, ErrFinal},
		{"a", MachineUpdate{Reason: ptr("a2")}, nil},
		{"gone", MachineUpdate{Reason: ptr("x")}, ErrNotFound},
		{"c", MachineUpdate{Status: &final, Reason: ptr("c1")}, nil},
		{"b", MachineUpdate{Reason: ptr("b2")}, nil},
		{"c", MachineUpdate{Reason: ptr("c2"), OnlyIfNotFinal: true}, ErrFinal},
		{"f", MachineUpdate{Reason: ptr("f1")}, nil},
		{"a", MachineUpdate{Reason: ptr("a3")}, nil},
		{"gone", MachineUpdate{LastHeartbeat: ptr(time.Unix(60, 0)), OnlyIfNotFinal: true}, ErrNotFound},
		{"b", MachineUpdate{Reason: ptr("b3")}, nil},
	}
	answers := queueInOrder(t, ctx, c.client, queued, calls)
	close(g.open)
	if err := await(t, first, "the first call's answer"); err != nil {
		t.Fatalf("the held call: %v", err)
	}
	got := make([]error, len(calls))
	for i, tc := range calls {
		got[i] = await(t, answers[i], fmt.Sprintf("call %d's answer", i))
		if !errors.Is(got[i], tc.want) || (tc.want == nil) != (got[i] == nil) {
			t.Errorf("call %d (%s): %v, want %v", i, tc.machine, got[i], tc.want)
		}
	}
	if n, unary := c.calls("UpdateMachines"), c.calls("UpdateMachine"); n != 1 || unary != 1 {
		t.Errorf("%d calls went in %d UpdateMachines and %d UpdateMachine, want 1 and 1 (the first alone, then the rest together)",
			len(calls)+1, n, unary)
	}
	for m, want := range map[string][]string{"a": {"a1", "a2", "a3"}, "b": {"b1", "b2", "b3"}, "c": {"c1"}, "f": {"f1"}} {
		if got := s.appliedTo(m); !slices.Equal(got, want) {
			t.Errorf("machine %s got %v, want %v in that order", m, got, want)
		}
	}
	// The store's state makes every refused call refuse again: its unary
	// call's error is what the batch answered.
	for i, tc := range calls {
		if tc.want == nil {
			continue
		}
		_, unary := c.client.upd.one(ctx, &storepb.UpdateMachineRequest{RunId: "r", Machine: tc.machine, Update: pbMachineUpdate(tc.u)})
		t.Run(fmt.Sprintf("call %d is the unary error", i), func(t *testing.T) { sameError(t, got[i], unary) })
	}
}

// TestUpdateMachineLoneCall: a call with nothing in flight goes at once,
// alone, as the unary call, so that it costs what it did.
func TestUpdateMachineLoneCall(t *testing.T) {
	s := newMachineStore(map[string]string{"m": StatusRunning})
	c := dial(t, s)
	for i := range 3 {
		if err := c.client.UpdateMachine(context.Background(), "r", "m", MachineUpdate{Reason: ptr(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		if n, unary := c.calls("UpdateMachines"), c.calls("UpdateMachine"); n != 0 || unary != i+1 {
			t.Fatalf("after %d calls one after another, %d UpdateMachines and %d UpdateMachine", i+1, n, unary)
		}
	}
}

// batchingStore is a machineStore that is a MachineBatcher: it records
// the batches and answers each change as UpdateMachine, or with the
// wrong number of results when short is set.
type batchingStore struct {
	*machineStore
	batches [][]MachineChange
	short   bool
}

func (s *batchingStore) UpdateMachines(ctx context.Context, batch []MachineChange) []error {
	s.mu.Lock()
	s.batches = append(s.batches, batch)
	short := s.short
	s.mu.Unlock()
	if short {
		return nil
	}
	errs := make([]error, len(batch))
	for i, ch := range batch {
		errs[i] = s.machineStore.UpdateMachine(ctx, ch.RunID, ch.Machine, ch.Update)
	}
	return errs
}

// TestMachineBatcherGetsTheBatch: a store that is a MachineBatcher gets
// the batch whole, and its answers reach their callers; one that answers
// the wrong number fails every call of the batch.
func TestMachineBatcherGetsTheBatch(t *testing.T) {
	for _, short := range []bool{false, true} {
		t.Run(fmt.Sprintf("short=%v", short), func(t *testing.T) {
			s := &batchingStore{machineStore: newMachineStore(map[string]string{"held": StatusRunning, "a": StatusRunning}), short: short}
			g := newGate("held")
			s.hold = g.hold
			c := dial(t, s)
			queued := make(chan int, 8)
			c.client.upd.onQueue = func(n int) { queued <- n }
			held := holdLone(t, c.client, g)
			answers := queueInOrder(t, context.Background(), c.client, queued,
				[]updateCase{{machine: "a", u: MachineUpdate{Reason: ptr("a1")}}, {machine: "gone"}})
			close(g.open)
			if err := await(t, held, "the lone call's answer"); err != nil {
				t.Fatal(err)
			}
			err, err2 := await(t, answers[0], "the first answer"), await(t, answers[1], "the second answer")
			s.mu.Lock()
			batches := s.batches
			s.mu.Unlock()
			if len(batches) != 1 || len(batches[0]) != 2 || batches[0][0].Machine != "a" || *batches[0][0].Update.Reason != "a1" ||
				batches[0][1].Machine != "gone" {
				t.Fatalf("the store got batches %+v, want one: [a a1] [gone]", batches)
			}
			if short {
				if err == nil || err2 == nil {
					t.Errorf("a store answering no results: %v, %v; want both to fail", err, err2)
				}
				return
			}
			if err != nil || !errors.Is(err2, ErrNotFound) {
				t.Errorf("got %v, %v; want nil, ErrNotFound", err, err2)
			}
		})
	}
}

// TestClientUpdateMachines: a batch the caller made goes to the plugin as
// one UpdateMachines call, in its order, and each change gets what
// UpdateMachine would have answered; a plugin built before UpdateMachines
// gets the changes one by one, each machine's in order.
func TestClientUpdateMachines(t *testing.T) {
	batch := []MachineChange{
		{RunID: "r", Machine: "a", Update: MachineUpdate{Reason: ptr("a1")}},
		{RunID: "r", Machine: "f", Update: MachineUpdate{Reason: ptr("late"), OnlyIfNotFinal: true}},
		{RunID: "r", Machine: "gone"},
		{RunID: "r", Machine: "a", Update: MachineUpdate{Reason: ptr("a2")}},
	}
	want := []error{nil, ErrFinal, ErrNotFound, nil}
	statuses := func() map[string]string { return map[string]string{"a": StatusRunning, "f": StatusLost} }
	check := func(t *testing.T, errs []error, ms *machineStore) {
		t.Helper()
		if len(errs) != len(want) {
			t.Fatalf("%d results for %d changes", len(errs), len(want))
		}
		for i, err := range errs {
			if !errors.Is(err, want[i]) || (want[i] == nil) != (err == nil) {
				t.Errorf("change %d (%s): %v, want %v", i, batch[i].Machine, err, want[i])
			}
		}
		if got := ms.appliedTo("a"); !slices.Equal(got, []string{"a1", "a2"}) {
			t.Errorf("machine a got %v, want [a1 a2] in that order", got)
		}
	}
	t.Run("batching plugin", func(t *testing.T) {
		s := &batchingStore{machineStore: newMachineStore(statuses())}
		c := dial(t, s)
		check(t, c.client.UpdateMachines(context.Background(), batch), s.machineStore)
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.batches) != 1 || len(s.batches[0]) != len(batch) {
			t.Errorf("the store got %d batches (%+v), want the %d changes in one", len(s.batches), s.batches, len(batch))
		}
	})
	t.Run("old plugin", func(t *testing.T) {
		old := newMachineStore(statuses())
		older, calls := olderPlugin("UpdateMachines")
		client := dialOld(t, &GRPCServer{Impl: old}, older)
		check(t, client.UpdateMachines(context.Background(), batch), old)
		if n := calls.of("UpdateMachine"); n != int64(len(batch)) {
			t.Errorf("the old plugin got %d UpdateMachine calls, want %d", n, len(batch))
		}
	})
	t.Run("ended context", func(t *testing.T) {
		c := dial(t, &batchingStore{machineStore: newMachineStore(statuses())})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		for i, err := range c.client.UpdateMachines(ctx, batch) {
			if status.Code(err) != codes.Canceled {
				t.Errorf("change %d: %v, want canceled", i, err)
			}
		}
	})
}

// olderPlugin is a server option that makes a plugin of the real server
// one built before the methods refused: it answers them UNIMPLEMENTED, as
// a server without them does. It counts every method's calls, refused
// ones too.
func olderPlugin(refused ...string) (grpc.ServerOption, *methodCalls) {
	c := &methodCalls{n: map[string]int64{}}
	return grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		m := path.Base(info.FullMethod)
		c.mu.Lock()
		c.n[m]++
		c.mu.Unlock()
		if slices.Contains(refused, m) {
			return nil, status.Errorf(codes.Unimplemented, "method %s not implemented", m)
		}
		return handler(ctx, req)
	}), c
}

// methodCalls counts a server's calls by method.
type methodCalls struct {
	mu sync.Mutex
	n  map[string]int64
}

// of is how many calls the methods named had between them.
func (c *methodCalls) of(methods ...string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for _, m := range methods {
		n += c.n[m]
	}
	return n
}

// TestUpdateMachineFallsBack: against a plugin without UpdateMachines the
// batch it refused is sent again call by call, and every call after it
// goes alone, for the life of the client; callers get their own answers.
func TestUpdateMachineFallsBack(t *testing.T) {
	old := newMachineStore(map[string]string{"held": StatusRunning, "held2": StatusRunning,
		"a": StatusRunning, "b": StatusRunning, "f": StatusLost})
	g, g2 := newGate("held"), newGate("held2")
	old.hold = func(ctx context.Context, machine string) error {
		if err := g.hold(ctx, machine); err != nil {
			return err
		}
		return g2.hold(ctx, machine)
	}
	older, calls := olderPlugin("UpdateMachines")
	client := dialOld(t, &GRPCServer{Impl: old}, older)
	queued := make(chan int, 64)
	client.upd.onQueue = func(n int) { queued <- n }
	ctx := context.Background()

	held := holdLone(t, client, g)
	cases := []updateCase{
		{"b", MachineUpdate{Reason: ptr("b1")}, nil},
		{"a", MachineUpdate{Reason: ptr("a1")}, nil},
		{"f", MachineUpdate{Reason: ptr("late"), OnlyIfNotFinal: true}, ErrFinal},
		{"gone", MachineUpdate{}, ErrNotFound},
		{"a", MachineUpdate{Reason: ptr("a2")}, nil},
	}
	answers := queueInOrder(t, ctx, client, queued, cases)
	close(g.open)
	if err := await(t, held, "the lone call's answer"); err != nil {
		t.Fatalf("the lone call: %v", err)
	}
	for i, tc := range cases {
		if err := await(t, answers[i], fmt.Sprintf("call %d's answer", i)); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("call %d (%s): %v, want %v", i, tc.machine, err, tc.want)
		}
	}
	// With a call in flight, the next goes alone at once instead of
	// queueing for a batch.
	held2 := holdLone(t, client, g2)
	after := make(chan error, 1)
	go func() { after <- client.UpdateMachine(ctx, "r", "b", MachineUpdate{Reason: ptr("b2")}) }()
	if err := await(t, after, "a call beside one in flight, after the fallback"); err != nil {
		t.Errorf("a call after the fallback: %v", err)
	}
	close(g2.open)
	if err := await(t, held2, "the second lone call's answer"); err != nil {
		t.Fatal(err)
	}
	if n, unary := calls.of("UpdateMachines"), calls.of("UpdateMachine"); n != 1 || unary != int64(len(cases)+3) {
		t.Errorf("the old plugin got %d UpdateMachines and %d UpdateMachine, want 1 and %d", n, unary, len(cases)+3)
	}
	for m, want := range map[string][]string{"a": {"a1", "a2"}, "b": {"b1", "b2"}} {
		if got := old.appliedTo(m); !slices.Equal(got, want) {
			t.Errorf("machine %s got %v, want %v in that order", m, got, want)
		}
	}
}

// TestUpdateMachineCancelled: a caller whose ctx ends gets the context's
// error at once, as from a unary call. Not yet sent, its update is
// dropped; once every caller of a batch has left, the call carrying it
// is cancelled in the plugin too; while another caller waits, that
// caller still gets its answer.
func TestUpdateMachineCancelled(t *testing.T) {
	ctx := context.Background()
	wantCanceled := func(t *testing.T, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
			t.Errorf("cancelled caller got %v (code %s), want context.Canceled", err, status.Code(err))
		}
	}

	t.Run("queued", func(t *testing.T) {
		s := newMachineStore(map[string]string{"held": StatusRunning, "dropped": StatusRunning, "after": StatusRunning})
		g := newGate("held")
		s.hold = g.hold
		c := dial(t, s)
		queued := make(chan int, 8)
		c.client.upd.onQueue = func(n int) { queued <- n }
		held := holdLone(t, c.client, g)
		cctx, cancel := context.WithCancel(ctx)
		answers := queueInOrder(t, cctx, c.client, queued, []updateCase{{machine: "dropped", u: MachineUpdate{Reason: ptr("x")}}})
		cancel()
		wantCanceled(t, await(t, answers[0], "the cancelled caller's answer"))
		close(g.open)
		if err := await(t, held, "the held call's answer"); err != nil {
			t.Fatal(err)
		}
		if err := c.client.UpdateMachine(ctx, "r", "after", MachineUpdate{Reason: ptr("y")}); err != nil {
			t.Fatal(err)
		}
		if got := s.appliedTo("dropped"); len(got) != 0 {
			t.Errorf("the abandoned update reached the store: %v", got)
		}
		if n, unary := c.calls("UpdateMachines"), c.calls("UpdateMachine"); n != 0 || unary != 2 {
			t.Errorf("%d UpdateMachines and %d UpdateMachine, want 0 and 2: the held call and the last, not the abandoned one", n, unary)
		}
	})

	t.Run("in flight, every caller gone", func(t *testing.T) {
		s := newMachineStore(map[string]string{"held": StatusRunning, "x": StatusRunning, "y": StatusRunning})
		g := newGate("held")
		storeCtxEnded := make(chan error, 2)
		entered := make(chan struct{}, 2)
		s.hold = func(ctx context.Context, machine string) error {
			if machine == g.machine {
				return g.hold(ctx, machine)
			}
			entered <- struct{}{}
			<-ctx.Done()
			storeCtxEnded <- ctx.Err()
			return ctx.Err()
		}
		c := dial(t, s)
		queued := make(chan int, 8)
		c.client.upd.onQueue = func(n int) { queued <- n }
		held := holdLone(t, c.client, g)
		cctx, cancel := context.WithCancel(ctx)
		answers := queueInOrder(t, cctx, c.client, queued, []updateCase{{machine: "x"}, {machine: "y"}})
		close(g.open)
		if err := await(t, held, "the lone call's answer"); err != nil {
			t.Fatal(err)
		}
		await(t, entered, "the batch in the store")
		await(t, entered, "the batch's second item in the store")
		cancel()
		for i := range answers {
			wantCanceled(t, await(t, answers[i], "a cancelled caller's answer"))
		}
		await(t, storeCtxEnded, "the store's calls to end with every caller gone")
	})

	t.Run("in flight with another", func(t *testing.T) {
		s := newMachineStore(map[string]string{"first": StatusRunning, "leaves": StatusRunning, "stays": StatusRunning})
		g := newGate("first")
		g2 := newGate("stays")
		s.hold = func(ctx context.Context, machine string) error {
			if err := g.hold(ctx, machine); err != nil {
				return err
			}
			return g2.hold(ctx, machine)
		}
		c := dial(t, s)
		queued := make(chan int, 8)
		c.client.upd.onQueue = func(n int) { queued <- n }
		first := holdLone(t, c.client, g)
		cctx, cancel := context.WithCancel(ctx)
		leaves := queueInOrder(t, cctx, c.client, queued, []updateCase{{machine: "leaves"}})[0]
		stays := queueInOrder(t, ctx, c.client, queued, []updateCase{{machine: "stays", u: MachineUpdate{Reason: ptr("s")}}})[0]
		close(g.open)
		await(t, g2.entered, "the batch of both in the store")
		cancel()
		wantCanceled(t, await(t, leaves, "the cancelled caller's answer"))
		close(g2.open)
		if err := await(t, stays, "the answer of the caller that stayed"); err != nil {
			t.Errorf("the caller that stayed got %v: its batch was cancelled under it", err)
		}
		if err := await(t, first, "the first call's answer"); err != nil {
			t.Fatal(err)
		}
		if got := s.appliedTo("stays"); !slices.Equal(got, []string{"s"}) {
			t.Errorf("store got %v for the caller that stayed", got)
		}
	})
}

// TestUpdateBatchBounds: take honours the item and byte bounds (but
// always takes one call, however big), skips abandoned calls, and gives
// a batch of more than one call the latest of its callers' deadlines,
// none when one of them has none; a batch of one goes alone.
func TestUpdateBatchBounds(t *testing.T) {
	base := time.Now().Add(time.Hour)
	cases := []struct {
		name          string
		sizes         []int
		deadlines     []time.Duration // per call, minutes past base; negative: none
		wantSizes     []int
		wantDeadlines []time.Duration // per batch; negative: none
	}{
		{"many small", repeat(10, maxBatchItems+3), nil, []int{maxBatchItems, 3}, nil},
		{"bytes bound", []int{maxBatchBytes / 2, maxBatchBytes / 2, 1}, nil, []int{2, 1}, nil},
		{"oversized alone", []int{1, maxBatchBytes, 1}, nil, []int{1, 1, 1}, nil},
		{"latest deadline", []int{1, 1, 1}, []time.Duration{2, 3, 1}, []int{3}, []time.Duration{3}},
		{"one without a deadline", []int{1, 1}, []time.Duration{2, -1}, []int{2}, []time.Duration{-1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &updater{}
			for i, n := range tc.sizes {
				ctx := context.Background()
				if tc.deadlines != nil && tc.deadlines[i] >= 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithDeadline(ctx, base.Add(tc.deadlines[i]*time.Minute))
					t.Cleanup(cancel)
				}
				u.queue = append(u.queue, &queuedCall[*storepb.UpdateMachineRequest, struct{}]{ctx: ctx, size: n})
			}
			u.queue = slices.Insert(u.queue, 1, &queuedCall[*storepb.UpdateMachineRequest, struct{}]{ctx: context.Background(), abandoned: true})
			u.inflight = 1
			var got []int
			for i := 0; ; i++ {
				batch, b := u.take()
				if len(batch) == 0 {
					break
				}
				got = append(got, len(batch))
				if (b == nil) != (len(batch) == 1) {
					t.Errorf("batch %d of %d calls has call %v", i, len(batch), b)
					continue
				}
				if b == nil {
					continue
				}
				if b.waiting != len(batch) || batch[0].batch != b {
					t.Errorf("batch %d: %d waiting, its calls' batch %p; want %d, %p", i, b.waiting, batch[0].batch, len(batch), b)
				}
				if tc.wantDeadlines != nil {
					d, ok := b.ctx.Deadline()
					if want := tc.wantDeadlines[i]; (want < 0) == ok || (ok && !d.Equal(base.Add(want*time.Minute))) {
						t.Errorf("batch %d: deadline %v (%v), want %v minutes past base", i, d, ok, want)
					}
				}
				b.cancel()
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantSizes) {
				t.Errorf("batches of %v, want %v", got, tc.wantSizes)
			}
			if u.inflight != 0 {
				t.Error("the sender is still marked running with the queue empty")
			}
		})
	}
}

// TestInOrderByKey: a key's items run one after another in their order,
// different keys side by side, and never more than the limit at once.
func TestInOrderByKey(t *testing.T) {
	// a0 waits until the chains of b and c have run to their end, which
	// they can only do side by side with a's; a1 must not start before
	// a0 has ended.
	keys := []string{"a", "a", "b", "c", "b", "c", "a", "d"}
	const limit = 3
	var mu sync.Mutex
	var order []int
	running := map[string]bool{}
	inFlight, most := 0, 0
	bcDone := make(chan struct{})
	left := 4 // the items of b and c
	inOrderByKey(len(keys), limit, func(i int) machineKey { return machineKey{"r", keys[i]} }, func(i int) {
		k := keys[i]
		mu.Lock()
		if running[k] {
			t.Errorf("item %d started while another of key %s ran", i, k)
		}
		running[k] = true
		order = append(order, i)
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		if i == 0 {
			select {
			case <-bcDone:
			case <-time.After(10 * time.Second):
				t.Error("keys b and c did not run while a's first item waited: keys do not run side by side")
			}
		}
		mu.Lock()
		running[k] = false
		inFlight--
		if k == "b" || k == "c" {
			if left--; left == 0 {
				close(bcDone)
			}
		}
		mu.Unlock()
	})
	if len(order) != len(keys) {
		t.Fatalf("ran %v, want every one of %d items", order, len(keys))
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		var seq []int
		for _, i := range order {
			if keys[i] == k {
				seq = append(seq, i)
			}
		}
		if !slices.IsSorted(seq) {
			t.Errorf("key %s ran its items in the order %v", k, seq)
		}
	}
	if most > limit {
		t.Errorf("%d items ran at once, limit %d", most, limit)
	}
}

// TestOpenOnConfigureBatchesUpdates: the store a plugin opens on
// Configure gets a batch whole when it is a MachineBatcher, else call by
// call; before Configure every change fails as unavailable.
func TestOpenOnConfigureBatchesUpdates(t *testing.T) {
	ctx := context.Background()
	batch := []MachineChange{{RunID: "r", Machine: "a", Update: MachineUpdate{Reason: ptr("a1")}}, {RunID: "r", Machine: "gone"}}
	for _, tc := range []struct {
		name string
		open Store
	}{
		{"batcher", &batchingStore{machineStore: newMachineStore(map[string]string{"a": StatusRunning})}},
		{"plain", newMachineStore(map[string]string{"a": StatusRunning})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := OpenOnConfigure(func(context.Context, []byte) (Store, error) { return tc.open, nil }).(MachineBatcher)
			for i, err := range l.UpdateMachines(ctx, batch) {
				if !errors.Is(err, ErrUnavailable) {
					t.Errorf("before Configure, change %d: got %v, want ErrUnavailable", i, err)
				}
			}
			if err := l.(Configurer).Configure(ctx, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			errs := l.UpdateMachines(ctx, batch)
			if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], ErrNotFound) {
				t.Fatalf("got %v; want nil, ErrNotFound", errs)
			}
			if b, ok := tc.open.(*batchingStore); ok && len(b.batches) != 1 {
				t.Errorf("the opened batcher got %d batches, want 1", len(b.batches))
			}
		})
	}
}

package target

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/saltpeter/saltpeter/sdk/target/internal/targetpb"
)

// gatedTarget answers Resolve with the job's name as its machine and
// Dispatch with the machine's name; a dispatch to a machine in hold waits
// until that machine's channel is closed or its ctx ends.
type gatedTarget struct {
	hold  map[string]chan struct{}
	ended chan error // if set, told how a held dispatch's ctx ended
}

func (g *gatedTarget) Configure(context.Context, []byte) error { return nil }

func (g *gatedTarget) Resolve(_ context.Context, req ResolveRequest) ([]string, error) {
	return []string{req.Job}, nil
}

func (g *gatedTarget) Dispatch(ctx context.Context, req DispatchRequest) (DispatchResult, error) {
	if ch, ok := g.hold[req.Machine]; ok {
		select {
		case <-ch:
		case <-ctx.Done():
			if g.ended != nil {
				g.ended <- ctx.Err()
			}
			return DispatchResult{}, ctx.Err()
		}
	}
	if req.Machine == "unreachable" {
		return DispatchResult{}, fmt.Errorf("%s: no route: %w", req.Machine, ErrUnreachable)
	}
	return DispatchResult{Detail: "started on " + req.Machine}, nil
}

// countingClient is the core's gRPC client, counting the batches it
// sends and letting a test hold the first one back before it goes.
type countingClient struct {
	targetpb.TargetClient
	mu      sync.Mutex
	batches []int // calls in each batch sent
	unary   int
	first   chan struct{} // if set, the first batch waits for it
	entered chan struct{} // if set, closed when the first batch is taken
}

func (c *countingClient) Calls(ctx context.Context, in *targetpb.CallBatch, opts ...grpc.CallOption) (targetpb.Target_CallsClient, error) {
	c.mu.Lock()
	c.batches = append(c.batches, len(in.GetCalls()))
	first := len(c.batches) == 1
	c.mu.Unlock()
	if first && c.entered != nil {
		close(c.entered)
	}
	if first && c.first != nil {
		<-c.first
	}
	return c.TargetClient.Calls(ctx, in, opts...)
}

func (c *countingClient) Dispatch(ctx context.Context, in *targetpb.DispatchRequest, opts ...grpc.CallOption) (*targetpb.DispatchResponse, error) {
	c.mu.Lock()
	c.unary++
	c.mu.Unlock()
	return c.TargetClient.Dispatch(ctx, in, opts...)
}

func (c *countingClient) counts() (batches []int, unary int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.batches...), c.unary
}

// serve serves srv over an in-memory listener and returns a client of it
// whose calls are counted.
func serve(t *testing.T, srv targetpb.TargetServer) *countingClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := grpc.NewServer()
	targetpb.RegisterTargetServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("dial the in-memory plugin: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &countingClient{TargetClient: targetpb.NewTargetClient(conn)}
}

// TestCallsBatch: calls that arrive while a batch is being handed over go
// together in the next, each caller gets its own answer (and its own
// error, ErrUnreachable still found by errors.Is), and a slow call does
// not hold back the others of its batch.
func TestCallsBatch(t *testing.T) {
	slow := make(chan struct{})
	cc := serve(t, &GRPCServer{Impl: &gatedTarget{hold: map[string]chan struct{}{"slow": slow}}})
	cc.first, cc.entered = make(chan struct{}), make(chan struct{})
	c := newGRPCClient(cc)
	const n = 20
	queued := make(chan int, 2*n)
	c.batch.onQueue = func(q int) { queued <- q }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	type answer struct {
		machine, detail string
		err             error
	}
	answers := make(chan answer, n+2)
	dispatch := func(m string) {
		res, err := c.Dispatch(ctx, DispatchRequest{Job: "j", RunID: "r", Machine: m})
		answers <- answer{m, res.Detail, err}
	}
	// The first call's batch is held before it goes; the rest queue.
	go dispatch("m00")
	<-queued
	<-cc.entered
	for i := 1; i < n; i++ {
		go dispatch(fmt.Sprintf("m%02d", i))
	}
	go dispatch("slow")
	go dispatch("unreachable")
	for q := 0; q < n+1; {
		q = <-queued
	}
	close(cc.first)

	got := map[string]answer{}
	for range n + 1 { // every call but the slow one
		a := <-answers
		got[a.machine] = a
	}
	if _, ok := got["slow"]; ok {
		t.Fatal("the slow dispatch answered before it was let go")
	}
	for i := range n {
		m := fmt.Sprintf("m%02d", i)
		if a := got[m]; a.err != nil || a.detail != "started on "+m {
			t.Errorf("dispatch to %s: %q, %v", m, a.detail, a.err)
		}
	}
	if a := got["unreachable"]; !errors.Is(a.err, ErrUnreachable) || a.err.Error() != "unreachable: no route: machine unreachable" {
		t.Errorf("dispatch to unreachable: %v, want ErrUnreachable with the plugin's text", a.err)
	}
	close(slow)
	if a := <-answers; a.machine != "slow" || a.err != nil {
		t.Errorf("slow dispatch: %+v", a)
	}
	batches, unary := cc.counts()
	sort.Ints(batches)
	if len(batches) != 2 || batches[0] != 1 || batches[1] != n+1 || unary != 0 {
		t.Errorf("batches %v and %d unary calls, want [1 %d] and none", batches, unary, n+1)
	}

	machines, err := c.Resolve(ctx, ResolveRequest{Job: "web1"})
	if err != nil || len(machines) != 1 || machines[0] != "web1" {
		t.Errorf("Resolve: %v, %v", machines, err)
	}
}

// oldServer is a plugin built before Calls existed.
type oldServer struct{ *GRPCServer }

func (oldServer) Calls(*targetpb.CallBatch, targetpb.Target_CallsServer) error {
	return status.Error(codes.Unimplemented, "method Calls not implemented")
}

// TestCallsFallBack: a plugin without Calls gets every call one by one,
// the first batch's included, and is not offered a batch again.
func TestCallsFallBack(t *testing.T) {
	cc := serve(t, oldServer{&GRPCServer{Impl: &gatedTarget{}}})
	c := newGRPCClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range []string{"web1", "web2", "web3"} {
		res, err := c.Dispatch(ctx, DispatchRequest{Job: "j", Machine: m})
		if err != nil || res.Detail != "started on "+m {
			t.Fatalf("dispatch to %s: %q, %v", m, res.Detail, err)
		}
	}
	if machines, err := c.Resolve(ctx, ResolveRequest{Job: "web1"}); err != nil || len(machines) != 1 {
		t.Fatalf("Resolve: %v, %v", machines, err)
	}
	batches, unary := cc.counts()
	if len(batches) != 1 || unary != 3 {
		t.Errorf("%d batches offered and %d unary dispatches, want 1 and 3", len(batches), unary)
	}
}

// TestCallsCarryDeadline: a call in a batch ends in the plugin at its
// caller's deadline, as a unary call's would, though its batch's stream
// lives on for another call; the caller learns it as
// context.DeadlineExceeded.
func TestCallsCarryDeadline(t *testing.T) {
	ended := make(chan error, 2)
	slow := make(chan struct{})
	cc := serve(t, &GRPCServer{Impl: &gatedTarget{ended: ended,
		hold: map[string]chan struct{}{"never": make(chan struct{}), "slow": slow}}})
	cc.first, cc.entered = make(chan struct{}), make(chan struct{})
	c := newGRPCClient(cc)
	queued := make(chan int, 4)
	c.batch.onQueue = func(q int) { queued <- q }

	long, cancelLong := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelLong()
	short, cancelShort := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelShort()
	go func() { _, _ = c.Dispatch(long, DispatchRequest{Job: "j", Machine: "m0"}) }()
	<-queued
	<-cc.entered // m0's batch is held before it goes: the next two queue
	slowDone := make(chan error, 1)
	go func() {
		_, err := c.Dispatch(long, DispatchRequest{Job: "j", Machine: "slow"})
		slowDone <- err
	}()
	<-queued
	neverDone := make(chan error, 1)
	go func() {
		_, err := c.Dispatch(short, DispatchRequest{Job: "j", Machine: "never"})
		neverDone <- err
	}()
	<-queued
	close(cc.first)

	if err := <-neverDone; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dispatch err = %v, want context.DeadlineExceeded", err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("the plugin's call ended with %v, want its deadline", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call outlived its deadline in the plugin")
	}
	close(slow)
	if err := <-slowDone; err != nil {
		t.Errorf("the slow call, let go: %v", err)
	}
	if batches, _ := cc.counts(); len(batches) != 2 {
		t.Errorf("batches %v, want the held one and one of two", batches)
	}
}

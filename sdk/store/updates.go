package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// UpdateMachine is the store's busiest call after output: a run costs
// about five (dispatched, connected, started, heartbeat, completed) and an
// idle fleet's heartbeats a steady stream, each a round trip and, in the
// plugin, a write of its own. So the client queues them as it queues
// output (append.go): while a call is in flight, the calls that arrive
// wait and go together in the next, one UpdateMachines call, and each
// caller waits for its own result; under load the batches grow by
// themselves, without a timer. A call that finds nothing in flight goes
// at once as the unary UpdateMachine, from its caller's goroutine and in
// its caller's ctx: a lone call costs exactly what it did. The plugin
// applies a batch's items side by side (each machine's in order), so that
// a store that group-commits concurrent writes can merge them, as far as
// they reach it while its previous transaction runs (on a box with few
// CPUs, not far: a MachineBatcher does better).
//
// Unlike output, the batches are unary calls, not messages on a stream:
// they carry few bytes, and a unary call has no session to open, watch
// and reopen when the plugin restarts. Queued calls are sent by a
// goroutine that lives while the queue has work, not by one of their
// callers, because a caller must be free to leave when its ctx ends while
// the batch carrying its item is still in flight.

// maxConcurrentUpdates bounds how many machines' updates of one batch a
// plugin applies at once (and the client sends at once when it falls back
// to UpdateMachine): room for a store's group commit to merge them, and
// above the connection pool of a server database.
const maxConcurrentUpdates = 64

// updater is a GRPCClient's queue of UpdateMachine calls.
type updater struct {
	client storepb.StoreClient

	mu    sync.Mutex
	queue []*updateCall
	// sending is true while a call or a batch is in flight (a lone call,
	// or the sender goroutine's); while it is false the queue is empty.
	sending bool
	// unary is set once the plugin answered UpdateMachines with
	// UNIMPLEMENTED (it was built before it): from then on every call
	// goes alone, as UpdateMachine.
	unary   bool
	onQueue func(queued int) // tests: called with the queue length after each call joins it
}

// updateCall is one queued UpdateMachine.
type updateCall struct {
	ctx  context.Context
	item *storepb.UpdateMachineRequest
	size int        // the item's encoded size
	done chan error // buffered: the sender never blocks on it
	key  machineKey // the item's run and machine
	// abandoned is set when the caller stopped waiting: the sender drops
	// the call if it has not sent it yet. batch is the batch carrying the
	// call once it is sent, nil when it goes alone. Both are guarded by
	// updater.mu.
	abandoned bool
	batch     *updateBatch
}

// updateBatch is the UpdateMachines call of more than one queued call.
// Its context has the latest of their callers' deadlines (none when one
// has none) and ends when every one of them has stopped waiting, as a
// unary call's ends with its caller's.
type updateBatch struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiting int // guarded by updater.mu
}

func newUpdater(client storepb.StoreClient) *updater {
	return &updater{client: client}
}

// update sends item alone when nothing is in flight, else queues it, and
// waits for its result or the end of ctx.
func (u *updater) update(ctx context.Context, item *storepb.UpdateMachineRequest) error {
	u.mu.Lock()
	if u.unary {
		u.mu.Unlock()
		return u.one(ctx, item)
	}
	if !u.sending {
		u.sending = true
		u.mu.Unlock()
		err := u.one(ctx, item)
		u.mu.Lock()
		if len(u.queue) > 0 {
			go u.send()
		} else {
			u.sending = false
		}
		u.mu.Unlock()
		return err
	}
	if ctx.Err() != nil {
		u.mu.Unlock()
		return ctxError(ctx)
	}
	call := u.enqueue(ctx, item)
	u.mu.Unlock()
	return u.wait(ctx, call)
}

// updateAll queues items together, in their order, and waits for each
// one's result: a batch the caller made goes in as few UpdateMachines
// calls as the batches' bounds allow, behind whatever is queued.
func (u *updater) updateAll(ctx context.Context, items []*storepb.UpdateMachineRequest) []error {
	errs := make([]error, len(items))
	u.mu.Lock()
	if u.unary {
		u.mu.Unlock()
		inOrderByKey(len(items), maxConcurrentUpdates,
			func(i int) machineKey { return machineKey{items[i].GetRunId(), items[i].GetMachine()} },
			func(i int) { errs[i] = u.one(ctx, items[i]) })
		return errs
	}
	if ctx.Err() != nil {
		u.mu.Unlock()
		for i := range errs {
			errs[i] = ctxError(ctx)
		}
		return errs
	}
	calls := make([]*updateCall, len(items))
	for i, item := range items {
		calls[i] = u.enqueue(ctx, item)
	}
	if !u.sending {
		u.sending = true
		go u.send()
	}
	u.mu.Unlock()
	for i, c := range calls {
		errs[i] = u.wait(ctx, c)
	}
	return errs
}

// enqueue adds a call for item to the queue; u.mu is held.
func (u *updater) enqueue(ctx context.Context, item *storepb.UpdateMachineRequest) *updateCall {
	call := &updateCall{ctx: ctx, item: item, size: proto.Size(item), done: make(chan error, 1),
		key: machineKey{item.GetRunId(), item.GetMachine()}}
	u.queue = append(u.queue, call)
	if u.onQueue != nil {
		u.onQueue(len(u.queue))
	}
	return call
}

// wait waits for a queued call's result or the end of ctx, when it gives
// the call up.
func (u *updater) wait(ctx context.Context, call *updateCall) error {
	select {
	case err := <-call.done:
		return err
	case <-ctx.Done():
	}
	u.mu.Lock()
	call.abandoned = true
	if b := call.batch; b != nil {
		if b.waiting--; b.waiting == 0 {
			b.cancel()
		}
	}
	u.mu.Unlock()
	select {
	case err := <-call.done: // the answer came as the caller gave up
		return err
	default:
		return ctxError(ctx)
	}
}

// send sends the queue's batches, one at a time, until it is empty.
func (u *updater) send() {
	for {
		batch, b := u.take()
		switch {
		case len(batch) == 0:
			return
		case b == nil:
			// One call: the unary call, in its caller's ctx.
			batch[0].done <- u.one(batch[0].ctx, batch[0].item)
		default:
			u.sendBatch(b.ctx, batch)
			b.cancel()
		}
	}
}

// take removes the next batch from the queue, with the UpdateMachines
// call carrying it when it has more than one call; nothing, and the
// sender stops, when nothing is left to send.
func (u *updater) take() ([]*updateCall, *updateBatch) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var batch []*updateCall
	var deadline time.Time
	bounded := true
	size, n := 0, 0
	for _, c := range u.queue {
		if c.abandoned {
			n++
			continue
		}
		if len(batch) > 0 && (len(batch) >= maxBatchItems || size+c.size > maxBatchBytes) {
			break
		}
		batch = append(batch, c)
		size += c.size
		n++
		if d, ok := c.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(deadline) {
			deadline = d
		}
	}
	clear(u.queue[:n])
	if n == len(u.queue) {
		u.queue = u.queue[:0]
	} else {
		u.queue = u.queue[n:]
	}
	if len(batch) <= 1 {
		u.sending = len(batch) == 1
		return batch, nil
	}
	b := &updateBatch{waiting: len(batch)}
	if bounded {
		b.ctx, b.cancel = context.WithDeadline(context.Background(), deadline)
	} else {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	for _, c := range batch {
		c.batch = b
	}
	return batch, b
}

// sendBatch sends one batch and hands each caller its result. A plugin
// built before UpdateMachines refuses it having changed nothing, so the
// batch's items are sent again one by one.
func (u *updater) sendBatch(ctx context.Context, batch []*updateCall) {
	u.mu.Lock()
	unary := u.unary
	u.mu.Unlock()
	if !unary {
		req := &storepb.UpdateMachinesRequest{Items: make([]*storepb.UpdateMachineRequest, len(batch))}
		for i, c := range batch {
			req.Items[i] = c.item
		}
		resp, err := u.client.UpdateMachines(ctx, req)
		if status.Code(err) != codes.Unimplemented {
			deliverUpdates(batch, resp, err)
			return
		}
		u.mu.Lock()
		u.unary = true
		u.mu.Unlock()
	}
	// Each item in its own caller's context, as UpdateMachine; before the
	// next batch, so that a machine's updates keep their order.
	inOrderByKey(len(batch), maxConcurrentUpdates, func(i int) machineKey { return batch[i].key }, func(i int) {
		c := batch[i]
		u.mu.Lock()
		gone := c.abandoned
		u.mu.Unlock()
		if !gone {
			c.done <- u.one(c.ctx, c.item)
		}
	})
}

// deliverUpdates hands each call of a batch its result: the item's own,
// or the whole call's failure.
func deliverUpdates(batch []*updateCall, resp *storepb.UpdateMachinesResponse, err error) {
	results := resp.GetResults()
	if err == nil && len(results) != len(batch) {
		err = fmt.Errorf("store plugin answered %d results for %d machine updates: %w", len(results), len(batch), ErrUnavailable)
	}
	if err != nil {
		err = fromStatus(err)
		for _, c := range batch {
			c.done <- err
		}
		return
	}
	for i, c := range batch {
		c.done <- itemError(results[i])
	}
}

// one is the unary UpdateMachine.
func (u *updater) one(ctx context.Context, item *storepb.UpdateMachineRequest) error {
	_, err := u.client.UpdateMachine(ctx, item)
	return fromStatus(err)
}

// ctxError is what a unary call answers when its ctx ended: a status of
// the context's error, as gRPC makes it, turned into a store error.
func ctxError(ctx context.Context) error {
	return fromStatus(status.FromContextError(ctx.Err()).Err())
}

// machineKey names one machine of one run.
type machineKey struct{ run, machine string }

// inOrderByKey runs apply(i) for every i below n: the items of one key one
// after another, in their order, and different keys side by side, at most
// limit at once. It returns once every item has run.
func inOrderByKey(n, limit int, key func(i int) machineKey, apply func(i int)) {
	if n == 1 {
		apply(0)
		return
	}
	// next[i] is the item of i's key that follows i, -1 for none; heads
	// are each key's first item.
	next := make([]int, n)
	last := make(map[machineKey]int, n)
	var heads []int
	for i := range n {
		next[i] = -1
		k := key(i)
		if j, ok := last[k]; ok {
			next[j] = i
		} else {
			heads = append(heads, i)
		}
		last[k] = i
	}
	chain := func(h int) {
		for i := h; i >= 0; i = next[i] {
			apply(i)
		}
	}
	if len(heads) == 1 {
		chain(heads[0])
		return
	}
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, h := range heads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			chain(h)
		})
	}
	wg.Wait()
}

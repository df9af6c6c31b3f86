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

// A combiner is a GRPCClient's queue of one kind of small unary call that
// the plugin also takes in batches: UpdateMachine (updates.go), RecordFire
// and FireRun (fires.go), GetRun and UpdateRun (runs.go). A call that
// finds room in flight (nothing, for most) goes at once as the unary
// call, from its caller's goroutine and in its caller's ctx: a lone call
// costs exactly what it did. The calls that arrive while the room is
// taken wait and go together in the next batched call, and each caller
// waits for its own result; under load the batches grow by themselves,
// without a timer. gRPC's cost is per
// call (a stream, its headers, a goroutine and a few KiB of garbage on
// each end), so a burst of small calls costs a few calls' worth.
//
// The batches are unary calls, not messages on a stream: they carry few
// bytes, and a unary call has no session to open, watch and reopen when
// the plugin restarts. Queued calls are sent by a goroutine that lives
// while the queue has work, not by one of their callers, because a caller
// must be free to leave when its ctx ends while the batch carrying its
// item is still in flight.
type combiner[I proto.Message, R any] struct {
	// one is the unary call of one item, its error through fromStatus.
	one func(ctx context.Context, item I) (R, error)
	// many is the batched call of items: each item's outcome in order, or
	// the call's own error as gRPC returned it (so that UNIMPLEMENTED, a
	// plugin built before the batched call, can be told).
	many func(ctx context.Context, items []I) ([]outcome[R], error)
	// key orders items: those of one key are applied in their order.
	key  func(item I) machineKey
	what string // what the items are, for errors: "machine updates"
	// parallel is how many calls (lone or batched) may be in flight at
	// once; 0 is 1. Above 1, a key's items may go in batches side by
	// side, so their order is kept only within a batch: it is for calls
	// whose order does not matter, and whose latency does.
	parallel int

	mu    sync.Mutex
	queue []*queuedCall[I, R]
	// inflight counts the lone calls and the sender goroutines in flight;
	// while it is below parallel the queue is empty, or a sender just
	// started is about to take it.
	inflight int
	// unary is set once the plugin answered the batched call with
	// UNIMPLEMENTED: from then on every call goes alone.
	unary   bool
	onQueue func(queued int) // tests: called with the queue length after each call joins it
}

// outcome is one item's result.
type outcome[R any] struct {
	res R
	err error
}

// queuedCall is one queued call.
type queuedCall[I proto.Message, R any] struct {
	ctx  context.Context
	item I
	size int             // the item's encoded size
	done chan outcome[R] // buffered: the sender never blocks on it
	key  machineKey
	// abandoned is set when the caller stopped waiting: the sender drops
	// the call if it has not sent it yet. batch is the batch carrying the
	// call once it is sent, nil when it goes alone. Both are guarded by
	// combiner.mu.
	abandoned bool
	batch     *sharedBatch
}

// sharedBatch is the batched call of more than one queued call. Its
// context has the latest of their callers' deadlines (none when one has
// none) and ends when every one of them has stopped waiting, as a unary
// call's ends with its caller's.
type sharedBatch struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiting int // guarded by combiner.mu
}

// call sends item alone when there is room in flight, else queues it,
// and waits for its result or the end of ctx.
func (c *combiner[I, R]) call(ctx context.Context, item I) (R, error) {
	c.mu.Lock()
	if c.unary {
		c.mu.Unlock()
		return c.one(ctx, item)
	}
	if c.inflight < c.limit() {
		c.inflight++
		c.mu.Unlock()
		res, err := c.one(ctx, item)
		c.mu.Lock()
		if len(c.queue) > 0 {
			go c.send() // in this call's place
		} else {
			c.inflight--
		}
		c.mu.Unlock()
		return res, err
	}
	if ctx.Err() != nil {
		c.mu.Unlock()
		var zero R
		return zero, ctxError(ctx)
	}
	q := c.enqueue(ctx, item)
	c.mu.Unlock()
	o := c.wait(ctx, q)
	return o.res, o.err
}

// callAll queues items together, in their order, and waits for each
// one's result: a batch the caller made goes in as few batched calls as
// the batches' bounds allow, behind whatever is queued.
func (c *combiner[I, R]) callAll(ctx context.Context, items []I) []outcome[R] {
	c.mu.Lock()
	if c.unary {
		c.mu.Unlock()
		return sideBySide(len(items),
			func(i int) machineKey { return c.key(items[i]) },
			func(i int) (o outcome[R]) {
				o.res, o.err = c.one(ctx, items[i])
				return o
			})
	}
	outs := make([]outcome[R], len(items))
	if ctx.Err() != nil {
		c.mu.Unlock()
		for i := range outs {
			outs[i].err = ctxError(ctx)
		}
		return outs
	}
	calls := make([]*queuedCall[I, R], len(items))
	for i, item := range items {
		calls[i] = c.enqueue(ctx, item)
	}
	if c.inflight < c.limit() {
		c.inflight++
		go c.send()
	}
	c.mu.Unlock()
	for i, q := range calls {
		outs[i] = c.wait(ctx, q)
	}
	return outs
}

// limit is how many calls may be in flight at once.
func (c *combiner[I, R]) limit() int { return max(c.parallel, 1) }

// enqueue adds a call for item to the queue; c.mu is held.
func (c *combiner[I, R]) enqueue(ctx context.Context, item I) *queuedCall[I, R] {
	q := &queuedCall[I, R]{ctx: ctx, item: item, size: proto.Size(item), done: make(chan outcome[R], 1),
		key: c.key(item)}
	c.queue = append(c.queue, q)
	if c.onQueue != nil {
		c.onQueue(len(c.queue))
	}
	return q
}

// wait waits for a queued call's result or the end of ctx, when it gives
// the call up.
func (c *combiner[I, R]) wait(ctx context.Context, q *queuedCall[I, R]) outcome[R] {
	select {
	case o := <-q.done:
		return o
	case <-ctx.Done():
	}
	c.mu.Lock()
	q.abandoned = true
	if b := q.batch; b != nil {
		if b.waiting--; b.waiting == 0 {
			b.cancel()
		}
	}
	c.mu.Unlock()
	select {
	case o := <-q.done: // the answer came as the caller gave up
		return o
	default:
		return outcome[R]{err: ctxError(ctx)}
	}
}

// send sends the queue's batches, one at a time, until it is empty.
func (c *combiner[I, R]) send() {
	for {
		batch, b := c.take()
		switch {
		case len(batch) == 0:
			return
		case b == nil:
			// One call: the unary call, in its caller's ctx.
			var o outcome[R]
			o.res, o.err = c.one(batch[0].ctx, batch[0].item)
			batch[0].done <- o
		default:
			c.sendBatch(b.ctx, batch)
			b.cancel()
		}
	}
}

// take removes the next batch from the queue, with the shared call
// carrying it when it has more than one call; nothing, and the sender
// stops, when nothing is left to send.
func (c *combiner[I, R]) take() ([]*queuedCall[I, R], *sharedBatch) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var batch []*queuedCall[I, R]
	var deadline time.Time
	bounded := true
	size, n := 0, 0
	for _, q := range c.queue {
		if q.abandoned {
			n++
			continue
		}
		if len(batch) > 0 && (len(batch) >= maxBatchItems || size+q.size > maxBatchBytes) {
			break
		}
		batch = append(batch, q)
		size += q.size
		n++
		if d, ok := q.ctx.Deadline(); !ok {
			bounded = false
		} else if d.After(deadline) {
			deadline = d
		}
	}
	clear(c.queue[:n])
	if n == len(c.queue) {
		c.queue = c.queue[:0]
	} else {
		c.queue = c.queue[n:]
	}
	if len(batch) == 0 {
		c.inflight-- // the sender stops
	}
	if len(batch) <= 1 {
		return batch, nil
	}
	b := &sharedBatch{waiting: len(batch)}
	if bounded {
		b.ctx, b.cancel = context.WithDeadline(context.Background(), deadline)
	} else {
		b.ctx, b.cancel = context.WithCancel(context.Background())
	}
	for _, q := range batch {
		q.batch = b
	}
	return batch, b
}

// sendBatch sends one batch and hands each caller its result. A plugin
// built before the batched call refuses it having changed nothing, so the
// batch's items are sent again one by one.
func (c *combiner[I, R]) sendBatch(ctx context.Context, batch []*queuedCall[I, R]) {
	c.mu.Lock()
	unary := c.unary
	c.mu.Unlock()
	if !unary {
		items := make([]I, len(batch))
		for i, q := range batch {
			items[i] = q.item
		}
		outs, err := c.many(ctx, items)
		if status.Code(err) != codes.Unimplemented {
			if err == nil && len(outs) != len(batch) {
				err = fmt.Errorf("store plugin answered %d results for %d %s: %w", len(outs), len(batch), c.what, ErrUnavailable)
			}
			for i, q := range batch {
				if err != nil {
					q.done <- outcome[R]{err: fromStatus(err)}
				} else {
					q.done <- outs[i]
				}
			}
			return
		}
		c.mu.Lock()
		c.unary = true
		c.mu.Unlock()
	}
	// Each item in its own caller's context, as the unary call; before
	// the next batch, so that a key's items keep their order.
	inOrderByKey(len(batch), maxConcurrentUpdates, func(i int) machineKey { return batch[i].key }, func(i int) {
		q := batch[i]
		c.mu.Lock()
		gone := q.abandoned
		c.mu.Unlock()
		if !gone {
			var o outcome[R]
			o.res, o.err = c.one(q.ctx, q.item)
			q.done <- o
		}
	})
}

// errOutcomes are the outcomes of a batch whose items answer only an
// error each.
func errOutcomes(results []*storepb.ItemResult) []outcome[struct{}] {
	outs := make([]outcome[struct{}], len(results))
	for i, r := range results {
		outs[i].err = itemError(r)
	}
	return outs
}

// ctxError is what a unary call answers when its ctx ended: a status of
// the context's error, as gRPC makes it, turned into a store error.
func ctxError(ctx context.Context) error {
	return fromStatus(status.FromContextError(ctx.Err()).Err())
}

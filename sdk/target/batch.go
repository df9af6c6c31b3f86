package target

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/target/internal/targetpb"
)

// A batcher sends the client's Resolve and Dispatch calls through the
// plugin's Calls stream. One batch is handed over at a time: the calls
// that arrive meanwhile wait and go together in the next, so under load
// the batches grow by themselves, without a timer, and a lone call waits
// for nothing. Handing over ends when the plugin's headers come back,
// sent as soon as it has the batch, so a slow call (an ssh dispatch)
// holds nothing back: each call is answered on the stream when it ends.
//
// A caller whose ctx ends stops waiting at once. Its call, once sent,
// still runs in the plugin until the deadline it carried, unless every
// call of its batch was left, which cancels the stream: a cancelled ctx
// without a deadline reaches the plugin only then (the core's dispatch
// calls all carry a deadline).
type batcher struct {
	client targetpb.TargetClient

	mu      sync.Mutex
	queue   []*batchedCall
	sending bool
	// unary is set once the plugin answered Calls with UNIMPLEMENTED (a
	// plugin built before it): from then on every call goes alone.
	unary atomic.Bool
	// onQueue, for tests, is called with the queue's length each time a
	// call joins it.
	onQueue func(queued int)
}

// errUseUnary tells a caller to make its call alone.
var errUseUnary = errors.New("target plugin: no batched calls")

// batchedCall is one call in the queue or in a sent batch.
type batchedCall struct {
	msg  *targetpb.Call
	done chan callResult // buffered: the receiver never blocks on it
	// batch is the batch carrying the call once sent; abandoned is set
	// when its caller stopped waiting. Both are guarded by batcher.mu.
	batch     *sentBatch
	abandoned bool
	answered  bool // only the batch's receiver touches it
}

type callResult struct {
	out *targetpb.CallOutcome
	err error
}

// sentBatch is a batch on its stream.
type sentBatch struct {
	calls  []*batchedCall
	live   int // calls whose caller still waits; guarded by batcher.mu
	cancel context.CancelFunc
}

// do makes one call through a batch and returns its outcome, converted
// as a unary call's error would be; errUseUnary when the plugin has no
// Calls.
func (b *batcher) do(ctx context.Context, msg *targetpb.Call) (*targetpb.CallOutcome, error) {
	if b.unary.Load() {
		return nil, errUseUnary
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		msg.DeadlineUnixNano = d.UnixNano()
	}
	c := &batchedCall{msg: msg, done: make(chan callResult, 1)}
	b.mu.Lock()
	b.queue = append(b.queue, c)
	if b.onQueue != nil {
		b.onQueue(len(b.queue))
	}
	if !b.sending {
		b.sending = true
		go b.send()
	}
	b.mu.Unlock()
	select {
	case r := <-c.done:
		if r.err != nil {
			return nil, r.err
		}
		if code := codes.Code(r.out.GetCode()); code != codes.OK {
			return nil, fromStatus(status.Error(code, r.out.GetError()))
		}
		return r.out, nil
	case <-ctx.Done():
		b.mu.Lock()
		c.abandoned = true
		if sb := c.batch; sb != nil {
			sb.live--
			if sb.live == 0 {
				sb.cancel()
			}
		}
		b.mu.Unlock()
		return nil, ctx.Err()
	}
}

// send hands the queue over, a batch at a time, until it is empty.
func (b *batcher) send() {
	for {
		b.mu.Lock()
		var calls []*batchedCall
		for _, c := range b.queue {
			if !c.abandoned {
				calls = append(calls, c)
			}
		}
		clear(b.queue)
		b.queue = b.queue[:0]
		if len(calls) == 0 {
			b.sending = false
			b.mu.Unlock()
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		sb := &sentBatch{calls: calls, live: len(calls), cancel: cancel}
		for _, c := range calls {
			c.batch = sb
		}
		b.mu.Unlock()

		req := &targetpb.CallBatch{Calls: make([]*targetpb.Call, len(calls))}
		for i, c := range calls {
			req.Calls[i] = c.msg
		}
		stream, err := b.client.Calls(ctx, req)
		if err != nil {
			b.finish(sb, b.streamError(err))
			continue
		}
		// The headers (or the call's end) say the plugin has the batch;
		// their error, if any, comes again from Recv.
		_, _ = stream.Header()
		go b.receive(stream, sb)
	}
}

// receive hands each outcome of a batch to its caller, and the stream's
// error to those left unanswered when it ends.
func (b *batcher) receive(stream targetpb.Target_CallsClient, sb *sentBatch) {
	for {
		out, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = status.Error(codes.Internal, "target plugin: the batch ended without an answer to this call")
			}
			b.finish(sb, b.streamError(err))
			return
		}
		i := int(out.GetIndex())
		if i < 0 || i >= len(sb.calls) || sb.calls[i].answered {
			continue // not ours to trust; its call gets the end's error
		}
		sb.calls[i].answered = true
		sb.calls[i].done <- callResult{out: out}
	}
}

// streamError is the error a stream's end gives its unanswered calls.
func (b *batcher) streamError(err error) error {
	if status.Code(err) == codes.Unimplemented {
		b.unary.Store(true)
		return errUseUnary
	}
	return fromStatus(err)
}

// finish gives err to a batch's unanswered calls and lets its stream go.
func (b *batcher) finish(sb *sentBatch, err error) {
	for _, c := range sb.calls {
		if !c.answered {
			c.answered = true
			c.done <- callResult{err: err}
		}
	}
	sb.cancel()
}

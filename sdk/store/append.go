package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// Output is the store's hot path: every running machine sends a chunk
// per line or per buffer-full, and one unary call per chunk would cost
// each a round trip and the store one commit each. So the client queues
// chunks and a batcher sends what has accumulated as one AppendBatch on a
// long-lived stream; the plugin answers each batch with one result per
// chunk, and each caller waits for its own.
//
// One batch is in flight at a time: while the plugin commits a batch, the
// next one accumulates, so the batch size grows with the load by itself
// (group commit) and nobody waits on a timer. Bounds keep one message
// well under gRPC's default 4 MB.
const (
	maxBatchItems = 512
	maxBatchBytes = 1 << 20
)

// errClientClosed is what AppendOutput returns after Close.
var errClientClosed = fmt.Errorf("store client closed: %w", ErrUnavailable)

// appender is a GRPCClient's output queue and its stream.
type appender struct {
	client storepb.StoreClient

	mu      sync.Mutex
	queue   []*appendCall
	nextID  uint64
	sess    *session // nil: no stream; the next append opens one
	closed  bool
	onQueue func(queued int) // tests: called with the queue length after each append
}

// appendCall is one waiting AppendOutput.
type appendCall struct {
	item *storepb.AppendItem
	done chan appendResult // buffered: the batcher never blocks on it
	// abandoned is set (under appender.mu) when the caller stopped
	// waiting before the call was sent: the batcher drops it.
	abandoned bool
}

type appendResult struct {
	next int64
	err  error
}

// session is one stream: a sender goroutine (the batcher) and a receiver.
type session struct {
	wake   chan struct{} // cap 1: there is work in the queue
	sem    chan struct{} // cap 1: held while a batch is in flight
	sent   chan []*appendCall
	cancel context.CancelFunc
	done   chan struct{} // closed when the session ended
	dead   bool          // guarded by appender.mu
	err    error         // why it ended; guarded by appender.mu
	// sending is held by the sender from taking a batch until its Send
	// has returned, which encodes the batch: small Data are copied by
	// then, and gRPC reads larger ones where they lie until it has
	// written them (see batchOut). A batch's results are delivered only
	// after the Send. The plugin's answer means gRPC is done with the
	// Data, so a caller may reuse them once its call returns; a failure
	// the plugin did not answer does not (see Chunk.Data).
	sending sync.Mutex
}

func newAppender(client storepb.StoreClient) *appender {
	return &appender{client: client}
}

func (a *appender) append(ctx context.Context, item *storepb.AppendItem) (int64, error) {
	r := a.appendAll(ctx, []*storepb.AppendItem{item})[0]
	return r.Next, r.Err
}

// appendAll queues items together, in order, and waits for every result.
func (a *appender) appendAll(ctx context.Context, items []*storepb.AppendItem) []AppendResult {
	out := make([]AppendResult, len(items))
	if err := ctx.Err(); err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	calls := make([]*appendCall, len(items))
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		for i := range out {
			out[i].Err = errClientClosed
		}
		return out
	}
	for i, item := range items {
		a.nextID++
		item.Id = a.nextID
		calls[i] = &appendCall{item: item, done: make(chan appendResult, 1)}
	}
	a.queue = append(a.queue, calls...)
	if a.sess == nil {
		a.start()
	}
	select {
	case a.sess.wake <- struct{}{}:
	default:
	}
	if a.onQueue != nil {
		a.onQueue(len(a.queue))
	}
	a.mu.Unlock()

	for i, call := range calls {
		select {
		case r := <-call.done:
			out[i] = AppendResult{Next: r.next, Err: r.err}
		case <-ctx.Done():
			a.mu.Lock()
			for _, c := range calls[i:] {
				c.abandoned = true
			}
			a.mu.Unlock()
			for j := i; j < len(out); j++ {
				out[j].Err = ctx.Err()
			}
			return out
		}
	}
	return out
}

// start opens a session; a.mu is held.
func (a *appender) start() {
	ctx, cancel := context.WithCancel(context.Background())
	s := &session{
		wake:   make(chan struct{}, 1),
		sem:    make(chan struct{}, 1),
		sent:   make(chan []*appendCall, 1),
		cancel: cancel,
		done:   make(chan struct{}),
	}
	a.sess = s
	go a.run(ctx, s)
}

// run opens the stream and sends batches until the stream fails or the
// client closes.
func (a *appender) run(ctx context.Context, s *session) {
	stream, err := a.client.AppendOutput(ctx)
	if err != nil {
		a.end(s, err)
		return
	}
	go a.receive(s, stream)
	for {
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
		for {
			select {
			case s.sem <- struct{}{}:
			case <-s.done:
				return
			}
			s.sending.Lock()
			batch := a.take(s)
			if batch == nil {
				s.sending.Unlock()
				<-s.sem
				break
			}
			msg := &batchOut{}
			msg.Items = make([]*storepb.AppendItem, len(batch))
			for i, c := range batch {
				msg.Items[i] = c.item
			}
			err := stream.SendMsg(msg)
			s.sending.Unlock()
			if err != nil {
				// io.EOF means the stream ended and Recv has the reason;
				// any other error is the reason.
				if !errors.Is(err, io.EOF) {
					a.setErr(s, err)
				}
				s.cancel()
				return
			}
		}
	}
}

// take removes the next batch from the queue and hands it to the
// receiver; nil when there is nothing to send or the session is over.
func (a *appender) take(s *session) []*appendCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.dead {
		return nil
	}
	var batch []*appendCall
	size, n := 0, 0
	for _, c := range a.queue {
		if c.abandoned {
			n++
			continue
		}
		data := len(c.item.GetChunk().GetData())
		if len(batch) > 0 && (len(batch) >= maxBatchItems || size+data > maxBatchBytes) {
			break
		}
		batch = append(batch, c)
		size += data
		n++
	}
	a.queue = a.queue[n:]
	if len(batch) == 0 {
		return nil
	}
	s.sent <- batch // never blocks: the sender holds sem, so sent is empty
	return batch
}

// receive delivers each batch's results to its callers.
func (a *appender) receive(s *session, stream storepb.Store_AppendOutputClient) {
	for {
		res, err := stream.Recv()
		if err != nil {
			a.end(s, err)
			return
		}
		batch := <-s.sent
		s.waitSent()
		byID := make(map[uint64]*storepb.AppendResult, len(res.GetResults()))
		for _, r := range res.GetResults() {
			byID[r.GetId()] = r
		}
		for _, c := range batch {
			r, ok := byID[c.item.GetId()]
			if !ok {
				c.done <- appendResult{err: fmt.Errorf("store plugin sent no result for an output chunk: %w", ErrUnavailable)}
				continue
			}
			c.done <- appendResult{next: r.GetNext(), err: resultError(r)}
		}
		<-s.sem
	}
}

// waitSent returns once the sender is done with the batch in flight:
// the batch's results may not be delivered before (see sending). The
// sender holds sem for that batch, so it is not taking another.
func (s *session) waitSent() {
	s.sending.Lock()
	s.sending.Unlock() //nolint:staticcheck // an empty critical section: only the wait counts
}

func (a *appender) setErr(s *session, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// end finishes a session: the batch in flight fails with the stream's
// error; what is still queued goes on a new stream (which fails in turn
// if the plugin is gone).
func (a *appender) end(s *session, err error) {
	a.mu.Lock()
	if s.dead {
		a.mu.Unlock()
		return
	}
	s.dead = true
	if s.err != nil {
		err = s.err
	}
	var failed []*appendCall
	inFlight := false
	select {
	case failed = <-s.sent:
		inFlight = true
	default:
	}
	if a.sess == s {
		a.sess = nil
	}
	close(s.done)
	s.cancel()
	if a.closed {
		failed = append(failed, a.queue...)
		a.queue = nil
		err = errClientClosed
	} else if len(a.queue) > 0 {
		if len(failed) == 0 {
			// The stream could not even be opened: fail the queue rather
			// than reopen in a loop.
			failed, a.queue = a.queue, nil
		} else {
			a.start()
			a.sess.wake <- struct{}{}
		}
	}
	a.mu.Unlock()
	if inFlight {
		// The stream is cancelled, so a Send still marshalling the
		// batch ends soon.
		s.waitSent()
	}
	err = fromStatus(err)
	if status.Code(err) == codes.Canceled && !errors.Is(err, ErrUnavailable) {
		// The stream's own context, cancelled by close or a failed send.
		err = fmt.Errorf("store output stream ended: %w", ErrUnavailable)
	}
	for _, c := range failed {
		c.done <- appendResult{err: err}
	}
}

// close ends the stream; waiting and later calls fail with
// errClientClosed.
func (a *appender) close() {
	a.mu.Lock()
	a.closed = true
	s := a.sess
	a.mu.Unlock()
	if s != nil {
		a.end(s, errClientClosed)
	}
}

package store

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/saltpeter/saltpeter/sdk/store/internal/storepb"
)

// diesMidSend is a store client whose output stream fails (the plugin
// died) while its first Send is still marshalling the batch: Send waits
// for the stream's cancellation, as a Send blocked on flow control does,
// then reads the chunks' data.
type diesMidSend struct {
	storepb.StoreClient // nil: only AppendOutput is called

	entered  chan struct{} // closed when Send starts
	returned atomic.Bool   // set by the test once its call returned
	// readLate is set when Send read the data after the call returned.
	readLate atomic.Bool
	sum      atomic.Int64
}

func (d *diesMidSend) AppendOutput(ctx context.Context, _ ...grpc.CallOption) (storepb.Store_AppendOutputClient, error) {
	return &diesMidSendStream{d: d, ctx: ctx}, nil
}

type diesMidSendStream struct {
	grpc.ClientStream // nil: only Send and Recv are called
	d                 *diesMidSend
	ctx               context.Context
	once              sync.Once
}

func (s *diesMidSendStream) Send(m *storepb.AppendBatch) error {
	s.once.Do(func() { close(s.d.entered) })
	<-s.ctx.Done()
	var sum int64
	for _, it := range m.GetItems() {
		for _, b := range it.GetChunk().GetData() {
			sum += int64(b)
		}
	}
	s.d.sum.Add(sum)
	if s.d.returned.Load() {
		s.d.readLate.Store(true)
	}
	return io.EOF
}

// SendMsg is what the appender calls, with a batchOut.
func (s *diesMidSendStream) SendMsg(m any) error { return s.Send(&m.(*batchOut).AppendBatch) }

func (s *diesMidSendStream) Recv() (*storepb.AppendResults, error) {
	<-s.d.entered
	return nil, status.Error(codes.Unavailable, "the plugin died")
}

// TestAppendReturnsAfterSendIsDone: when the stream fails while a batch
// is being sent, its callers get their error only once the Send is done
// with the chunks' data, which, this small, gRPC has copied by then
// (batchOut), so that they may reuse it as soon as they return. The caller overwrites its data on return, so under the
// race detector a result delivered too early is a reported race; without
// it, one shows when Send reads after the return.
func TestAppendReturnsAfterSendIsDone(t *testing.T) {
	d := &diesMidSend{entered: make(chan struct{})}
	a := newAppender(d)
	t.Cleanup(a.close)
	data := []byte("output")
	done := make(chan error, 1)
	go func() {
		_, err := a.append(context.Background(), &storepb.AppendItem{RunId: "r", Machine: "m",
			Chunk: pbChunk(Chunk{Seq: 0, Stream: "stdout", Data: data})})
		d.returned.Store(true)
		for i := range data {
			data[i] = 0 // the caller reuses its buffer
		}
		done <- err
	}()
	if err := <-done; !errors.Is(err, ErrUnavailable) {
		t.Errorf("append on a stream that died: %v, want ErrUnavailable", err)
	}
	if d.readLate.Load() {
		t.Error("the call returned while Send was still reading its data")
	}
	var want int64
	for _, b := range []byte("output") {
		want += int64(b)
	}
	if got := d.sum.Load(); got != want {
		t.Errorf("Send read data summing to %d, want %d: the caller had reused it", got, want)
	}
}

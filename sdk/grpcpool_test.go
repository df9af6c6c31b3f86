package sdk

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/saltpeter/saltpeter/sdk/internal/grpcbuf"
)

// The proto codec's buffers come from gRPC's default pool: the options
// must make it ours.
func TestBufferPoolIsDefault(t *testing.T) {
	GRPCDialOptions()
	if mem.DefaultBufferPool() != grpcbuf.Pool {
		t.Fatalf("gRPC's default pool is %T, not the SDK's", mem.DefaultBufferPool())
	}
}

// A stream's window holds a few batches of output: a sender may put
// three MiB on a stream whose receiver has not read yet, where gRPC's
// default window (64 KiB, grown only as pings measure the link) would
// hold the sender back.
func TestStreamWindow(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "grpc.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	release := make(chan struct{})
	received := make(chan int, 1)
	srv := grpc.NewServer(append(grpcServerOptions(),
		grpc.UnknownServiceHandler(func(_ any, s grpc.ServerStream) error {
			<-release // nothing is read until the sender is done
			n := 0
			for {
				var m wrapperspb.BytesValue
				if err := s.RecvMsg(&m); err != nil {
					received <- n
					return nil
				}
				n += len(m.GetValue())
			}
		}))...)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	// A failed send leaves the handler waiting: it is let go first.
	let := sync.OnceFunc(func() { close(release) })
	t.Cleanup(let)

	cc, err := grpc.NewClient("unix://"+sock,
		append(GRPCDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { cc.Close() })
	// The deadline bounds a failure: a sender held back by the window
	// blocks in SendMsg until it.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true}, "/test.Window/Send")
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	const chunk, total = 64 << 10, 3 << 20
	for sent := 0; sent < total; sent += chunk {
		if err := s.SendMsg(wrapperspb.Bytes(make([]byte, chunk))); err != nil {
			t.Fatalf("send with %d bytes on the unread stream: %v", sent, err)
		}
	}
	let()
	if err := s.CloseSend(); err != nil {
		t.Fatalf("close send: %v", err)
	}
	if err := s.RecvMsg(new(wrapperspb.BytesValue)); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	if n := <-received; n != total {
		t.Fatalf("received %d bytes, want %d", n, total)
	}
}

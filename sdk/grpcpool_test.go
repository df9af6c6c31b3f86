package sdk

import (
	"testing"

	"google.golang.org/grpc/mem"

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

package memory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

func TestConformance(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestConformanceOverGRPC runs the suite through the store plugin adapter
// (sdk/store), so that the adapter is checked against a real store: the
// sdk itself may not import the core.
func TestConformanceOverGRPC(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		s := memory.New()
		t.Cleanup(func() { _ = s.Close() })
		return store.TestGRPCConn(t, s)
	})
}

func TestClosedIsUnavailable(t *testing.T) {
	s := memory.New()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetRun(ctx, "x"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetRun after Close = %v, want ErrUnavailable", err)
	}
}

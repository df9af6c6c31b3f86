package retention

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type recorder struct {
	mu    sync.Mutex
	calls []time.Time
	seen  chan struct{}
}

func (r *recorder) PruneRuns(_ context.Context, before time.Time) (int, error) {
	r.mu.Lock()
	r.calls = append(r.calls, before)
	r.mu.Unlock()
	r.seen <- struct{}{}
	return 1, nil
}

func TestRunPrunesAtOnceAndThenOnItsInterval(t *testing.T) {
	now := time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC)
	r := &recorder{seen: make(chan struct{}, 10)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Run(ctx, hclog.NewNullLogger(), r, 30*24*time.Hour, time.Millisecond, func() time.Time { return now })
		close(done)
	}()
	for range 2 {
		select {
		case <-r.seen:
		case <-time.After(10 * time.Second):
			t.Fatal("PruneRuns was not called")
		}
	}
	cancel()
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	want := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if !r.calls[0].Equal(want) {
		t.Fatalf("pruned before %v, want %v (30 days earlier)", r.calls[0], want)
	}
}

func TestNoRetentionPrunesNothing(t *testing.T) {
	r := &recorder{seen: make(chan struct{}, 1)}
	Run(context.Background(), hclog.NewNullLogger(), r, 0, time.Millisecond, nil) // returns at once
	if len(r.calls) != 0 {
		t.Fatalf("a zero retention pruned: %v", r.calls)
	}
}

func TestInterval(t *testing.T) {
	for _, c := range []struct{ keep, want time.Duration }{
		{30 * 24 * time.Hour, time.Hour},
		{5 * time.Hour, 30 * time.Minute},
		{time.Minute, time.Minute},
	} {
		if got := Interval(c.keep); got != c.want {
			t.Errorf("Interval(%s) = %s, want %s", c.keep, got, c.want)
		}
	}
}

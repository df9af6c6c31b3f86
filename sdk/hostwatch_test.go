package sdk

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/stats"
)

func TestHostWatchExitsWhenLastConnectionCloses(t *testing.T) {
	w := newHostWatch(hclog.NewNullLogger())
	var exits []int
	w.exit = func(code int) { exits = append(exits, code) }
	ctx := context.Background()

	w.HandleConn(ctx, &stats.ConnBegin{})
	w.HandleConn(ctx, &stats.ConnBegin{})
	w.HandleConn(ctx, &stats.ConnEnd{})
	if len(exits) != 0 {
		t.Fatalf("exited with a connection still open")
	}
	w.HandleConn(ctx, &stats.ConnEnd{})
	if len(exits) != 1 || exits[0] != 0 {
		t.Fatalf("exits = %v, want one exit(0) once the last connection closed", exits)
	}
}

func TestHostWatchExitsWhenParentChanges(t *testing.T) {
	w := newHostWatch(hclog.NewNullLogger())
	exited := make(chan int, 1)
	w.exit = func(code int) { exited <- code }
	// A parent that is not ours stands for a parent that died.
	go w.watchParent(os.Getppid()+1, time.Millisecond)
	select {
	case code := <-exited:
		if code != 0 {
			t.Errorf("exit code %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit although the parent changed")
	}

	w2 := newHostWatch(hclog.NewNullLogger())
	w2.exit = func(code int) { exited <- code }
	stop := make(chan struct{})
	go func() {
		// The real parent: the watch must not fire. Its goroutine lives
		// on until the test binary exits.
		w2.watchParent(os.Getppid(), time.Millisecond)
		close(stop)
	}()
	select {
	case <-exited:
		t.Fatal("exited although the parent is alive")
	case <-stop:
		t.Fatal("watchParent returned although the parent is alive")
	case <-time.After(50 * time.Millisecond):
	}
}

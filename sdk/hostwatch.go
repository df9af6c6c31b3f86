package sdk

import (
	"context"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/stats"
)

// hostWatch ends a served plugin once the core that started it is gone, so
// that a core killed without ceremony leaves no plugin behind. The core
// may also have the kernel kill its plugins (Pdeathsig); this is the
// plugin's own half of that bargain, for cores that cannot.
//
// It watches two things: the parent process (a dead parent's children are
// adopted, so the parent pid changes) and the core's gRPC connections (a
// dead core's sockets close). As a grpc stats.Handler it counts live
// connections; when the last one closes the plugin exits. That relies on
// the core holding its connection open while it runs: go-plugin's client
// keeps streams open on it, and the core's host turns gRPC's idle timeout
// off.
type hostWatch struct {
	logger hclog.Logger
	exit   func(code int)

	mu    sync.Mutex
	conns int
}

func newHostWatch(logger hclog.Logger) *hostWatch {
	return &hostWatch{logger: logger, exit: os.Exit}
}

// watchParent exits when the parent pid is no longer parent. It never
// returns otherwise.
func (w *hostWatch) watchParent(parent int, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if now := os.Getppid(); now != parent {
			w.logger.Info("the core that started this plugin is gone, exiting", "parent_pid", parent, "new_parent_pid", now)
			w.exit(0)
			return
		}
		<-t.C
	}
}

func (w *hostWatch) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }

func (w *hostWatch) HandleRPC(context.Context, stats.RPCStats) {}

func (w *hostWatch) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (w *hostWatch) HandleConn(_ context.Context, s stats.ConnStats) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch s.(type) {
	case *stats.ConnBegin:
		w.conns++
	case *stats.ConnEnd:
		w.conns--
		if w.conns == 0 {
			w.logger.Debug("the core's connection closed, exiting")
			w.exit(0)
		}
	}
}

var _ stats.Handler = (*hostWatch)(nil)

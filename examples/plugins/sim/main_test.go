package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/launch"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/target"
)

// The suite checks what a target does to the wrapper it starts (its
// environment, its descriptors, its detach line, its end when a dispatch
// is cancelled), so the stand-in load generator behind the plugin starts
// the suite's stand-in wrapper for real, with the SDK's launch package,
// as the machine at the far end of a remote target would. What the suite
// then sees went through the plugin and the dispatch protocol both ways.
func fixture(t *testing.T) sdktest.TargetFixture {
	t.Helper()
	sock := launchingLoadgen(t)
	return sdktest.TargetFixture{
		Config:    []byte(`{"loadgen": "unix:` + sock + `"}`),
		BadConfig: []byte(`{"loadgen": "unix:` + sock + `", "colour": "blue"}`),
		Args:      []byte(`{"machines": 2}`),
		Machines:  []string{"sim-00001", "sim-00002"},
	}
}

func newSim(*testing.T) target.Target { return &sim{log: hclog.NewNullLogger()} }

// The plugin passes the same suite as the built-in targets, directly and
// over a real gRPC connection.
func TestConformance(t *testing.T) { sdktest.TestTarget(t, newSim, fixture(t)) }

func TestConformanceOverGRPC(t *testing.T) {
	sdktest.TestTarget(t, func(t *testing.T) target.Target { return target.TestGRPCConn(t, newSim(t)) }, fixture(t))
}

// launchingLoadgen serves the dispatch protocol on a unix socket and
// answers each dispatch by starting its wrapper here; a cancel ends the
// start it names.
func launchingLoadgen(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "lg.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serveLaunching(ctx, nc) })
		}
	})
	return sock
}

func serveLaunching(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	var (
		wmu     sync.Mutex
		enc     = json.NewEncoder(nc)
		mu      sync.Mutex
		cancels = map[uint64]context.CancelFunc{}
		wg      sync.WaitGroup
	)
	defer wg.Wait()
	sc := bufio.NewScanner(nc)
	sc.Buffer(nil, maxLine)
	for sc.Scan() {
		var req request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return
		}
		mu.Lock()
		if req.Op == opCancel {
			if c := cancels[req.ID]; c != nil {
				c()
			}
			mu.Unlock()
			continue
		}
		dctx, dcancel := context.WithCancel(ctx)
		cancels[req.ID] = dcancel
		mu.Unlock()
		wg.Go(func() {
			defer dcancel()
			r := reply{ID: req.ID}
			env, err := launch.Environ(req.Env)
			if err == nil {
				var res target.DispatchResult
				res, err = launch.Start(dctx, nil, launch.Command{Path: req.Wrapper, Env: env, Protocol: req.Protocol})
				r.Detail = res.Detail
			}
			if err != nil {
				r.Error = err.Error()
			} else {
				r.OK = true
			}
			wmu.Lock()
			_ = enc.Encode(r)
			wmu.Unlock()
		})
	}
}

package hub_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/saltpeter/saltpeter/core/hub"
	"github.com/saltpeter/saltpeter/sdk/store"
	"github.com/saltpeter/saltpeter/sdk/wire"
)

// idleConns is how many wrappers BenchmarkHubIdleConnections holds.
const idleConns = 2000

// idleHeapProfile names a file for the heap profile taken while every
// wrapper idles; -memprofile is written only after the connections closed.
var idleHeapProfile = flag.String("hub.idleheap", "", "write the heap profile of BenchmarkHubIdleConnections's idle connections to this file")

// BenchmarkHubIdleConnections is the core's memory per idle wrapper
// connection: idleConns wrappers connect over loopback sockets, start,
// heartbeat and then idle. B/conn is the growth of the heap and the
// goroutine stacks in use (runtime.MemStats HeapInuse+StackInuse, after
// two GCs) from the moment every machine is expected (its store row and
// hub state exist, connected or not) to the moment every wrapper idles,
// divided by the connections; goroutines/conn is the same for
// goroutines. Both count the in-process test clients too: each is a
// gorilla client with a 128-byte read buffer, pooled write buffers and no
// goroutine of its own, about 1 KB of the figure.
//
// (core/e2e's BenchmarkIdleConnections measures a whole core process
// against the load generator; this one is the hub alone, fast enough to
// profile: go test -run '^$' -bench HubIdle ./core/hub/ -args
// -hub.idleheap=idle.heap, then go tool pprof -sample_index=inuse_space.)
func BenchmarkHubIdleConnections(b *testing.B) {
	var f idleFigures
	for b.Loop() {
		f = idleConnections(b, idleConns)
	}
	b.ReportMetric(f.perConn, "B/conn")
	b.ReportMetric(f.heapPerConn, "heap-B/conn")
	b.ReportMetric(f.stackPerConn, "stack-B/conn")
	b.ReportMetric(f.goroutinesPerConn, "goroutines/conn")
	b.ReportMetric(f.beatingStackPerConn, "beating-stack-B/conn")
}

// idleFigures are what one round of BenchmarkHubIdleConnections measured,
// per connection: in use (heap and stacks), then each apart; and the
// stacks in use once every connection handled a ping and a heartbeat
// since (beatingStackPerConn), before a collection shrinks what they
// grew: an idle connection's stack in the long run, which a heartbeat
// needing more than 4 KiB would double.
type idleFigures struct {
	perConn, heapPerConn, stackPerConn, goroutinesPerConn, beatingStackPerConn float64
}

// idleConnections runs one round of BenchmarkHubIdleConnections.
func idleConnections(b *testing.B, n int) idleFigures {
	b.Helper()
	b.StopTimer()
	h := newHarness(b, opts{quiet: true, hb: time.Hour})
	run := fmt.Sprintf("idle-%d", time.Now().UnixNano())
	machines := make([]string, n)
	for i := range machines {
		machines[i] = fmt.Sprintf("m%05d", i)
		h.expect(exp{run: run, machine: machines[i]})
	}
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, ws := range conns {
			ws.Close()
		}
	}()
	dialer := &websocket.Dialer{ReadBufferSize: 128, WriteBufferPool: &sync.Pool{}, HandshakeTimeout: wait}
	before := memInUse()
	g0 := runtime.NumGoroutine()
	b.StartTimer()

	for _, m := range machines {
		ws, resp, err := dialer.Dial(h.url, nil)
		if err != nil {
			b.Fatalf("dial %s: %v", m, err)
		}
		resp.Body.Close()
		conns = append(conns, ws)
		idleSend(b, ws, wire.Frame{Type: wire.TypeConnect, JobInstance: run, Machine: m,
			Protocol: wire.ProtocolV2, Token: h.tokens.Bootstrap(run, m), Version: "bench"})
		idleAwait(b, ws, wire.TypeAck, wire.TypeConnect)
		idleSend(b, ws, wire.Frame{Type: wire.TypeStart, JobInstance: run, Machine: m, PID: 1})
		idleAwait(b, ws, wire.TypeAck, wire.TypeStart)
	}
	// Two rounds of heartbeats, each followed by a sync so that the
	// heartbeat is known to be handled (a connection handles its frames
	// in order) when the answer comes.
	for range 2 {
		for i, ws := range conns {
			idleSend(b, ws, wire.Frame{Type: wire.TypeHeartbeat, JobInstance: run, Machine: machines[i]})
			idleSend(b, ws, wire.Frame{Type: wire.TypeSyncRequest, JobInstance: run, Machine: machines[i]})
			idleAwait(b, ws, wire.TypeSyncResponse, "")
		}
	}
	b.StopTimer()
	after := memInUse()
	g1 := runtime.NumGoroutine()
	if *idleHeapProfile != "" {
		writeHeapProfile(b, *idleHeapProfile)
	}
	r, err := h.store.GetRun(context.Background(), run)
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range r.Machines {
		if m.Status != store.StatusRunning {
			b.Fatalf("machine %s is %s, want running", m.Machine, m.Status)
		}
	}
	beating := heartbeatAll(b, conns, run, machines)
	b.StartTimer()
	per := func(d int64) float64 { return float64(d) / float64(n) }
	return idleFigures{perConn: per(after.heap + after.stack - before.heap - before.stack),
		heapPerConn: per(after.heap - before.heap), stackPerConn: per(after.stack - before.stack),
		goroutinesPerConn: per(int64(g1 - g0)), beatingStackPerConn: per(beating - before.stack)}
}

// heartbeatAll has every connection's wrapper send a ping and two
// heartbeats, and returns the stacks in use once every connection's
// reader handled the first heartbeat (it took the second for handling,
// and handles a connection's frames in order). No collection runs: the
// stacks are as the handling grew them.
func heartbeatAll(b *testing.B, conns []*websocket.Conn, run string, machines []string) int64 {
	b.Helper()
	taken := make(chan struct{}, 2*len(conns))
	hub.SetFrameQueued(func() { taken <- struct{}{} })
	defer hub.SetFrameQueued(nil)
	for i, ws := range conns {
		if err := ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(wait)); err != nil {
			b.Fatalf("ping: %v", err)
		}
		for range 2 {
			idleSend(b, ws, wire.Frame{Type: wire.TypeHeartbeat, JobInstance: run, Machine: machines[i]})
		}
	}
	timeout := time.After(wait)
	for range 2 * len(conns) {
		select {
		case <-taken:
		case <-timeout:
			b.Fatalf("the heartbeats were not all handled within %s", wait)
		}
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

type memFigures struct{ heap, stack int64 }

// memInUse is the heap and stack memory in use after garbage is
// collected; two GCs, so that stacks are shrunk and finalizers ran.
func memInUse() memFigures {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{heap: int64(m.HeapInuse), stack: int64(m.StackInuse)}
}

func writeHeapProfile(b *testing.B, path string) {
	b.Helper()
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

func idleSend(b *testing.B, ws *websocket.Conn, f wire.Frame) {
	b.Helper()
	data, err := json.Marshal(f)
	if err != nil {
		b.Fatal(err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, data); err != nil {
		b.Fatalf("send %s: %v", f.Type, err)
	}
}

// idleAwait reads the next frame and fails unless it has the type (and
// the ack type, when one is given).
func idleAwait(b *testing.B, ws *websocket.Conn, typ, ackType string) {
	b.Helper()
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	_, data, err := ws.ReadMessage()
	if err != nil {
		b.Fatalf("await %s %s: %v", typ, ackType, err)
	}
	f, err := wire.Decode(data)
	if err != nil || f.Type != typ || f.AckType != ackType {
		b.Fatalf("await %s %s: got %s (%v)", typ, ackType, data, err)
	}
}

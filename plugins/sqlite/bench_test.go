package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/saltpeter/saltpeter/sdk/store"
)

func BenchmarkAppendOutput(b *testing.B) {
	cases := []struct {
		name  string
		size  int
		sync  string
		batch int
	}{
		{"64KiB/single/normal", 64 << 10, SyncNormal, 1},
		{"64KiB/single/full", 64 << 10, SyncFull, 1},
		{"64KiB/batch16/normal", 64 << 10, SyncNormal, 16},
		{"64KiB/batch16/full", 64 << 10, SyncFull, 16},
		// Lines: where the per-commit cost shows.
		{"256B/single/normal", 256, SyncNormal, 1},
		{"256B/single/full", 256, SyncFull, 1},
		{"256B/batch256/normal", 256, SyncNormal, 256},
		{"256B/batch256/full", 256, SyncFull, 256},
	}
	for _, c := range cases {
		data := make([]byte, c.size)
		for i := range data {
			data[i] = byte(i*7 + i>>9)
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "bench.db"), Synchronous: c.sync})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			if err := s.CreateRun(ctx, store.Run{ID: "r", Job: "j", Machines: []store.Machine{{Machine: "m"}}}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			var seq int64
			batch := make([]Append, 0, c.batch)
			flush := func() {
				if c.batch == 1 {
					return
				}
				res, err := s.AppendBatch(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
				batch = batch[:0]
			}
			for b.Loop() {
				ch := store.Chunk{Seq: seq, Stream: "stdout", Data: data}
				seq++
				if c.batch == 1 {
					if _, err := s.AppendOutput(ctx, "r", "m", ch); err != nil {
						b.Fatal(err)
					}
					continue
				}
				batch = append(batch, Append{RunID: "r", Machine: "m", Chunk: ch})
				if len(batch) == c.batch {
					flush()
				}
			}
			if len(batch) > 0 {
				flush()
			}
		})
	}
}

// benchStore opens a store in a fresh folder for a benchmark.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// cpuTime is the CPU time (user and system) the process has used so far.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// concurrently runs op b.N times from g goroutines (one when g is 1) and
// reports the process's CPU time per op beside the wall time (on a shared
// box the CPU an op costs is the steadier figure), and how many writes a
// transaction of s combined on average.
func concurrently(b *testing.B, s *Store, g int, op func(i int64) error) {
	b.Helper()
	var next, txs, writes atomic.Int64
	s.group.onBatch = func(n int) {
		txs.Add(1)
		writes.Add(int64(n))
	}
	b.Cleanup(func() { s.group.onBatch = nil })
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	if g == 1 {
		for i := 0; i < b.N; i++ {
			if err := op(next.Add(1)); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((g + procs - 1) / procs)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := op(next.Add(1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if n := txs.Load(); n > 0 {
		b.ReportMetric(float64(writes.Load())/float64(n), "writes/tx")
	}
}

// BenchmarkConcurrentUpdateMachine is the fleet's heartbeat load: many
// goroutines each setting the last heartbeat of a distinct machine of an
// existing run, every call its own write.
func BenchmarkConcurrentUpdateMachine(b *testing.B) {
	for _, g := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := benchStore(b)
			heartbeat := heartbeats(b, s)
			concurrently(b, s, g, func(i int64) error { return heartbeat(s, i) })
		})
	}
}

// BenchmarkConcurrentUpdateMachineOverGRPC is the same load through the
// store plugin's gRPC client and server on a real connection, as the core
// makes the calls (the client batches concurrent ones). Client and plugin
// run in this process, so cpu-ns/op counts both sides.
func BenchmarkConcurrentUpdateMachineOverGRPC(b *testing.B) {
	for _, g := range []int{1, 64} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			s := benchStore(b)
			heartbeat := heartbeats(b, s)
			client := store.TestGRPCConn(b, s)
			concurrently(b, s, g, func(i int64) error { return heartbeat(client, i) })
		})
	}
}

// heartbeats stores runs of running machines in s and returns the
// heartbeat of the i-th call, which sets the last heartbeat of a machine
// (i modulo their number) through st: s itself or a client of it.
func heartbeats(b *testing.B, s *Store) func(st store.Store, i int64) error {
	b.Helper()
	const runs, perRun = 256, 4
	ctx := context.Background()
	machines := make([]store.Machine, perRun)
	for m := range machines {
		machines[m] = store.Machine{Machine: fmt.Sprintf("m%d", m), Status: store.StatusRunning}
	}
	for r := range runs {
		if err := s.CreateRun(ctx, store.Run{ID: fmt.Sprintf("r%d", r), Job: "j", Machines: machines}); err != nil {
			b.Fatal(err)
		}
	}
	base := time.Unix(1_700_000_000, 0)
	return func(st store.Store, i int64) error {
		m := i % (runs * perRun)
		hb := base.Add(time.Duration(i) * time.Millisecond)
		return st.UpdateMachine(ctx, fmt.Sprintf("r%d", m/perRun), fmt.Sprintf("m%d", m%perRun),
			store.MachineUpdate{LastHeartbeat: &hb, OnlyIfNotFinal: true})
	}
}

// BenchmarkConcurrentFireRun is the scheduler's load: many jobs firing at
// once, each FireRun recording a distinct (job, slot) and creating its run
// with one machine.
func BenchmarkConcurrentFireRun(b *testing.B) {
	const jobs = 1000
	for _, g := range []int{1, 64, 256} {
		b.Run(fmt.Sprintf("goroutines=%d", g), func(b *testing.B) {
			ctx := context.Background()
			s := benchStore(b)
			base := time.Unix(1_700_000_000, 0)
			concurrently(b, s, g, func(i int64) error {
				ok, err := s.FireRun(ctx, store.Run{ID: fmt.Sprintf("r%d", i), Job: fmt.Sprintf("j%d", i%jobs),
					Trigger: "schedule", ScheduledFor: base.Add(time.Duration(i) * time.Second),
					Machines: []store.Machine{{Machine: "m"}}})
				if err == nil && !ok {
					err = fmt.Errorf("fire run %d: slot already taken", i)
				}
				return err
			})
		})
	}
}

// BenchmarkCommitLatency is one writer committing alone, call after call,
// with the latency of each call recorded: a mean hides the rare commit
// that also waits for a checkpoint of the WAL (fsyncs of the WAL and the
// database file), which is what a p99 shows. heartbeat is UpdateMachine
// (a page or two per commit), output AppendOutput of 64 KiB chunks (about
// a run's worth of pages per commit, so that 1000 pages of WAL come every
// hundred commits or so). The bursts cases pause between bursts of 16
// commits, as a writer with other work does, where the back-to-back ones
// keep the writer busy all the time.
func BenchmarkCommitLatency(b *testing.B) {
	heartbeat := func(ctx context.Context, s *Store, i int64) error {
		hb := time.Unix(1_700_000_000, 0).Add(time.Duration(i) * time.Millisecond)
		return s.UpdateMachine(ctx, "r", "m", store.MachineUpdate{LastHeartbeat: &hb, OnlyIfNotFinal: true})
	}
	data := make([]byte, 64<<10)
	output := func(ctx context.Context, s *Store, i int64) error {
		data[0] = byte(i)
		_, err := s.AppendOutput(ctx, "r", "m", store.Chunk{Seq: i, Stream: "stdout", Data: data})
		return err
	}
	cases := []struct {
		name  string
		op    func(ctx context.Context, s *Store, i int64) error
		pause time.Duration // after every 16 commits
	}{
		{"heartbeat", heartbeat, 0},
		{"output64KiB", output, 0},
		{"output64KiB/bursts", output, 20 * time.Millisecond},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s := benchStore(b)
			if err := s.CreateRun(ctx, store.Run{ID: "r", Job: "j", Machines: []store.Machine{{Machine: "m", Status: store.StatusRunning}}}); err != nil {
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, 1<<16)
			var i int64
			b.ReportAllocs()
			for b.Loop() {
				if c.pause > 0 && i%16 == 15 {
					b.StopTimer()
					time.Sleep(c.pause) // the writer's other work
					b.StartTimer()
				}
				start := time.Now()
				if err := c.op(ctx, s, i); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				i++
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 {
				return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p999-ms")
			b.ReportMetric(q(1), "max-ms")
		})
	}
}

// BenchmarkRunEnds is what the core asks of the store at runs' ends at
// fleet load: it reads, then updates, together the runs it finalizes
// together, sixteen here, each of one machine. calls makes a batch's
// calls as to a store without store.RunBatchReader and
// store.RunBatchUpdater (side by side), batch in one call. An op is one
// run read or updated.
func BenchmarkRunEnds(b *testing.B) {
	const runs, batch = 1024, 16
	ctx := context.Background()
	s := benchStore(b)
	for r := range runs {
		if err := s.CreateRun(ctx, store.Run{ID: fmt.Sprintf("r%d", r), Job: "j",
			Machines: []store.Machine{{Machine: "m", Status: store.StatusSucceeded}}}); err != nil {
			b.Fatal(err)
		}
	}
	read := func(st store.Store, ids []string) error {
		for _, r := range store.GetRunBatch(ctx, st, ids) {
			if r.Err != nil || len(r.Run.Machines) != 1 {
				return fmt.Errorf("read %s: %v, %d machines", r.Run.ID, r.Err, len(r.Run.Machines))
			}
		}
		return nil
	}
	status, at := store.StatusSucceeded, time.Unix(1_700_000_000, 0)
	changes := make([]store.RunChange, batch)
	update := func(st store.Store, ids []string) error {
		for i, id := range ids {
			changes[i] = store.RunChange{RunID: id, Update: store.RunUpdate{Status: &status, FinishedAt: &at}}
		}
		return errors.Join(store.UpdateRunBatch(ctx, st, changes)...)
	}
	for _, op := range []struct {
		name string
		do   func(store.Store, []string) error
	}{{"read", read}, {"update", update}} {
		for _, c := range []struct {
			name string
			st   store.Store
		}{{"calls", struct{ store.Store }{s}}, {"batch", s}} {
			b.Run(op.name+"/"+c.name, func(b *testing.B) {
				ids := make([]string, batch)
				b.ReportAllocs()
				cpu0 := cpuTime(b)
				b.ResetTimer()
				for i := 0; i < b.N; i += batch {
					for j := range ids {
						ids[j] = fmt.Sprintf("r%d", (i+j)%runs)
					}
					if err := op.do(c.st, ids); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestTwoCoresPrune has two stores ("cores") on one database prune at
// once, two callers each, in small batches, while both append output to
// the runs being pruned: every finished old run is deleted and counted
// once, with its machines, actions and output; unfinished and recent runs
// and the fire records stay; nothing deadlocks.
func TestTwoCoresPrune(t *testing.T) {
	const oldRuns, keptRuns = 120, 10
	ctx := context.Background()
	dsn := freshDB(t)
	postgres.SetPruneBatch(t, 7)
	cores := []*postgres.Store{open(t, dsn), open(t, dsn)}
	cutoff := t0.Add(24 * time.Hour)
	machines := []store.Machine{{Machine: "a"}, {Machine: "b"}, {Machine: "c"}}
	slots := 0
	create := func(id string, status string, finished time.Time) {
		t.Helper()
		run := store.Run{ID: id, Job: "j", StartedAt: t0, Status: status, FinishedAt: finished,
			Machines: machines, Actions: []store.Action{{Kind: "kill", By: "ops", At: t0}}}
		if err := cores[0].CreateRun(ctx, run); err != nil {
			t.Fatal(err)
		}
		if _, err := cores[0].AppendOutput(ctx, id, "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		slots++
		if _, err := cores[0].RecordFire(ctx, "j", t0.Add(time.Duration(slots)*time.Minute), id); err != nil {
			t.Fatal(err)
		}
	}
	var old []string
	for i := range oldRuns {
		id := fmt.Sprintf("old%03d", i)
		old = append(old, id)
		create(id, store.StatusSucceeded, t0.Add(time.Duration(i)*time.Minute))
	}
	for i := range keptRuns {
		create(fmt.Sprint("running", i), store.StatusRunning, time.Time{})           // old, unfinished
		create(fmt.Sprint("stamped", i), store.StatusRunning, t0)                    // finish time, status not final
		create(fmt.Sprint("recent", i), store.StatusFailed, cutoff.Add(time.Minute)) // finished after the cutoff
	}
	fires := query[int64](t, dsn, `SELECT count(*) FROM fires`)[0]

	var pruned atomic.Int64
	stop := make(chan struct{})
	var pruners, appenders sync.WaitGroup
	// Appenders: each core appends to one machine of every old run, in
	// batches that lock many machines, until the pruners are done.
	for ci, s := range cores {
		m := machines[ci+1].Machine
		appenders.Add(1)
		go func() {
			defer appenders.Done()
			for seq := int64(0); ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				var batch []postgres.Append
				for i := len(old) - 1; i >= 0; i-- { // AppendOutputBatch sorts them
					batch = append(batch, postgres.Append{RunID: old[i], Machine: m,
						Chunk: store.Chunk{Seq: seq, Stream: "stdout", Data: []byte("y")}})
				}
				for i, r := range s.AppendOutputBatch(ctx, batch) {
					if r.Err != nil && !errors.Is(r.Err, store.ErrNotFound) {
						t.Errorf("core %d append to %s: %v", ci, batch[i].RunID, r.Err)
						return
					}
				}
			}
		}()
	}
	for ci, s := range cores {
		for range 2 {
			pruners.Add(1)
			go func() {
				defer pruners.Done()
				n, err := s.PruneRuns(ctx, cutoff)
				if err != nil {
					t.Errorf("core %d PruneRuns: %v", ci, err)
				}
				pruned.Add(int64(n))
			}()
		}
	}
	pruners.Wait()
	close(stop)
	appenders.Wait()
	// A run locked by an appender at the time is left for a later prune.
	for _, s := range cores {
		n, err := s.PruneRuns(ctx, cutoff)
		if err != nil {
			t.Fatalf("PruneRuns after the appenders: %v", err)
		}
		pruned.Add(int64(n))
	}
	if got := pruned.Load(); got != oldRuns {
		t.Errorf("pruned %d runs in all, want %d", got, oldRuns)
	}
	for _, c := range []struct{ table, want string }{
		{"runs", fmt.Sprint(3 * keptRuns)},
		{"machines", fmt.Sprint(3 * keptRuns * len(machines))},
		{"run_actions", fmt.Sprint(3 * keptRuns)},
		{"output", fmt.Sprint(3 * keptRuns)},
	} {
		if got := query[int64](t, dsn, `SELECT count(*) FROM `+c.table); fmt.Sprint(got[0]) != c.want {
			t.Errorf("%s rows left = %d, want %s", c.table, got[0], c.want)
		}
	}
	if got := query[int64](t, dsn, `SELECT count(*) FROM runs WHERE id LIKE 'old%'`); got[0] != 0 {
		t.Errorf("%d old finished runs left", got[0])
	}
	if got := query[int64](t, dsn, `SELECT count(*) FROM fires`)[0]; got != fires {
		t.Errorf("fires = %d after pruning, want %d", got, fires)
	}
	for _, id := range []string{"running0", "stamped0", "recent0"} {
		if _, err := cores[1].GetRun(ctx, id); err != nil {
			t.Errorf("run %s should stay: %v", id, err)
		}
	}
	if n, err := cores[1].PruneRuns(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("PruneRuns again = %d, %v; want 0", n, err)
	}
}

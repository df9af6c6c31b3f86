package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// parses counts the SQL texts s's writer parses from now on.
type parses struct {
	mu sync.Mutex
	n  map[string]int
}

func countParses(s *Store) *parses {
	p := &parses{n: map[string]int{}}
	s.group.onParse = func(q string) {
		p.mu.Lock()
		p.n[q]++
		p.mu.Unlock()
	}
	return p
}

// TestHotStatementsParsedOnce runs the hot writes (FireRun, AddMachines,
// UpdateMachine, UpdateRun), alone and combined in shared transactions,
// and checks that the writer's driver parsed none of their texts again
// after Open, and the UPDATEs of a shape not prepared at Open once, when
// they first come.
func TestHotStatementsParsedOnce(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	p := countParses(s)
	base := time.Unix(1_700_000_000, 0)
	const runs = 20
	var wg sync.WaitGroup
	for i := range runs {
		wg.Go(func() {
			id := fmt.Sprintf("r%d", i)
			ok, err := s.FireRun(ctx, store.Run{ID: id, Job: fmt.Sprintf("j%d", i%3), Trigger: "schedule",
				ScheduledFor: base.Add(time.Duration(i) * time.Second), Machines: []store.Machine{{Machine: "m0"}}})
			if err != nil || !ok {
				t.Errorf("fire run %s: %v, %v", id, ok, err)
				return
			}
			if err := s.AddMachines(ctx, id, []store.Machine{{Machine: "m1"}}); err != nil {
				t.Errorf("add machines: %v", err)
			}
			for k := range 5 {
				hb := base.Add(time.Duration(k) * time.Millisecond)
				for _, m := range []string{"m0", "m1"} {
					if err := s.UpdateMachine(ctx, id, m, store.MachineUpdate{LastHeartbeat: &hb, OnlyIfNotFinal: true}); err != nil {
						t.Errorf("update machine: %v", err)
					}
				}
			}
			if err := s.UpdateMachine(ctx, id, "m0", store.MachineUpdate{Status: ptr(store.StatusSucceeded),
				ExitCode: ptr(0), FinishedAt: &base}); err != nil {
				t.Errorf("update machine: %v", err)
			}
			if err := s.UpdateRun(ctx, id, store.RunUpdate{Status: ptr(store.StatusRunning), StartedAt: &base,
				AddAction: &store.Action{Kind: "kill", By: "op", At: base}}); err != nil {
				t.Errorf("update run: %v", err)
			}
		})
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	// UpdateRun's text and the machines' end here (not the core's: no
	// guard) are prepared when they first come.
	lazy := []string{"UPDATE runs SET status = ?, started_at = ? WHERE id = ?",
		updateMachineSQL(machineCols("status", "exit_code", "finished_at"), false)}
	for _, q := range lazy {
		if p.n[q] != 1 {
			t.Errorf("%s parsed %d times, want once (its preparation): %v", q, p.n[q], p.n)
		}
	}
	for q, n := range p.n {
		if !slices.Contains(lazy, q) {
			t.Errorf("parsed %d times after Open: %s", n, q)
		}
	}
	// And what they wrote.
	run, err := s.GetRun(ctx, "r7")
	if err != nil {
		t.Fatal(err)
	}
	m0, m1 := run.Machines[0], run.Machines[1]
	hb := base.Add(4 * time.Millisecond).UTC()
	if m0.Status != store.StatusSucceeded || m0.ExitCode == nil || *m0.ExitCode != 0 || !m0.LastHeartbeat.Equal(hb) ||
		m1.Status != store.StatusPending || m1.ExitCode != nil || !m1.LastHeartbeat.Equal(hb) || !m1.FinishedAt.IsZero() {
		t.Errorf("machines: %+v", run.Machines)
	}
}

// TestUpdateMachineSetsNull checks the fixed UPDATE's flags: a time set
// to zero is stored NULL, and what is not set stays.
func TestUpdateMachineSetsNull(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	at := time.Unix(1_700_000_000, 0).UTC()
	if err := s.CreateRun(ctx, store.Run{ID: "r", Job: "j", Machines: []store.Machine{{Machine: "m",
		StartedAt: at, LastHeartbeat: at, ExitCode: ptr(3), Reason: "why"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateMachine(ctx, "r", "m", store.MachineUpdate{LastHeartbeat: &time.Time{}, PID: ptr(9)}); err != nil {
		t.Fatal(err)
	}
	run, err := s.GetRun(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	m := run.Machines[0]
	if !m.LastHeartbeat.IsZero() || m.PID != 9 || !m.StartedAt.Equal(at) || m.ExitCode == nil || *m.ExitCode != 3 || m.Reason != "why" {
		t.Errorf("machine: %+v", m)
	}
}

// masks is 1 to n.
func masks(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// TestStmtCacheBounded prepares more texts than a cache keeps: it stops
// at maxStmts, and a text past it runs unprepared.
func TestStmtCacheBounded(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "s.db"))
	texts := masks(maxStmts + 40)
	for _, i := range texts {
		if err := s.rq.prepare(ctx, fmt.Sprintf("SELECT %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	s.rq.mu.RLock()
	n := len(s.rq.m)
	s.rq.mu.RUnlock()
	if n != maxStmts {
		t.Errorf("reader cache holds %d statements, want maxStmts (%d)", n, maxStmts)
	}
	var got int
	if err := s.read(ctx, func(tx *sql.Tx) error {
		return s.rq.queryRow(ctx, tx, fmt.Sprintf("SELECT %d", len(texts))).Scan(&got)
	}); err != nil || got != len(texts) {
		t.Errorf("past the bound: %d, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s.wq.m != nil || s.rq.m != nil {
		t.Error("Close left statements in the caches")
	}
}

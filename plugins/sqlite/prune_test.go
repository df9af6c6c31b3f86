package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

func pragmaInt(t *testing.T, db *sql.DB, name string) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow("PRAGMA " + name).Scan(&n); err != nil {
		t.Fatalf("PRAGMA %s: %v", name, err)
	}
	return n
}

// TestPruneRunsShrinks prunes thousands of finished runs with output, in
// several batches, and checks that the file gives the space back and that
// unfinished runs stay.
func TestPruneRunsShrinks(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "saltpeter.db")
	// The background checkpointer stays gated: the sizes measured below
	// need the test's own TRUNCATE checkpoint, which answers busy, doing
	// nothing, while the checkpointer runs one.
	s, err := Open(ctx, Options{Path: path, checkpoint: checkpointConfig{gate: make(chan struct{})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	const (
		finished = 3*pruneBatch + 123 // several batches and a partial one
		kept     = 50                 // finished, but too recently
		running  = 50                 // old, never finished
		stale    = 10                 // finished_at set, yet still active
	)
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cutoff := old.Add(24 * time.Hour)
	data := []byte(strings.Repeat("output line\n", 700)) // ~8 KiB: overflow pages

	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	add := func(id, status string, finishedAt *time.Time) {
		t.Helper()
		var fin any
		if finishedAt != nil {
			fin = finishedAt.UnixNano()
		}
		if _, err := tx.Exec(`INSERT INTO runs (id, job, started_at, finished_at, status) VALUES (?, 'backup', ?, ?, ?)`,
			id, old.UnixNano(), fin, status); err != nil {
			t.Fatal(err)
		}
		for i, m := range []string{"a", "b"} {
			if _, err := tx.Exec(`INSERT INTO machines (run_id, machine, n, status, output_bytes, next_seq) VALUES (?, ?, ?, ?, ?, 1)`,
				id, m, i, status, len(data)); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(`INSERT INTO output_chunks (run_id, machine, seq, stream, size, end_off, stream_end, data)
				VALUES (?, ?, 0, 'stdout', ?, ?, ?, ?)`, id, m, len(data), len(data), len(data), data); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tx.Exec(`INSERT INTO run_actions (run_id, n, kind, by) VALUES (?, 0, 'kill', 'alice')`, id); err != nil {
			t.Fatal(err)
		}
	}
	for i := range finished {
		at := old.Add(time.Duration(i) * time.Second)
		add(fmt.Sprint("done", i), store.StatusSucceeded, &at)
	}
	recent := cutoff.Add(time.Hour)
	for i := range kept {
		add(fmt.Sprint("recent", i), store.StatusFailed, &recent)
	}
	for i := range running {
		add(fmt.Sprint("running", i), store.StatusRunning, nil)
	}
	for i := range stale {
		add(fmt.Sprint("stale", i), store.StatusRunning, &old)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordFire(ctx, "backup", old, "done0"); err != nil {
		t.Fatal(err)
	}
	var busy, walFrames, copied int64
	if err := s.w.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &walFrames, &copied); err != nil || busy != 0 {
		t.Fatalf("wal_checkpoint(TRUNCATE) = busy %d, %d frames, %d copied, %v", busy, walFrames, copied, err)
	}
	pagesBefore := pragmaInt(t, s.w, "page_count")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := fi.Size()

	start := time.Now()
	n, err := s.PruneRuns(ctx, cutoff)
	t.Logf("pruned %d runs in %v", n, time.Since(start))
	if err != nil || n != finished {
		t.Fatalf("PruneRuns = %d, %v; want %d", n, err, finished)
	}

	pagesAfter := pragmaInt(t, s.w, "page_count")
	free := pragmaInt(t, s.w, "freelist_count")
	t.Logf("pages %d -> %d, %d free", pagesBefore, pagesAfter, free)
	if free != 0 {
		t.Errorf("freelist_count after pruning = %d, want 0", free)
	}
	// What stays is about (kept+running+stale)/total of what was there.
	if pagesAfter*10 > pagesBefore {
		t.Errorf("page_count %d -> %d: want it under a tenth", pagesBefore, pagesAfter)
	}

	for table, want := range map[string]int{
		"runs":          kept + running + stale,
		"machines":      2 * (kept + running + stale),
		"output_chunks": 2 * (kept + running + stale),
		"run_actions":   kept + running + stale,
		"fires":         1,
	} {
		var got int
		if err := s.w.QueryRow("SELECT count(*) FROM " + table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: %d rows left, want %d", table, got, want)
		}
	}
	for _, id := range []string{"recent0", "running0", fmt.Sprint("running", running-1), "stale0"} {
		r, err := s.GetRun(ctx, id)
		if err != nil || len(r.Machines) != 2 {
			t.Errorf("GetRun(%s) = %d machines, %v; want it kept", id, len(r.Machines), err)
			continue
		}
		out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: id, Machine: "a"})
		got := out.Data
		if err != nil || string(got) != string(data) {
			t.Errorf("ReadOutput(%s) = %d bytes, %v", id, len(got), err)
		}
	}
	if _, err := s.GetRun(ctx, "done0"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetRun(done0) = %v, want ErrNotFound", err)
	}
	if n, err := s.PruneRuns(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second PruneRuns = %d, %v; want 0", n, err)
	}

	// Closing checkpoints the WAL into the file, which shrinks with it.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("file %d -> %d bytes", sizeBefore, fi.Size())
	if fi.Size()*10 > sizeBefore {
		t.Errorf("file %d -> %d bytes: want it under a tenth", sizeBefore, fi.Size())
	}
}

// TestPruneRunsUsesIndex checks that the batch query seeks through
// runs_finished instead of scanning runs.
func TestPruneRunsUsesIndex(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	rows, err := s.w.Query(`EXPLAIN QUERY PLAN SELECT seq FROM runs WHERE active = 0 AND finished_at < ?
		ORDER BY finished_at, seq LIMIT ?`, 1, pruneBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "; ")
	if !strings.Contains(p, "USING INDEX runs_finished") || !strings.Contains(p, "finished_at<") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("plan = %q, want a seek on runs_finished with no sort", p)
	}
}

// TestPruneRunsCancelled: a done context prunes nothing.
func TestPruneRunsCancelled(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.PruneRuns(ctx, time.Now()); !errors.Is(err, context.Canceled) {
		t.Errorf("PruneRuns with a cancelled context = %v, want context.Canceled", err)
	}
}

package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// openFiles opens a store that keeps chunks of min bytes and more in
// files.
func openFiles(t *testing.T, path string, min int) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: path, fileChunkMin: min})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformanceInFiles runs the suite with every chunk in a file, as
// the suite's chunks are smaller than the ones a file takes by default.
func TestConformanceInFiles(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		return openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 1)
	})
}

func TestConformanceInFilesOverGRPC(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		return store.TestGRPCConn(t, openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 1))
	})
}

// chunkPlaces answers, by seq, whether each chunk of the machine is in the
// run's file.
func chunkPlaces(t *testing.T, s *Store, runID, machine string) []bool {
	t.Helper()
	rows, err := s.r.Query(`SELECT file_off IS NOT NULL, length(data) FROM output_chunks
		WHERE run_id = ? AND machine = ? ORDER BY seq`, runID, machine)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var in []bool
	for rows.Next() {
		var inFile bool
		var inRow int
		if err := rows.Scan(&inFile, &inRow); err != nil {
			t.Fatal(err)
		}
		if inFile && inRow != 0 {
			t.Errorf("chunk %d is in the file and keeps %d bytes in its row", len(in), inRow)
		}
		in = append(in, inFile)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return in
}

// TestLargeChunksGoToFiles: chunks from fileChunkMin up are in the run's
// file, smaller ones in their rows, and reads of any stream, from any
// offset, give back the bytes appended, in order.
func TestLargeChunksGoToFiles(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	run := store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a"}, {Machine: "b"}}}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	big := func(c byte, n int) []byte { return bytes.Repeat([]byte{c}, n) }
	chunks := []struct {
		machine, stream string
		data            []byte
		inFile          bool
	}{
		{"a", "stdout", []byte("small\n"), false},
		{"a", "stdout", big('x', fileChunkMin), true},
		{"b", "stdout", big('y', fileChunkMin+5), true}, // interleaved in the same file
		{"a", "stderr", big('e', fileChunkMin-1), false},
		{"a", "stdout", big('z', 3*fileChunkMin), true},
		{"b", "stderr", []byte("b err\n"), false},
	}
	want := map[string]map[string][]byte{"a": {}, "b": {}}
	seqs := map[string]int64{}
	places := map[string][]bool{}
	for _, c := range chunks {
		next, err := s.AppendOutput(ctx, "r1", c.machine, store.Chunk{Seq: seqs[c.machine], Stream: c.stream, Data: c.data})
		if err != nil || next != seqs[c.machine]+1 {
			t.Fatalf("append to %s: %d, %v", c.machine, next, err)
		}
		seqs[c.machine]++
		want[c.machine][""] = append(want[c.machine][""], c.data...)
		want[c.machine][c.stream] = append(want[c.machine][c.stream], c.data...)
		places[c.machine] = append(places[c.machine], c.inFile)
	}
	for m, wantPlaces := range places {
		got := chunkPlaces(t, s, "r1", m)
		if len(got) != len(wantPlaces) {
			t.Fatalf("machine %s has %d chunks, want %d", m, len(got), len(wantPlaces))
		}
		for i := range got {
			if got[i] != wantPlaces[i] {
				t.Errorf("machine %s chunk %d in the file: %v, want %v", m, i, got[i], wantPlaces[i])
			}
		}
	}
	if _, err := os.Stat(s.files.path("r1")); err != nil {
		t.Errorf("the run's output file: %v", err)
	}
	for m, streams := range want {
		for stream, all := range streams {
			for _, off := range []int64{0, 3, fileChunkMin + 2, int64(len(all)) - 1} {
				if off < 0 || off >= int64(len(all)) {
					continue
				}
				out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: m, Stream: stream, Offset: off, Limit: 1 << 20})
				if err != nil || !bytes.Equal(out.Data, all[off:]) || out.Total != int64(len(all)) {
					t.Errorf("%s %q from %d: %d bytes, total %d, %v; want %d of %d", m, stream, off, len(out.Data), out.Total, err, len(all)-int(off), len(all))
				}
			}
		}
	}
}

// allocated is how many bytes of disk the file at path takes.
func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestCapFreesFileSpace: what the cap drops from a run's file stops taking
// disk once the drop commits, and the rest reads as before, marked.
func TestCapFreesFileSpace(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("hole punching is Linux's")
	}
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	const chunk = 64 << 10
	capBytes := int64(4 * chunk)
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a", OutputCap: capBytes}}}); err != nil {
		t.Fatal(err)
	}
	const n = 64 // 4 MiB appended, 256 KiB kept
	var all []byte
	for seq := range int64(n) {
		data := bytes.Repeat([]byte{'a' + byte(seq%26)}, chunk)
		all = append(all, data...)
		if _, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: seq, Stream: "stdout", Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	s.files.reclaim() // returns once what was committed is freed
	if got, most := allocated(t, s.files.path("r1")), capBytes+2*chunk; got > most {
		t.Errorf("the run's file takes %d bytes of disk with %d stored, want at most %d", got, capBytes, most)
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Limit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	dropped := r.Machines[0].OutputDropped
	head := store.HeadBytes(capBytes)
	want := append(append(append([]byte{}, all[:head]...), store.DroppedMarker(dropped)...), all[head+dropped:]...)
	if dropped == 0 || !bytes.Equal(out.Data, want) {
		t.Errorf("read after the cap: %d bytes (dropped %d), want %d", len(out.Data), dropped, len(want))
	}
}

// TestPruneRemovesFiles: a pruned run's file goes once the prune commits;
// a file whose run is gone (the store stopped before removing it) goes
// at the next open; files that are not ours stay.
func TestPruneRemovesFiles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "saltpeter.db")
	s := openFiles(t, path, 1)
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"done", "running"} {
		if err := s.CreateRun(ctx, store.Run{ID: id, Job: "j", Machines: []store.Machine{{Machine: "a"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendOutput(ctx, id, "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("out\n")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UpdateRun(ctx, "done", store.RunUpdate{Status: ptr("succeeded"), FinishedAt: &old}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.PruneRuns(ctx, old.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneRuns = %d, %v; want 1", n, err)
	}
	s.files.reclaim()
	if _, err := os.Stat(s.files.path("done")); !os.IsNotExist(err) {
		t.Errorf("the pruned run's file: %v, want it gone", err)
	}
	if _, err := os.Stat(s.files.path("running")); err != nil {
		t.Errorf("the running run's file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	dir := path + ".output"
	orphan := filepath.Join(dir, fileName("gone/../run"))
	foreign := filepath.Join(dir, "notes.txt")
	for _, p := range []string{orphan, foreign} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openTest(t, path)
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Errorf("a file of no run after reopening: %v, want it gone", err)
	}
	for _, p := range []string{foreign, filepath.Join(dir, fileName("running"))} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s after reopening: %v", p, err)
		}
	}
}

// TestLostFileBytesShowAsLost: bytes a row names but its file lacks
// (committed, then lost to a power cut under SyncNormal) are shown as
// lost; the rest of the output still reads.
func TestLostFileBytesShowAsLost(t *testing.T) {
	ctx := context.Background()
	s := openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 4)
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a"}}}); err != nil {
		t.Fatal(err)
	}
	for seq, d := range []string{"one\n", "two\n", "three\n"} {
		if _, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: int64(seq), Stream: "stdout", Data: []byte(d)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Truncate(s.files.path("r1"), 8); err != nil { // "one\ntwo\n" stays
		t.Fatal(err)
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a"})
	want := "one\ntwo\n" + string(store.LostMarker(6))
	if err != nil || string(out.Data) != want {
		t.Errorf("read with the file cut short = %q, %v; want %q", out.Data, err, want)
	}
	if err := os.Remove(s.files.path("r1")); err != nil {
		t.Fatal(err)
	}
	out, err = s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a"})
	want = string(store.LostMarker(14)) // one stretch, not a marker per chunk
	if err != nil || string(out.Data) != want {
		t.Errorf("read with the file gone = %q, %v; want %q", out.Data, err, want)
	}
}

// TestMigrateOutputToFiles: chunks written before output files keep their
// bytes in their rows and read as before, beside new ones in the file.
func TestMigrateOutputToFiles(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v6.db")
	db := rawDB(t, path)
	tx := oldSchema(t, db, 6)
	old := bytes.Repeat([]byte("o"), 2*fileChunkMin)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"PRAGMA user_version = 6", nil},
		{`INSERT INTO runs (id, job, status) VALUES ('r1', 'backup', 'running')`, nil},
		{`INSERT INTO machines (run_id, machine, n, status, output_bytes, stored_bytes, next_seq) VALUES ('r1', 'a', 0, 'running', ?, ?, 1)`,
			[]any{len(old), len(old)}},
		{`INSERT INTO output_streams (run_id, machine, stream, bytes) VALUES ('r1', 'a', 'stdout', ?)`, []any{len(old)}},
		{`INSERT INTO output_chunks (run_id, machine, seq, stream, size, end_off, stream_end, data) VALUES ('r1', 'a', 0, 'stdout', ?, ?, ?, ?)`,
			[]any{len(old), len(old), len(old), old}},
	} {
		if _, err := tx.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	next := bytes.Repeat([]byte("n"), fileChunkMin)
	if _, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: 1, Stream: "stdout", Data: next}); err != nil {
		t.Fatal(err)
	}
	if got := chunkPlaces(t, s, "r1", "a"); len(got) != 2 || got[0] || !got[1] {
		t.Errorf("chunks in the file after the migration: %v, want [false true]", got)
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Limit: 1 << 20})
	if want := append(append([]byte{}, old...), next...); err != nil || !bytes.Equal(out.Data, want) {
		t.Errorf("read after the migration: %d bytes, %v; want %d", len(out.Data), err, len(want))
	}
}

func TestFileName(t *testing.T) {
	for _, id := range []string{"01JDX3K7ABCDEFGHJKMNPQRSTV", "job_1700000000", "a-b", "../etc/passwd", "", ".", "x41", "é", "a/b", "run.out"} {
		name := fileName(id)
		if filepath.Base(name) != name || name == "." || name == ".." {
			t.Errorf("fileName(%q) = %q: not a plain name", id, name)
		}
		if got, ok := runIDOf(name); !ok || got != id {
			t.Errorf("runIDOf(fileName(%q) = %q) = %q, %v", id, name, got, ok)
		}
	}
	for _, name := range []string{"notes.txt", ".out", "=zz.out", "=61", "=2e.out.out", "a.b.out"} {
		if id, ok := runIDOf(name); ok {
			t.Errorf("runIDOf(%q) = %q, want none (no id is named so)", name, id)
		}
	}
}

// TestRolledBackWriteFreesNothing: what a write frees in the output files
// is freed only when that write commits: not when its savepoint in a
// shared transaction rolls back, nor when its own transaction does.
func TestRolledBackWriteFreesNothing(t *testing.T) {
	ctx := context.Background()
	s := openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 1)
	for _, id := range []string{"kept1", "kept2", "gone"} {
		if err := s.CreateRun(ctx, store.Run{ID: id, Job: "j", Machines: []store.Machine{{Machine: "a"}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AppendOutput(ctx, id, "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("out\n")}); err != nil {
			t.Fatal(err)
		}
	}
	refused := errors.New("refused")
	free := func(id string, err error) func(*sql.Tx) error {
		return func(*sql.Tx) error {
			s.files.free(reclaim{runID: id})
			return err
		}
	}
	var batches []int
	s.group.onBatch = func(n int) { batches = append(batches, n) }
	errs := s.writeAll(ctx, []func(*sql.Tx) error{free("kept1", refused), free("gone", nil)})
	if !errors.Is(errs[0], refused) || errs[1] != nil {
		t.Fatalf("shared writes = %v", errs)
	}
	if len(batches) != 1 || batches[0] != 2 {
		t.Fatalf("batches %v, want the two writes in one", batches)
	}
	if err := s.writeAlone(ctx, free("kept2", refused)); !errors.Is(err, refused) {
		t.Fatalf("write alone = %v", err)
	}
	// A later transaction commits only what it frees.
	if _, err := s.AppendOutput(ctx, "kept1", "a", store.Chunk{Seq: 1, Stream: "stdout", Data: []byte("more\n")}); err != nil {
		t.Fatal(err)
	}
	s.files.reclaim()
	for id, want := range map[string]bool{"kept1": true, "kept2": true, "gone": false} {
		_, err := os.Stat(s.files.path(id))
		if exists := err == nil; exists != want {
			t.Errorf("output file of %s exists: %v (%v), want %v", id, exists, err, want)
		}
	}
}

// TestAppendBatchKeepsStreams: a batch of interleaved machines and
// streams, with a duplicate and a gap, reads back by stream from any
// offset, and the next batch goes on from the sizes the first left.
func TestAppendBatchKeepsStreams(t *testing.T) {
	ctx := context.Background()
	s := openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 8)
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a"}, {Machine: "b"}}}); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{"a": {}, "b": {}}
	next := map[string]int64{}
	batch := func(items ...[3]string) {
		t.Helper()
		var in []Append
		for _, it := range items {
			m, stream, data := it[0], it[1], it[2]
			in = append(in, Append{RunID: "r1", Machine: m, Chunk: store.Chunk{Seq: next[m], Stream: stream, Data: []byte(data)}})
			next[m]++
			want[m][""] += data
			want[m][stream] += data
		}
		// A duplicate and a chunk past a gap, refused, change nothing.
		in = append(in, Append{RunID: "r1", Machine: "a", Chunk: store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("dup")}},
			Append{RunID: "r1", Machine: "b", Chunk: store.Chunk{Seq: next["b"] + 1, Stream: "stdout", Data: []byte("gap")}})
		res, err := s.AppendBatch(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if gap := res[len(res)-1]; !errors.Is(gap.Err, store.ErrOutOfOrder) || gap.Next != next["b"] {
			t.Errorf("chunk past a gap: %d, %v; want %d, out of order", gap.Next, gap.Err, next["b"])
		}
	}
	batch([3]string{"a", "stdout", "a-out-1 long\n"}, [3]string{"b", "stderr", "b-err-1\n"}, [3]string{"a", "stderr", "a-err\n"},
		[3]string{"a", "stdout", "a-out-2\n"}, [3]string{"b", "stdout", "b-out-1 long\n"})
	batch([3]string{"b", "stderr", "b-err-2\n"}, [3]string{"a", "stdout", "a-out-3\n"})
	r, err := s.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range r.Machines {
		if m.NextSeq != next[m.Machine] || m.OutputBytes != int64(len(want[m.Machine][""])) {
			t.Errorf("machine %s: next %d, %d bytes; want %d, %d", m.Machine, m.NextSeq, m.OutputBytes, next[m.Machine], len(want[m.Machine][""]))
		}
	}
	for m, streams := range want {
		for stream, all := range streams {
			for off := int64(0); off < int64(len(all)); off += 5 {
				out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: m, Stream: stream, Offset: off})
				if err != nil || string(out.Data) != all[off:] || out.Total != int64(len(all)) {
					t.Errorf("%s %q from %d: %q (total %d), %v; want %q", m, stream, off, out.Data, out.Total, err, all[off:])
				}
			}
		}
	}
}

// TestManyRunsFiles: appending to more runs than the writer keeps files
// open for closes and reopens them, and every run reads back.
func TestManyRunsFiles(t *testing.T) {
	ctx := context.Background()
	s := openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 1)
	const runs = maxOpenFiles + 6
	for round := range int64(2) { // the second round reopens files closed in the first
		for i := range runs {
			id := fmt.Sprintf("r%03d", i)
			if round == 0 {
				if err := s.CreateRun(ctx, store.Run{ID: id, Job: "j", Machines: []store.Machine{{Machine: "a"}}}); err != nil {
					t.Fatal(err)
				}
			}
			data := []byte(fmt.Sprintf("%s round %d\n", id, round))
			if _, err := s.AppendOutput(ctx, id, "a", store.Chunk{Seq: round, Stream: "stdout", Data: data}); err != nil {
				t.Fatal(err)
			}
			s.files.mu.Lock()
			open := len(s.files.open)
			s.files.mu.Unlock()
			if open > maxOpenFiles {
				t.Fatalf("%d output files open, at most %d", open, maxOpenFiles)
			}
		}
	}
	for i := range runs {
		id := fmt.Sprintf("r%03d", i)
		out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: id, Machine: "a"})
		if want := fmt.Sprintf("%s round 0\n%s round 1\n", id, id); err != nil || string(out.Data) != want {
			t.Errorf("run %s: %q, %v; want %q", id, out.Data, err, want)
		}
	}
}

// TestReaderHoldsOffFreeing: bytes a reader's snapshot may name are not
// freed while it reads: the cap's drop is committed, but its hole is
// punched only once the reader is done.
func TestReaderHoldsOffFreeing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("hole punching is Linux's")
	}
	ctx := context.Background()
	s := openFiles(t, filepath.Join(t.TempDir(), "saltpeter.db"), 1)
	const chunk = 64 << 10
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a", OutputCap: 2 * chunk}}}); err != nil {
		t.Fatal(err)
	}
	appendChunk := func(seq int64) {
		t.Helper()
		if _, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: seq, Stream: "stdout", Data: bytes.Repeat([]byte{'a' + byte(seq)}, chunk)}); err != nil {
			t.Fatal(err)
		}
	}
	for seq := range int64(3) {
		appendChunk(seq)
	}
	s.files.reclaim()
	before := allocated(t, s.files.path("r1"))

	s.files.gate.RLock() // a reader, between its snapshot and its file reads
	appendChunk(3)       // past the cap: a chunk is dropped, its hole queued
	done := make(chan struct{})
	go func() { s.files.reclaim(); close(done) }()
	select {
	case <-done:
		t.Error("the dropped chunk was freed while a reader held the gate")
	case <-time.After(100 * time.Millisecond): // nothing to await: it must not happen
	}
	s.files.gate.RUnlock()
	<-done
	if after := allocated(t, s.files.path("r1")); after >= before+chunk {
		t.Errorf("the file takes %d bytes of disk after the drop was freed, %d before the fourth chunk: nothing freed", after, before)
	}
}

// TestLongOutputShedsPageCache: a run's file has its writeback started
// every shedStep bytes and what lies shedLag behind dropped from the page
// cache; a short output is left alone; the bytes read back whole.
func TestLongOutputShedsPageCache(t *testing.T) {
	type span struct{ off, n int64 }
	var mu sync.Mutex
	calls := map[string][]span{} // "flush" or "drop" of the file under test
	var file string
	record := func(kind string, real func(*os.File, int64, int64)) func(*os.File, int64, int64) {
		return func(f *os.File, off, n int64) {
			mu.Lock()
			if f.Name() == file {
				calls[kind] = append(calls[kind], span{off, n})
			}
			mu.Unlock()
			real(f, off, n)
		}
	}
	flush, drop := startWriteback, dropCached
	startWriteback, dropCached = record("flush", flush), record("drop", drop)
	t.Cleanup(func() { startWriteback, dropCached = flush, drop })

	const mib = 1 << 20
	for _, tc := range []struct {
		name        string
		mib         int
		flush, drop []span
	}{
		{"short", 3, nil, nil},
		{"long", 30,
			[]span{{0, 4 * mib}, {4 * mib, 4 * mib}, {8 * mib, 4 * mib}, {12 * mib, 4 * mib}, {16 * mib, 4 * mib}, {20 * mib, 4 * mib}, {24 * mib, 4 * mib}},
			[]span{{0, 4 * mib}, {4 * mib, 4 * mib}, {8 * mib, 4 * mib}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
			if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "m"}}}); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			file, calls = s.files.path("r1"), map[string][]span{}
			mu.Unlock()
			var all []byte
			for i := range tc.mib {
				data := bytes.Repeat([]byte{byte('a' + i%26)}, mib)
				if _, err := s.AppendOutput(ctx, "r1", "m", store.Chunk{Seq: int64(i), Stream: "stdout", Data: data}); err != nil {
					t.Fatalf("append chunk %d: %v", i, err)
				}
				all = append(all, data...)
			}
			mu.Lock()
			gotFlush, gotDrop := calls["flush"], calls["drop"]
			mu.Unlock()
			if !slices.Equal(gotFlush, tc.flush) {
				t.Errorf("writeback started for %v, want %v", gotFlush, tc.flush)
			}
			if !slices.Equal(gotDrop, tc.drop) {
				t.Errorf("dropped from the cache %v, want %v", gotDrop, tc.drop)
			}
			out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "m", Limit: int64(len(all)) + 1})
			if err != nil || !bytes.Equal(out.Data, all) {
				t.Errorf("read back %d bytes (%v), want the %d appended", len(out.Data), err, len(all))
			}
		})
	}
}

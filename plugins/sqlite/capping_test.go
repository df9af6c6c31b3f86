package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestMigrateOutputToV4: a database written before the output cap keeps
// its output readable, by stream too, and a stream's next chunk follows
// on from its stored size, which moved to output_streams.
func TestMigrateOutputToV4(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	db := rawDB(t, path)
	if _, err := db.Exec("PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		t.Fatal(err)
	}
	tx := oldSchema(t, db, 3)
	for _, q := range []string{
		"PRAGMA user_version = 3",
		`INSERT INTO runs (id, job, status) VALUES ('r1', 'backup', 'running')`,
		`INSERT INTO machines (run_id, machine, n, status, output_bytes, next_seq) VALUES ('r1', 'a', 0, 'running', 15, 3)`,
		`INSERT INTO output_chunks (run_id, machine, seq, stream, size, end_off, stream_end, data) VALUES
			('r1', 'a', 0, 'stdout', 5, 5, 5, 'out1' || char(10)),
			('r1', 'a', 1, 'stderr', 5, 10, 5, 'err1' || char(10)),
			('r1', 'a', 2, 'stdout', 5, 15, 10, 'out2' || char(10))`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	if next, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: 3, Stream: "stderr", Data: []byte("err2\n")}); err != nil || next != 4 {
		t.Fatalf("append after the migration: %d, %v", next, err)
	}
	for _, c := range []struct {
		stream, want string
	}{
		{"", "out1\nerr1\nout2\nerr2\n"},
		{"stdout", "out1\nout2\n"},
		{"stderr", "err1\nerr2\n"},
	} {
		out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Stream: c.stream})
		if err != nil || string(out.Data) != c.want || out.Total != int64(len(c.want)) || out.Next != out.Total {
			t.Errorf("stream %q after the migration: %q, next %d, total %d, %v; want %q", c.stream, out.Data, out.Next, out.Total, err, c.want)
		}
	}
	r, err := s.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if m := r.Machines[0]; m.OutputBytes != 20 || m.OutputDropped != 0 || m.OutputCap != 0 {
		t.Errorf("machine after the migration: output_bytes %d, dropped %d, cap %d; want 20, 0, 0", m.OutputBytes, m.OutputDropped, m.OutputCap)
	}
}

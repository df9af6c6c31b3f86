package postgres_test

import (
	"context"
	"testing"

	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestMigrateOutputToVersion4: output stored before the output cap stays
// readable, by stream too, and a stream's next chunk follows on from its
// stored size, which migration 4 moves to output_streams.
func TestMigrateOutputToVersion4(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	if err := postgres.MigrateTo(ctx, dsn, 3); err != nil {
		t.Fatalf("migrate to version 3: %v", err)
	}
	for _, q := range []string{
		`INSERT INTO runs (id, job, status) VALUES ('r1', 'backup', 'running') RETURNING id`,
		`INSERT INTO machines (run_id, machine, status, output_bytes, next_seq) VALUES ('r1', 'a', 'running', 15, 3) RETURNING run_id`,
		`INSERT INTO output (run_id, machine, seq, stream, data, end_off, stream_end) VALUES
			('r1', 'a', 0, 'stdout', convert_to('out1' || chr(10), 'UTF8'), 5, 5),
			('r1', 'a', 1, 'stderr', convert_to('err1' || chr(10), 'UTF8'), 10, 5),
			('r1', 'a', 2, 'stdout', convert_to('out2' || chr(10), 'UTF8'), 15, 10) RETURNING run_id`,
	} {
		query[string](t, dsn, q)
	}

	s := open(t, dsn)
	if next, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: 3, Stream: "stderr", Data: []byte("err2\n")}); err != nil || next != 4 {
		t.Fatalf("append after the migration: %d, %v", next, err)
	}
	for _, c := range []struct{ stream, want string }{
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

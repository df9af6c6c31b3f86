package sqlite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// openTest opens a store at path and closes it when the test ends.
func openTest(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Path: path})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// rawDB opens path with the driver alone, bypassing the store.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// oldSchema begins a transaction on db and applies the first n
// migrations in it: a database as version n made it, for the caller to
// fill and commit before a store of this version opens it.
func oldSchema(t *testing.T, db *sql.DB, n int) *sql.Tx {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range migrations[:n] {
		if _, err := tx.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	return tx
}

func ptr[T any](v T) *T { return &v }

func TestConformance(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		return openTest(t, filepath.Join(t.TempDir(), "sub", "saltpeter.db"))
	})
}

// TestConformanceOverGRPC runs the suite through the store plugin adapter,
// the way the core reaches this store as a plugin.
func TestConformanceOverGRPC(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store {
		return store.TestGRPCConn(t, openTest(t, filepath.Join(t.TempDir(), "saltpeter.db")))
	})
}

// fixture writes runs, output and overrides to s and returns what GetRun
// and ReadOutput must give back.
type fixture struct {
	runs      []store.Run
	output    map[string][]byte // machine -> every stream
	stderr    []byte            // machine "a"
	overrides []store.JobOverride
}

func writeFixture(t *testing.T, s *Store) fixture {
	t.Helper()
	ctx := context.Background()
	paris, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		paris = time.FixedZone("CET", 3600)
	}
	t1 := time.Date(2026, 3, 1, 12, 0, 0, 123456789, paris)
	t2 := t1.Add(90*time.Second + 1)
	run := store.Run{
		ID: "r1", Job: "backup", Trigger: store.TriggerManual, ScheduledFor: t1, StartedAt: t2,
		Status: store.StatusRunning, RequestedBy: "alice", Spec: []byte(`{"command":"true"}`),
		Actions: []store.Action{{Kind: "signal", Signal: "SIGTERM", Grace: 3 * time.Second, By: "ops", At: t2}},
		Machines: []store.Machine{
			{Machine: "a", Status: store.StatusRunning, ExitCode: ptr(0), PID: 7, DispatchedAt: t1,
				ConnectedAt: t2, StartedAt: t2, LastHeartbeat: t2, WrapperVersion: "2.1", Protocol: 2},
			{Machine: "b", Status: store.StatusLost, ExitCode: ptr(253), LateExitCode: ptr(-1), LateReason: "late",
				Reason: "heartbeat lost", SignalName: "SIGKILL", Error: "boom", FinishedAt: t2},
		},
	}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRun(ctx, "r1", store.RunUpdate{KilledBy: ptr("bob"), KilledAt: &t2,
		AddAction: &store.Action{Kind: "kill", Machine: "a", By: "bob", At: t2}}); err != nil {
		t.Fatal(err)
	}
	run.KilledBy, run.KilledAt = "bob", t2
	run.Actions = append(run.Actions, store.Action{Kind: "kill", Machine: "a", By: "bob", At: t2})
	second := store.Run{ID: "r2", Job: "report", ScheduledFor: t1, Status: store.StatusPending}
	if err := s.CreateRun(ctx, second); err != nil {
		t.Fatal(err)
	}

	f := fixture{output: map[string][]byte{}}
	for seq := range int64(40) {
		for _, m := range []string{"a", "b"} {
			stream := "stdout"
			if seq%3 == 0 {
				stream = "stderr"
			}
			data := bytes.Repeat([]byte{byte(seq), 0, 0xff, byte(len(m))}, int(seq)*37)
			if _, err := s.AppendOutput(ctx, "r1", m, store.Chunk{Seq: seq, Stream: stream, Data: data, At: t2}); err != nil {
				t.Fatal(err)
			}
			f.output[m] = append(f.output[m], data...)
			if m == "a" && stream == "stderr" {
				f.stderr = append(f.stderr, data...)
			}
		}
	}
	for i := range run.Machines {
		m := &run.Machines[i]
		m.RunID, m.NextSeq, m.OutputBytes = "r1", 40, int64(len(f.output[m.Machine]))
	}
	f.overrides = []store.JobOverride{{Job: "backup", Enabled: false, SetBy: "carol", SetAt: t2}}
	for _, o := range f.overrides {
		if err := s.SetOverride(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	second.Machines = []store.Machine{}
	f.runs = []store.Run{run, second}
	return f
}

// utc normalises the times in v so that reflect.DeepEqual compares
// instants: the store gives back UTC.
func utcRun(r store.Run) store.Run {
	u := func(t *time.Time) {
		if !t.IsZero() {
			*t = t.UTC()
		}
	}
	u(&r.ScheduledFor)
	u(&r.StartedAt)
	u(&r.FinishedAt)
	u(&r.KilledAt)
	r.Actions = append([]store.Action(nil), r.Actions...)
	for i := range r.Actions {
		u(&r.Actions[i].At)
	}
	r.Machines = append([]store.Machine{}, r.Machines...)
	for i := range r.Machines {
		m := &r.Machines[i]
		u(&m.DispatchedAt)
		u(&m.ConnectedAt)
		u(&m.StartedAt)
		u(&m.FinishedAt)
		u(&m.LastHeartbeat)
	}
	return r
}

func checkFixture(t *testing.T, s *Store, f fixture) {
	t.Helper()
	ctx := context.Background()
	for _, want := range f.runs {
		got, err := s.GetRun(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRun(%s): %v", want.ID, err)
		}
		if w := utcRun(want); !reflect.DeepEqual(got, w) {
			t.Errorf("GetRun(%s) =\n%+v\nwant\n%+v", want.ID, got, w)
		}
	}
	for m, want := range f.output {
		out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: m})
		got, total := out.Data, out.Total
		if err != nil || !bytes.Equal(got, want) || total != int64(len(want)) {
			t.Errorf("ReadOutput(%s) = %d bytes (total %d), %v; want %d bytes", m, len(got), total, err, len(want))
		}
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Stream: "stderr", Offset: 100, Limit: 5000})
	got, total := out.Data, out.Total
	if want := f.stderr[100:5100]; err != nil || !bytes.Equal(got, want) || total != int64(len(f.stderr)) {
		t.Errorf("ReadOutput(a stderr 100+5000) = %d bytes (total %d), %v; want %d of %d", len(got), total, err, len(want), len(f.stderr))
	}
	ovs, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range f.overrides {
		f.overrides[i].SetAt = f.overrides[i].SetAt.UTC()
	}
	if !reflect.DeepEqual(ovs, f.overrides) {
		t.Errorf("Overrides = %+v, want %+v", ovs, f.overrides)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "saltpeter.db")
	s, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	f := writeFixture(t, s)
	checkFixture(t, s, f)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("Ping after Close = %v, want ErrUnavailable", err)
	}
	if _, err := s.GetRun(ctx, "r1"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetRun after Close = %v, want ErrUnavailable", err)
	}

	s = openTest(t, path)
	checkFixture(t, s, f)
	// Output goes on where it stopped.
	steps := []struct {
		seq      int64
		wantNext int64
		wantErr  error
	}{
		{39, 40, nil},
		{41, 40, store.ErrOutOfOrder},
		{40, 41, nil},
	}
	for _, st := range steps {
		next, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: st.seq, Stream: "stdout", Data: []byte("more")})
		if !errors.Is(err, st.wantErr) || (err == nil) != (st.wantErr == nil) || next != st.wantNext {
			t.Errorf("AppendOutput seq %d after reopen = %d, %v; want %d, %v", st.seq, next, err, st.wantNext, st.wantErr)
		}
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Offset: int64(len(f.output["a"]))})
	got, total := out.Data, out.Total
	if err != nil || string(got) != "more" || total != int64(len(f.output["a"]))+4 {
		t.Errorf("ReadOutput of the tail = %q, %d, %v", got, total, err)
	}
}

func TestTimesExact(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "t.db"))
	cases := []struct {
		name string
		at   time.Time
	}{
		{"nanoseconds", time.Date(2026, 3, 1, 12, 0, 0, 1, time.UTC)},
		{"before 1970", time.Date(1901, 12, 13, 20, 45, 52, 999999999, time.UTC)},
		{"other zone", time.Date(2031, 7, 4, 23, 59, 59, 500, time.FixedZone("X", -7*3600))},
		{"near the end", time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprint("r", i)
			if err := s.CreateRun(ctx, store.Run{ID: id, Job: "j", StartedAt: c.at,
				Machines: []store.Machine{{Machine: "m"}}}); err != nil {
				t.Fatal(err)
			}
			if err := s.UpdateMachine(ctx, id, "m", store.MachineUpdate{LastHeartbeat: &c.at}); err != nil {
				t.Fatal(err)
			}
			r, err := s.GetRun(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if !r.StartedAt.Equal(c.at) || !r.Machines[0].LastHeartbeat.Equal(c.at) {
				t.Errorf("stored %v, got back %v and %v", c.at, r.StartedAt, r.Machines[0].LastHeartbeat)
			}
			if !r.ScheduledFor.IsZero() || !r.Machines[0].StartedAt.IsZero() || r.Machines[0].ExitCode != nil {
				t.Errorf("unset fields came back set: %+v", r)
			}
		})
	}
	err := s.CreateRun(ctx, store.Run{ID: "far", Job: "j", StartedAt: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err == nil {
		t.Errorf("a time the store cannot keep exactly was accepted")
	}
}

func TestLock(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "saltpeter.db")
	s, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, Options{Path: path})
	want := fmt.Sprintf("database %s is in use by pid %d", path, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second Open = %v, want an error containing %q", err, want)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, Options{Path: path})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
}

// damage changes a closed database file in one way.
type damage func(t *testing.T, path string)

func overwrite(off int64, n int) damage {
	return func(t *testing.T, path string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		junk := bytes.Repeat([]byte("garbage!\xde\xad\xbe\xef"), n/12+1)[:n]
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
}

func truncate(frac float64) damage {
	return func(t *testing.T, path string) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, int64(float64(fi.Size())*frac)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCorruptRefused(t *testing.T) {
	cases := []struct {
		name   string
		damage damage
	}{
		{"header", overwrite(0, 100)},
		{"schema page", overwrite(100, 3000)},
		{"interior pages", overwrite(3*4096, 8*4096)},
		{"truncated to half", truncate(0.5)},
		{"truncated mid page", truncate(0.77)},
		{"not a database", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("hello, I am a text file\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "saltpeter.db")
			s, err := Open(ctx, Options{Path: path})
			if err != nil {
				t.Fatal(err)
			}
			writeFixture(t, s)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			c.damage(t, path)
			before := fileSum(t, path)
			s, err = Open(ctx, Options{Path: path})
			if err == nil {
				s.Close()
				t.Fatalf("Open of a damaged file succeeded")
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			if after := fileSum(t, path); after != before {
				t.Errorf("the refused file changed")
			}
			t.Logf("refused: %v", err)
		})
	}
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "saltpeter.db")
	s := openTest(t, path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db := rawDB(t, path)
	newer := schemaVersion + 5
	if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", newer)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before := fileSum(t, path)
	_, err := Open(ctx, Options{Path: path})
	for _, want := range []string{path, fmt.Sprint("version ", newer), fmt.Sprint("binary's ", schemaVersion)} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open of a newer schema = %v, want an error containing %q", err, want)
		}
	}
	if fileSum(t, path) != before {
		t.Errorf("the refused file changed")
	}
}

func TestPragmas(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "new", "saltpeter.db")
	for _, sync := range []string{"", SyncFull} {
		s, err := Open(ctx, Options{Path: path, Synchronous: sync})
		if err != nil {
			t.Fatal(err)
		}
		checks := []struct {
			db     *sql.DB
			pragma string
			want   string
		}{
			{s.w, "auto_vacuum", "2"}, // incremental
			{s.w, "page_size", fmt.Sprint(pageSize)},
			{s.w, "journal_mode", "wal"},
			{s.w, "foreign_keys", "1"},
			{s.r, "foreign_keys", "1"},
			{s.r, "query_only", "1"},
			{s.w, "user_version", fmt.Sprint(schemaVersion)},
			{s.w, "synchronous", map[string]string{"": "1", SyncFull: "2"}[sync]},
			{s.w, "busy_timeout", "5000"},
			// The checkpointer checkpoints, never a commit.
			{s.w, "wal_autocheckpoint", "0"},
		}
		for _, c := range checks {
			var got string
			if err := c.db.QueryRowContext(ctx, "PRAGMA "+c.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", c.pragma, err)
			}
			if got != c.want {
				t.Errorf("sync %q: PRAGMA %s = %s, want %s", sync, c.pragma, got, c.want)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Open(ctx, Options{Path: path, Synchronous: "off"}); err == nil {
		t.Errorf("synchronous off accepted")
	}
}

// TestReadOutputSeeks checks that a read from an offset goes through the
// offset indexes, not a scan of the machine's chunks.
func TestReadOutputSeeks(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	cases := []struct {
		name, query, index string
	}{
		{"all streams", `SELECT end_off - size, data FROM output_chunks
			WHERE run_id = 'r' AND machine = 'm' AND end_off > 5 ORDER BY end_off, seq`, "output_chunks_off"},
		{"one stream", `SELECT stream_end - size, data FROM output_chunks
			WHERE run_id = 'r' AND machine = 'm' AND stream = 'stdout' AND stream_end > 5 ORDER BY stream_end, seq`, "output_chunks_stream"},
		{"stream total", `SELECT coalesce(max(stream_end), 0) FROM output_chunks
			WHERE run_id = 'r' AND machine = 'm' AND stream = 'stdout'`, "output_chunks_stream"},
		{"active runs", `SELECT id FROM runs WHERE active = 1 ORDER BY sort_at DESC, seq DESC LIMIT 10`, "runs_active"},
		{"runs of a job", `SELECT id FROM runs WHERE job = 'x' AND sort_at < 5 ORDER BY sort_at DESC, seq DESC LIMIT 10`, "runs_job"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rows, err := s.r.Query("EXPLAIN QUERY PLAN " + c.query)
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
			p := strings.Join(plan, "; ")
			if !strings.Contains(p, c.index) || strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("plan %q: want a search on %s and no sort", p, c.index)
			}
		})
	}
}

func TestAppendOutputBatch(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a"}, {Machine: "b"}}}); err != nil {
		t.Fatal(err)
	}
	chunk := func(seq int64, data string) store.Chunk {
		return store.Chunk{Seq: seq, Stream: "stdout", Data: []byte(data)}
	}
	batch := []struct {
		a        Append
		wantNext int64
		wantErr  error
	}{
		{Append{RunID: "r1", Machine: "a", Chunk: chunk(0, "a0")}, 1, nil},
		{Append{RunID: "r1", Machine: "b", Chunk: chunk(0, "b0")}, 1, nil},
		{Append{RunID: "r1", Machine: "a", Chunk: chunk(1, "a1")}, 2, nil},
		{Append{RunID: "r1", Machine: "a", Chunk: chunk(1, "XX")}, 2, nil}, // a retry inside the batch
		{Append{RunID: "r1", Machine: "b", Chunk: chunk(3, "b3")}, 1, store.ErrOutOfOrder},
		{Append{RunID: "r1", Machine: "nope", Chunk: chunk(0, "x")}, 0, store.ErrNotFound},
		{Append{RunID: "nope", Machine: "a", Chunk: chunk(0, "x")}, 0, store.ErrNotFound},
		{Append{RunID: "r1", Machine: "b", Chunk: chunk(1, "b1")}, 2, nil},
	}
	var in []Append
	for _, b := range batch {
		in = append(in, b.a)
	}
	for round, wantDup := range []bool{false, true} {
		res, err := s.AppendBatch(ctx, in)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(res) != len(batch) {
			t.Fatalf("round %d: %d results for %d chunks", round, len(res), len(batch))
		}
		if wantDup {
			continue // the whole batch again: every chunk a duplicate or refused
		}
		for i, b := range batch {
			if res[i].Next != b.wantNext || !errors.Is(res[i].Err, b.wantErr) || (res[i].Err == nil) != (b.wantErr == nil) {
				t.Errorf("chunk %d: %d, %v; want %d, %v", i, res[i].Next, res[i].Err, b.wantNext, b.wantErr)
			}
		}
	}
	for m, want := range map[string]string{"a": "a0a1", "b": "b0b1"} {
		out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: m})
		got := out.Data
		if err != nil || string(got) != want {
			t.Errorf("output of %s = %q, %v; want %q", m, got, err, want)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AppendBatch(cctx, []Append{{RunID: "r1", Machine: "a", Chunk: chunk(2, "c")}}); !errors.Is(err, context.Canceled) {
		t.Errorf("batch with a cancelled context = %v", err)
	}
	if r, _ := s.GetRun(ctx, "r1"); r.Machines[0].NextSeq != 2 {
		t.Errorf("a cancelled batch stored something: next %d", r.Machines[0].NextSeq)
	}
}

// TestNewFileIsTheOwnersAlone: job output can hold secrets.
func TestNewFileIsTheOwnersAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sp.db")
	s := openTest(t, path)
	if err := s.CreateRun(context.Background(), store.Run{ID: "r", Job: "j"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v, want no access for group and others", p, fi.Mode().Perm())
		}
	}
}

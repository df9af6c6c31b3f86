package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/sdk/sdktest"
	"github.com/saltpeter/saltpeter/sdk/store"
)

func TestConformance(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store { return open(t, freshDB(t)) })
}

// TestConformanceOverGRPC runs the suite through the store plugin adapter,
// the way the core reaches this store as a plugin.
func TestConformanceOverGRPC(t *testing.T) {
	sdktest.TestStore(t, func(t *testing.T) store.Store { return store.TestGRPCConn(t, open(t, freshDB(t))) })
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestReopenKeepsState(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	// Nanoseconds and a zone: times come back exact (in UTC).
	at := time.Date(2026, 3, 1, 13, 4, 5, 123456789, time.FixedZone("X", 3600))
	s := open(t, dsn)
	run := store.Run{ID: "r1", Job: "backup", Trigger: store.TriggerManual, StartedAt: at,
		Status: store.StatusRunning, Spec: []byte(`{}`), Machines: []store.Machine{{Machine: "a"}}}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("hi\n"), At: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetOverride(ctx, store.JobOverride{Job: "backup", Enabled: false, SetBy: "ops", SetAt: at}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRun(ctx, "r1"); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("GetRun after Close = %v, want ErrUnavailable", err)
	}

	s2 := open(t, dsn)
	got, err := s2.GetRun(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.StartedAt.Equal(at) || got.StartedAt.Nanosecond() != 123456789 || string(got.Spec) != "{}" ||
		len(got.Machines) != 1 || got.Machines[0].NextSeq != 1 {
		t.Errorf("after reopen: %+v", got)
	}
	out, err := s2.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a"})
	data, total := out.Data, out.Total
	if err != nil || string(data) != "hi\n" || total != 3 {
		t.Errorf("ReadOutput after reopen = %q, %d, %v", data, total, err)
	}
	if next, err := s2.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("dup")}); err != nil || next != 1 {
		t.Errorf("duplicate after reopen: next %d, %v; want 1", next, err)
	}
	os, err := s2.Overrides(ctx)
	if err != nil || len(os) != 1 || !os[0].SetAt.Equal(at) || os[0].SetBy != "ops" {
		t.Errorf("Overrides after reopen = %+v, %v", os, err)
	}
}

// TestTwoCores has two stores ("cores") on one database append the same
// chunks at once, every chunk twice from each: each seq must be stored
// exactly once, the seqs contiguous and the bytes in order.
func TestTwoCores(t *testing.T) {
	const machines, chunks = 3, 40
	cases := []struct {
		name  string
		batch int // 0: AppendOutput; else AppendOutputBatch of this size
	}{
		{"AppendOutput", 0},
		{"AppendOutputBatch", 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := freshDB(t)
			cores := []*postgres.Store{open(t, dsn), open(t, dsn)}
			var names []string
			for i := range machines {
				names = append(names, fmt.Sprint("m", i))
			}
			run := store.Run{ID: "r1", Job: "j", StartedAt: t0, Status: store.StatusRunning}
			for _, m := range names {
				run.Machines = append(run.Machines, store.Machine{Machine: m})
			}
			if err := cores[0].CreateRun(ctx, run); err != nil {
				t.Fatal(err)
			}
			chunk := func(seq int64) store.Chunk {
				return store.Chunk{Seq: seq, Stream: []string{"stdout", "stderr"}[seq%2],
					Data: []byte(fmt.Sprintf("<%d>", seq)), At: t0}
			}
			var wg sync.WaitGroup
			for ci, s := range cores {
				for _, m := range names {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if c.batch == 0 {
							for seq := range int64(chunks) {
								for range 2 {
									if _, err := s.AppendOutput(ctx, "r1", m, chunk(seq)); err != nil {
										t.Errorf("core %d append %s %d: %v", ci, m, seq, err)
										return
									}
								}
							}
							return
						}
						var all []postgres.Append
						for seq := range int64(chunks) {
							a := postgres.Append{RunID: "r1", Machine: m, Chunk: chunk(seq)}
							all = append(all, a, a)
						}
						for len(all) > 0 {
							n := min(c.batch, len(all))
							for i, r := range s.AppendOutputBatch(ctx, all[:n]) {
								if r.Err != nil {
									t.Errorf("core %d batch %s seq %d: %v", ci, m, all[i].Chunk.Seq, r.Err)
									return
								}
							}
							all = all[n:]
						}
					}()
				}
			}
			wg.Wait()
			var want string
			for seq := range int64(chunks) {
				want += string(chunk(seq).Data)
			}
			for _, m := range names {
				stats := query[[]int64](t, dsn, `SELECT ARRAY[count(*), count(DISTINCT seq), min(seq), max(seq)]
					FROM output WHERE run_id = 'r1' AND machine = $1`, m)
				if fmt.Sprint(stats[0]) != fmt.Sprint([]int64{chunks, chunks, 0, chunks - 1}) {
					t.Errorf("%s: count, distinct, min, max seq = %v, want %d chunks 0..%d once each", m, stats[0], chunks, chunks-1)
				}
				for _, s := range cores {
					out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: m})
					data, total := out.Data, out.Total
					if err != nil || string(data) != want || total != int64(len(want)) {
						t.Errorf("%s: ReadOutput = %q, %d, %v; want %q", m, data, total, err, want)
					}
				}
			}
			for _, m := range mustGet(t, cores[1], "r1").Machines {
				if m.NextSeq != chunks || m.OutputBytes != int64(len(want)) {
					t.Errorf("%s: next %d bytes %d, want %d and %d", m.Machine, m.NextSeq, m.OutputBytes, chunks, len(want))
				}
			}
		})
	}
}

func mustGet(t *testing.T, s store.Store, id string) store.Run {
	t.Helper()
	r, err := s.GetRun(context.Background(), id)
	if err != nil {
		t.Fatalf("GetRun(%s): %v", id, err)
	}
	return r
}

func TestAppendOutputBatchResults(t *testing.T) {
	ctx := context.Background()
	s := open(t, freshDB(t))
	if err := s.CreateRun(ctx, store.Run{ID: "r1", Job: "j", Machines: []store.Machine{{Machine: "a"}, {Machine: "b"}}}); err != nil {
		t.Fatal(err)
	}
	ch := func(m string, seq int64, data string) postgres.Append {
		return postgres.Append{RunID: "r1", Machine: m, Chunk: store.Chunk{Seq: seq, Stream: "stdout", Data: []byte(data)}}
	}
	batch := []struct {
		a        postgres.Append
		wantNext int64
		wantErr  error
	}{
		{ch("a", 0, "a0"), 1, nil},
		{ch("a", 0, "XX"), 1, nil}, // duplicate within the batch
		{ch("b", 0, "b0"), 1, nil},
		{ch("a", 1, "a1"), 2, nil},
		{ch("a", 5, "XX"), 2, store.ErrOutOfOrder},
		{ch("nope", 0, "XX"), 0, store.ErrNotFound},
		{postgres.Append{RunID: "nope", Machine: "a"}, 0, store.ErrNotFound},
		{ch("a", 2, "a2"), 3, nil}, // a refusal does not stop the rest
	}
	var in []postgres.Append
	for _, b := range batch {
		in = append(in, b.a)
	}
	res := s.AppendOutputBatch(ctx, in)
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d chunks", len(res), len(batch))
	}
	for i, b := range batch {
		if !errors.Is(res[i].Err, b.wantErr) || (b.wantErr == nil) != (res[i].Err == nil) {
			t.Errorf("chunk %d (%s seq %d): error %v, want %v", i, b.a.Machine, b.a.Chunk.Seq, res[i].Err, b.wantErr)
		}
		if b.wantErr != store.ErrNotFound && res[i].Next != b.wantNext {
			t.Errorf("chunk %d (%s seq %d): next %d, want %d", i, b.a.Machine, b.a.Chunk.Seq, res[i].Next, b.wantNext)
		}
	}
	if out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a"}); err != nil || string(out.Data) != "a0a1a2" {
		t.Errorf("a output %q, %v; want a0a1a2", out.Data, err)
	}
	// A cancelled context fails every chunk and stores none.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for i, r := range s.AppendOutputBatch(cctx, []postgres.Append{ch("a", 3, "x"), ch("b", 1, "y")}) {
		if r.Err == nil {
			t.Errorf("cancelled batch chunk %d succeeded", i)
		}
	}
	if got := mustGet(t, s, "r1").Machines; got[0].NextSeq != 3 || got[1].NextSeq != 1 {
		t.Errorf("a cancelled batch stored chunks: %+v", got)
	}
}

// TestOpenErrors: a DSN that does not connect fails with ErrUnavailable,
// naming the host and port but never the password. No server needed.
func TestOpenErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now
	const pw = "s3cr3t-Pa55"
	where := fmt.Sprintf("127.0.0.1:%d", port)
	cases := []struct {
		name     string
		dsn      string
		wantUnav bool
		want     string
	}{
		{"keyword closed port", fmt.Sprintf("host=127.0.0.1 port=%d user=sp password=%s dbname=sp connect_timeout=5", port, pw), true, where},
		{"url closed port", fmt.Sprintf("postgres://sp:%s@127.0.0.1:%d/sp?connect_timeout=5", pw, port), true, where},
		{"unparsable", fmt.Sprintf("host=127.0.0.1 port=notaport password=%s", pw), false, "parse DSN"},
		{"unparsable url", fmt.Sprintf("postgres://sp:%s@127.0.0.1:notaport/sp", pw), false, "parse DSN"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s, err := postgres.Open(ctx, postgres.Options{DSN: c.dsn})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			msg := err.Error()
			if strings.Contains(msg, pw) {
				t.Errorf("error leaks the password: %s", msg)
			}
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q does not name %q", msg, c.want)
			}
			if got := errors.Is(err, store.ErrUnavailable); got != c.wantUnav {
				t.Errorf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, c.wantUnav)
			}
		})
	}
}

func TestSchemaVersions(t *testing.T) {
	t.Run("newer refused", func(t *testing.T) {
		dsn := freshDB(t)
		if err := open(t, dsn).Close(); err != nil {
			t.Fatal(err)
		}
		newer := postgres.SchemaVersion + 1
		query[int](t, dsn, `INSERT INTO saltpeter_migrations (version) VALUES ($1) RETURNING version`, newer)
		s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
		if err == nil {
			s.Close()
			t.Fatal("Open of a newer schema succeeded")
		}
		for _, want := range []string{fmt.Sprintf("version %d", newer), fmt.Sprintf("binary's %d", postgres.SchemaVersion)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
	})
	t.Run("cores starting at once migrate once", func(t *testing.T) {
		dsn := freshDB(t)
		const cores = 4
		errs := make(chan error, cores)
		for range cores {
			go func() {
				s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
				if err == nil {
					err = s.Close()
				}
				errs <- err
			}()
		}
		for range cores {
			if err := <-errs; err != nil {
				t.Errorf("Open: %v", err)
			}
		}
		got := query[int32](t, dsn, `SELECT version FROM saltpeter_migrations ORDER BY version`)
		if len(got) != postgres.SchemaVersion || got[len(got)-1] != int32(postgres.SchemaVersion) {
			t.Errorf("migrations recorded %v, want 1..%d once each", got, postgres.SchemaVersion)
		}
	})
}

// TestOnlyIfNotFinalMatchesFinal checks the SQL condition against
// store.Final for every status.
func TestOnlyIfNotFinalMatchesFinal(t *testing.T) {
	ctx := context.Background()
	s := open(t, freshDB(t))
	statuses := []string{store.StatusPending, store.StatusRunning, store.StatusSucceeded, store.StatusFailed,
		store.StatusTimeout, store.StatusKilled, store.StatusLost, store.StatusNotStarted, store.StatusError,
		store.StatusCancelled, store.StatusSkipped}
	for i, st := range statuses {
		t.Run(st, func(t *testing.T) {
			id := fmt.Sprint("r", i)
			if err := s.CreateRun(ctx, store.Run{ID: id, Job: "j", Machines: []store.Machine{{Machine: "a", Status: st}}}); err != nil {
				t.Fatal(err)
			}
			err := s.UpdateMachine(ctx, id, "a", store.MachineUpdate{PID: ptr(1), OnlyIfNotFinal: true})
			if got := errors.Is(err, store.ErrFinal); got != store.Final(st) {
				t.Errorf("OnlyIfNotFinal on %s: %v, want ErrFinal %v", st, err, store.Final(st))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

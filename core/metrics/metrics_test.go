package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/core/store/memory"
	"github.com/saltpeter/saltpeter/sdk/store"
)

func exit(c int) *int { return &c }

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantLines(t *testing.T, text string, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("metrics lack %q", l)
		}
	}
}

func TestRunsAndMachines(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		cfg   Config
		want  []string
		never []string
	}{
		{"per machine, capped", Config{PerMachine: true, MaxMachineSeries: 2}, []string{
			`saltpeter_runs_total{job="backup",status="failed"} 1`,
			`saltpeter_runs_total{job="backup",status="succeeded"} 1`,
			`saltpeter_machine_last_exit_code{job="backup",machine="db1"} 0`,
			`saltpeter_machine_last_exit_code{job="backup",machine="db2"} 3`,
			`saltpeter_machine_last_success_timestamp_seconds{job="backup",machine="db1"} 1.795662e+09`,
			`saltpeter_machine_series_dropped_total 2`,
			`saltpeter_run_duration_seconds_count{job="backup"} 2`,
		}, []string{`machine="db3"`}},
		{"no machine label", Config{PerMachine: false}, []string{
			`saltpeter_machine_last_exit_code{job="backup"} 3`,
		}, []string{`machine=`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.cfg)
			ms := func(db2 int) []store.Machine {
				return []store.Machine{
					{Machine: "db1", Status: store.StatusSucceeded, ExitCode: exit(0), FinishedAt: t0},
					{Machine: "db2", Status: map[bool]string{true: store.StatusSucceeded, false: store.StatusFailed}[db2 == 0], ExitCode: exit(db2), FinishedAt: t0},
					{Machine: "db3", Status: store.StatusSucceeded, ExitCode: exit(0), FinishedAt: t0},
					{Machine: "db4", Status: store.StatusPending}, // no exit code: nothing to say
				}
			}
			m.RunEnded(store.Run{Job: "backup", Status: store.StatusSucceeded, StartedAt: t0.Add(-time.Minute), FinishedAt: t0, Machines: ms(0)})
			m.RunEnded(store.Run{Job: "backup", Status: store.StatusFailed, StartedAt: t0.Add(-time.Minute), FinishedAt: t0, Machines: ms(3)})
			text := scrape(t, m)
			wantLines(t, text, tc.want...)
			for _, n := range tc.never {
				if strings.Contains(text, n) {
					t.Errorf("metrics hold %q", n)
				}
			}
		})
	}
}

func TestHooksAndGauges(t *testing.T) {
	m := New(Config{PerMachine: true,
		HubCounts:    func() (int64, int64) { return 3, 5 },
		PluginStarts: func() map[[2]string]int { return map[[2]string]int{{"target", "ssh"}: 2} }})
	m.Killed(250 * time.Millisecond)
	m.Fired(3 * time.Millisecond)
	m.Fired(2 * time.Second)
	m.Notified("ops", "delivered")
	m.Notified("ops", "retry")
	m.Notified("ops", "retry")
	st := m.Store(memory.New())
	if err := st.CreateRun(context.Background(), store.Run{ID: "r", Job: "j", Status: store.StatusRunning}); err != nil {
		t.Fatal(err)
	}
	wantLines(t, scrape(t, m),
		`saltpeter_running_machines 3`,
		`saltpeter_connected_wrappers 5`,
		`saltpeter_plugin_starts_total{kind="target",name="ssh"} 2`,
		`saltpeter_kill_latency_seconds_count 1`,
		`saltpeter_kill_latency_seconds_bucket{le="0.5"} 1`,
		`saltpeter_fire_lag_seconds_count 2`,
		`saltpeter_fire_lag_seconds_bucket{le="0.005"} 1`,
		`saltpeter_fire_lag_seconds_bucket{le="1"} 1`,
		`saltpeter_fire_lag_seconds_bucket{le="5"} 2`,
		`saltpeter_notifications_total{notifier="ops",result="delivered"} 1`,
		`saltpeter_notifications_total{notifier="ops",result="retry"} 2`,
		`saltpeter_store_write_seconds_count{op="create_run"} 1`,
	)
}

// batching is a store that takes batches of output and of machine
// updates, and counts them.
type batching struct {
	*memory.Store
	batches, machineBatches int
}

func (b *batching) UpdateMachines(ctx context.Context, batch []store.MachineChange) []error {
	b.machineBatches++
	errs := make([]error, len(batch))
	for i, c := range batch {
		errs[i] = b.UpdateMachine(ctx, c.RunID, c.Machine, c.Update)
	}
	return errs
}

func (b *batching) AppendOutputBatch(ctx context.Context, batch []store.Append) []store.AppendResult {
	b.batches++
	out := make([]store.AppendResult, len(batch))
	for i, a := range batch {
		out[i].Next, out[i].Err = b.AppendOutput(ctx, a.RunID, a.Machine, a.Chunk)
	}
	return out
}

// A batch of the hub's reaches the store whole only through Batchers: the
// timing wrapper must be one, passing batches on whole to a store that
// takes them and chunk by chunk to one that does not.
func TestStoreKeepsBatches(t *testing.T) {
	for _, tc := range []struct {
		name        string
		inner       func() (store.Store, func() (int, int))
		wantBatches int
	}{
		{"batching store", func() (store.Store, func() (int, int)) {
			b := &batching{Store: memory.New()}
			return b, func() (int, int) { return b.batches, b.machineBatches }
		}, 1},
		{"store without batches", func() (store.Store, func() (int, int)) {
			return memory.New(), func() (int, int) { return 0, 0 }
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			inner, batches := tc.inner()
			if err := inner.CreateRun(ctx, store.Run{ID: "r", Job: "j", Status: store.StatusRunning}); err != nil {
				t.Fatal(err)
			}
			if err := inner.AddMachines(ctx, "r", []store.Machine{{Machine: "m", Status: store.StatusRunning}}); err != nil {
				t.Fatal(err)
			}
			m := New(Config{})
			b, ok := m.Store(inner).(store.Batcher)
			if !ok {
				t.Fatal("the timed store is not a store.Batcher: the hub would append chunk by chunk")
			}
			chunk := func(seq int64) store.Append {
				return store.Append{RunID: "r", Machine: "m",
					Chunk: store.Chunk{Seq: seq, Stream: "stdout", Data: []byte("x"), At: time.Now()}}
			}
			res := b.AppendOutputBatch(ctx, []store.Append{chunk(0), chunk(1), chunk(5)})
			if len(res) != 3 || res[0].Err != nil || res[1].Err != nil || res[1].Next != 2 {
				t.Fatalf("results %+v, want chunks 0 and 1 stored", res)
			}
			if !errors.Is(res[2].Err, store.ErrOutOfOrder) || res[2].Next != 2 {
				t.Fatalf("chunk 5 after 1: %+v, want out of order with next 2", res[2])
			}
			mb, ok := m.Store(inner).(store.MachineBatcher)
			if !ok {
				t.Fatal("the timed store is not a store.MachineBatcher: the hub's heartbeats would go one by one")
			}
			hb := time.Now()
			errs := mb.UpdateMachines(ctx, []store.MachineChange{
				{RunID: "r", Machine: "m", Update: store.MachineUpdate{LastHeartbeat: &hb, OnlyIfNotFinal: true}},
				{RunID: "r", Machine: "gone", Update: store.MachineUpdate{LastHeartbeat: &hb}},
			})
			if len(errs) != 2 || errs[0] != nil || !errors.Is(errs[1], store.ErrNotFound) {
				t.Fatalf("machine updates: %v, want nil and not found", errs)
			}
			if got, gotMachines := batches(); got != tc.wantBatches || gotMachines != tc.wantBatches {
				t.Fatalf("the store got %d batches of output and %d of machine updates, want %d of each", got, gotMachines, tc.wantBatches)
			}
			wantLines(t, scrape(t, m), `saltpeter_store_write_seconds_count{op="append_output_batch"} 1`,
				`saltpeter_store_write_seconds_count{op="update_machines"} 1`)
		})
	}
}

package metrics

import (
	"context"
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
		`saltpeter_notifications_total{notifier="ops",result="delivered"} 1`,
		`saltpeter_notifications_total{notifier="ops",result="retry"} 2`,
		`saltpeter_store_write_seconds_count{op="create_run"} 1`,
	)
}

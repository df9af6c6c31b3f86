package sdktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestStore runs the store conformance suite against stores made by newStore, one
// fresh, empty store per subtest. newStore may register cleanups on t.
func TestStore(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGet", testCreateAndGet},
		{"AddMachines", testAddMachines},
		{"UpdateRun", testUpdateRun},
		{"UpdateMachine", testUpdateMachine},
		{"AppendOutput", testAppendOutput},
		{"ReadOutput", testReadOutput},
		{"ListRuns", testListRuns},
		{"LastRuns", testLastRuns},
		{"LastRunsManyMachines", testLastRunsManyMachines},
		{"Overrides", testOverrides},
		{"Maintenance", testMaintenance},
		{"OutputCap", testOutputCap},
		{"Fires", testFires},
		{"FireRun", testFireRun},
		{"FireBatch", testFireBatch},
		{"GetRunBatch", testGetRunBatch},
		{"UpdateRunBatch", testUpdateRunBatch},
		{"LastFires", testLastFires},
		{"PruneRuns", testPruneRuns},
		{"NotificationsEnqueue", testEnqueueNotifications},
		{"NotificationsWithUpdateRun", testNotificationsWithUpdateRun},
		{"NotificationsClaim", testClaimNotifications},
		{"NotificationsFinish", testFinishNotification},
		{"NotificationsList", testListNotifications},
		{"NotificationsPrune", testPruneNotifications},
		{"NotificationsClaimRace", testClaimRace},
		{"AuditAppend", testAuditAppend},
		{"AuditList", testAuditList},
		{"AuditPaging", testAuditPaging},
		{"AuditPrune", testAuditPrune},
		{"AuditConcurrent", testAuditConcurrent},
		{"ConcurrentAppend", testConcurrentAppend},
		{"CancelledContext", testCancelledContext},
		{"PingClose", testPingClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

func mustCreate(t *testing.T, s store.Store, id string, machines ...string) {
	t.Helper()
	run := store.Run{ID: id, Job: "backup", Trigger: store.TriggerSchedule,
		ScheduledFor: t0, StartedAt: t0, Status: store.StatusRunning}
	for _, m := range machines {
		run.Machines = append(run.Machines, store.Machine{Machine: m})
	}
	if err := s.CreateRun(context.Background(), run); err != nil {
		t.Fatalf("CreateRun(%s): %v", id, err)
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

func machineOf(t *testing.T, r store.Run, name string) store.Machine {
	t.Helper()
	for _, m := range r.Machines {
		if m.Machine == name {
			return m
		}
	}
	t.Fatalf("run %s has no machine %s (has %d)", r.ID, name, len(r.Machines))
	return store.Machine{}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: unexpected error %v", what, err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testCreateAndGet(t *testing.T, s store.Store) {
	ctx := context.Background()
	spec := []byte(`{"command":"true"}`)
	run := store.Run{
		ID: "r1", Job: "backup", Trigger: store.TriggerManual, ScheduledFor: t0,
		StartedAt: t0, Status: store.StatusRunning, RequestedBy: "alice", Spec: spec,
		Machines: []store.Machine{{Machine: "a"}, {Machine: "b", Status: store.StatusSkipped, Protocol: 2}},
	}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatalf("CreateRun: %v", err)
	}
	spec[0] = 'X' // the store must have kept its own copy
	got := mustGet(t, s, "r1")
	if got.Job != "backup" || got.Trigger != store.TriggerManual || !got.ScheduledFor.Equal(t0) ||
		!got.StartedAt.Equal(t0) || got.Status != store.StatusRunning || got.RequestedBy != "alice" {
		t.Errorf("GetRun = %+v", got)
	}
	if string(got.Spec) != `{"command":"true"}` {
		t.Errorf("Spec = %q", got.Spec)
	}
	if len(got.Machines) != 2 || got.Machines[0].Machine != "a" || got.Machines[1].Machine != "b" {
		t.Fatalf("Machines = %+v, want a, b in order", got.Machines)
	}
	if a := got.Machines[0]; a.Status != store.StatusPending || a.RunID != "r1" || a.NextSeq != 0 || a.ExitCode != nil {
		t.Errorf("machine a = %+v, want pending of r1", a)
	}
	if b := got.Machines[1]; b.Status != store.StatusSkipped || b.Protocol != 2 {
		t.Errorf("machine b = %+v, want skipped protocol 2", b)
	}
	// A returned run is a copy.
	got.Spec[0] = 'Y'
	got.Machines[0].Status = store.StatusFailed
	again := mustGet(t, s, "r1")
	if again.Spec[0] != '{' || again.Machines[0].Status != store.StatusPending {
		t.Errorf("GetRun result aliases the store: %+v", again)
	}

	cases := []struct {
		name string
		run  store.Run
		want error
	}{
		{"duplicate id", store.Run{ID: "r1", Job: "x"}, store.ErrExists},
		{"duplicate machine", store.Run{ID: "r2", Job: "x", Machines: []store.Machine{{Machine: "m"}, {Machine: "m"}}}, store.ErrExists},
	}
	for _, c := range cases {
		wantErr(t, "CreateRun "+c.name, s.CreateRun(ctx, c.run), c.want)
	}
	if _, err := s.GetRun(ctx, "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateRun left a run behind: %v", err)
	}
	_, err := s.GetRun(ctx, "nope")
	wantErr(t, "GetRun unknown", err, store.ErrNotFound)
}

func testAddMachines(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	if err := s.AddMachines(ctx, "r1", []store.Machine{{Machine: "a"}, {Machine: "b", Status: store.StatusCancelled}}); err != nil {
		t.Fatalf("AddMachines: %v", err)
	}
	cases := []struct {
		name     string
		run      string
		machines []store.Machine
		want     error
	}{
		{"unknown run", "nope", []store.Machine{{Machine: "a"}}, store.ErrNotFound},
		{"existing machine", "r1", []store.Machine{{Machine: "c"}, {Machine: "a"}}, store.ErrExists},
	}
	for _, c := range cases {
		wantErr(t, "AddMachines "+c.name, s.AddMachines(ctx, c.run, c.machines), c.want)
	}
	r := mustGet(t, s, "r1")
	if len(r.Machines) != 2 {
		t.Fatalf("machines = %+v, want a and b only (a refused add adds none)", r.Machines)
	}
	if a := machineOf(t, r, "a"); a.Status != store.StatusPending {
		t.Errorf("a status %q, want pending", a.Status)
	}
	if b := machineOf(t, r, "b"); b.Status != store.StatusCancelled {
		t.Errorf("b status %q, want cancelled", b.Status)
	}
}

func testUpdateRun(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1")
	t1 := t0.Add(time.Hour)
	err := s.UpdateRun(ctx, "r1", store.RunUpdate{Status: ptr(store.StatusKilled), FinishedAt: &t1,
		KilledBy: ptr("bob"), KilledAt: &t1, Reason: ptr("kill")})
	wantErr(t, "UpdateRun", err, nil)
	r := mustGet(t, s, "r1")
	if r.Status != store.StatusKilled || !r.FinishedAt.Equal(t1) || r.KilledBy != "bob" ||
		!r.KilledAt.Equal(t1) || r.Reason != "kill" || !r.StartedAt.Equal(t0) || r.Job != "backup" {
		t.Errorf("after UpdateRun: %+v", r)
	}
	wantErr(t, "UpdateRun unknown", s.UpdateRun(ctx, "nope", store.RunUpdate{Status: ptr("x")}), store.ErrNotFound)

	// Actions accumulate in order, and a read copy does not alias them.
	acts := []store.Action{
		{Kind: "signal", Signal: "SIGSTOP", By: "ops", At: t0.Add(time.Minute)},
		{Kind: "kill", Machine: "web1", By: "alice", At: t1},
	}
	for _, a := range acts {
		wantErr(t, "UpdateRun AddAction", s.UpdateRun(ctx, "r1", store.RunUpdate{AddAction: &a}), nil)
	}
	got := mustGet(t, s, "r1").Actions
	if len(got) != 2 || got[0].Signal != "SIGSTOP" || got[0].By != "ops" || !got[0].At.Equal(acts[0].At) ||
		got[1].Kind != "kill" || got[1].Machine != "web1" || got[1].By != "alice" {
		t.Fatalf("actions after two AddAction: %+v", got)
	}
	got[0].By = "mallory"
	if again := mustGet(t, s, "r1").Actions; again[0].By != "ops" {
		t.Fatalf("a read copy aliases the stored actions: %+v", again)
	}
}

func testUpdateMachine(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "a")
	t1 := t0.Add(time.Minute)
	type check func(t *testing.T, m store.Machine)
	steps := []struct {
		name    string
		run, m  string
		u       store.MachineUpdate
		wantErr error
		check   check
	}{
		{"running", "r1", "a", store.MachineUpdate{Status: ptr(store.StatusRunning), PID: ptr(42),
			StartedAt: &t0, WrapperVersion: ptr("2.0"), Protocol: ptr(2), OnlyIfNotFinal: true}, nil,
			func(t *testing.T, m store.Machine) {
				if m.Status != store.StatusRunning || m.PID != 42 || !m.StartedAt.Equal(t0) ||
					m.WrapperVersion != "2.0" || m.Protocol != 2 {
					t.Errorf("%+v", m)
				}
			}},
		{"heartbeat keeps the rest", "r1", "a", store.MachineUpdate{LastHeartbeat: &t1, DispatchedAt: &t0, ConnectedAt: &t1}, nil,
			func(t *testing.T, m store.Machine) {
				if !m.LastHeartbeat.Equal(t1) || m.PID != 42 || m.Status != store.StatusRunning ||
					!m.DispatchedAt.Equal(t0) || !m.ConnectedAt.Equal(t1) {
					t.Errorf("%+v", m)
				}
			}},
		{"lost", "r1", "a", store.MachineUpdate{Status: ptr(store.StatusLost), ExitCode: ptr(253),
			Reason: ptr("heartbeat lost"), FinishedAt: &t1, OnlyIfNotFinal: true}, nil,
			func(t *testing.T, m store.Machine) {
				if m.Status != store.StatusLost || m.ExitCode == nil || *m.ExitCode != 253 {
					t.Errorf("%+v", m)
				}
			}},
		{"final refuses", "r1", "a", store.MachineUpdate{Status: ptr(store.StatusSucceeded), ExitCode: ptr(0),
			OnlyIfNotFinal: true}, store.ErrFinal,
			func(t *testing.T, m store.Machine) {
				if m.Status != store.StatusLost || *m.ExitCode != 253 {
					t.Errorf("a refused update changed the machine: %+v", m)
				}
			}},
		{"final refuses with nothing to set", "r1", "a", store.MachineUpdate{OnlyIfNotFinal: true}, store.ErrFinal, nil},
		{"late beside", "r1", "a", store.MachineUpdate{LateExitCode: ptr(0), LateReason: ptr("exit"),
			SignalName: ptr(""), Error: ptr("")}, nil,
			func(t *testing.T, m store.Machine) {
				if m.Status != store.StatusLost || *m.ExitCode != 253 || m.LateExitCode == nil ||
					*m.LateExitCode != 0 || m.LateReason != "exit" {
					t.Errorf("%+v", m)
				}
			}},
		{"unknown run", "nope", "a", store.MachineUpdate{PID: ptr(1)}, store.ErrNotFound, nil},
		{"unknown machine", "r1", "nope", store.MachineUpdate{PID: ptr(1)}, store.ErrNotFound, nil},
	}
	for _, st := range steps {
		err := s.UpdateMachine(ctx, st.run, st.m, st.u)
		wantErr(t, "UpdateMachine "+st.name, err, st.wantErr)
		if st.check != nil {
			t.Run(st.name, func(t *testing.T) { st.check(t, machineOf(t, mustGet(t, s, "r1"), "a")) })
		}
	}
	// The caller's pointers are not kept.
	code := 7
	if err := s.UpdateMachine(ctx, "r1", "a", store.MachineUpdate{ExitCode: &code}); err != nil {
		t.Fatal(err)
	}
	code = 9
	if m := machineOf(t, mustGet(t, s, "r1"), "a"); *m.ExitCode != 7 {
		t.Errorf("exit code %d, want 7: the store aliases the caller's pointer", *m.ExitCode)
	}
}

func testAppendOutput(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "a", "b")
	steps := []struct {
		name     string
		machine  string
		seq      int64
		data     string
		wantNext int64
		wantErr  error
	}{
		{"first", "a", 0, "hello ", 1, nil},
		{"second", "a", 1, "world", 2, nil},
		{"duplicate", "a", 0, "XXXX", 2, nil},
		{"duplicate last", "a", 1, "YYYY", 2, nil},
		{"gap", "a", 5, "ZZ", 2, store.ErrOutOfOrder},
		{"next after gap", "a", 2, "!", 3, nil},
		{"other machine independent", "b", 0, "b0", 1, nil},
		{"empty chunk counts", "a", 3, "", 4, nil},
		{"unknown machine", "nope", 0, "x", 0, store.ErrNotFound},
	}
	for _, st := range steps {
		next, err := s.AppendOutput(ctx, "r1", st.machine, store.Chunk{Seq: st.seq, Stream: "stdout", Data: []byte(st.data), At: t0})
		wantErr(t, "AppendOutput "+st.name, err, st.wantErr)
		if st.wantErr != store.ErrNotFound && next != st.wantNext {
			t.Errorf("AppendOutput %s: next %d, want %d", st.name, next, st.wantNext)
		}
	}
	_, err := s.AppendOutput(ctx, "nope", "a", store.Chunk{Seq: 0, Stream: "stdout"})
	wantErr(t, "AppendOutput unknown run", err, store.ErrNotFound)

	r := mustGet(t, s, "r1")
	a := machineOf(t, r, "a")
	if a.NextSeq != 4 || a.OutputBytes != int64(len("hello world!")) {
		t.Errorf("a: next_seq %d output_bytes %d, want 4 and 12", a.NextSeq, a.OutputBytes)
	}
	out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a"})
	if err != nil || string(out.Data) != "hello world!" || out.Total != 12 || out.Next != 12 {
		t.Errorf("ReadOutput = %q, next %d, total %d, %v", out.Data, out.Next, out.Total, err)
	}
	// The stored bytes are a copy.
	buf := []byte("abc")
	if _, err := s.AppendOutput(ctx, "r1", "b", store.Chunk{Seq: 1, Stream: "stdout", Data: buf}); err != nil {
		t.Fatal(err)
	}
	buf[0] = 'X'
	out, _ = s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "b"})
	if string(out.Data) != "b0abc" {
		t.Errorf("b output %q, want b0abc", out.Data)
	}
	// A final machine still takes output (a lost wrapper's late chunks).
	if err := s.UpdateMachine(ctx, "r1", "b", store.MachineUpdate{Status: ptr(store.StatusLost)}); err != nil {
		t.Fatal(err)
	}
	if next, err := s.AppendOutput(ctx, "r1", "b", store.Chunk{Seq: 2, Stream: "stderr", Data: []byte("late")}); err != nil || next != 3 {
		t.Errorf("append to a lost machine: %d, %v", next, err)
	}
}

func testReadOutput(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "a", "empty")
	chunks := []store.Chunk{
		{Seq: 0, Stream: "stdout", Data: []byte("out1\n")},
		{Seq: 1, Stream: "stderr", Data: []byte("err1\n")},
		{Seq: 2, Stream: "stdout", Data: []byte{0xff, 0xfe, '\n'}},
		{Seq: 3, Stream: "system", Data: []byte("[note]\n")},
	}
	for _, c := range chunks {
		if _, err := s.AppendOutput(ctx, "r1", "a", c); err != nil {
			t.Fatalf("AppendOutput %d: %v", c.Seq, err)
		}
	}
	all := "out1\nerr1\n\xff\xfe\n[note]\n"
	cases := []struct {
		name      string
		q         store.OutputQuery
		want      string
		wantNext  int64
		wantTotal int64
		wantErr   error
	}{
		{"all", store.OutputQuery{}, all, 20, 20, nil},
		{"stdout", store.OutputQuery{Stream: "stdout"}, "out1\n\xff\xfe\n", 8, 8, nil},
		{"stderr", store.OutputQuery{Stream: "stderr"}, "err1\n", 5, 5, nil},
		{"system", store.OutputQuery{Stream: "system"}, "[note]\n", 7, 7, nil},
		{"unknown stream", store.OutputQuery{Stream: "nope"}, "", 0, 0, nil},
		{"offset mid chunk", store.OutputQuery{Offset: 3}, all[3:], 20, 20, nil},
		{"offset on boundary", store.OutputQuery{Offset: 5}, all[5:], 20, 20, nil},
		{"offset stream", store.OutputQuery{Stream: "stdout", Offset: 6}, "\xfe\n", 8, 8, nil},
		{"offset at end", store.OutputQuery{Offset: 20}, "", 20, 20, nil},
		{"offset past end", store.OutputQuery{Offset: 1000}, "", 1000, 20, nil},
		{"negative offset", store.OutputQuery{Offset: -4}, all, 20, 20, nil},
		{"limit", store.OutputQuery{Offset: 2, Limit: 6}, all[2:8], 8, 20, nil},
		{"limit past end", store.OutputQuery{Offset: 20, Limit: 100}, all[20:], 20, 20, nil},
		{"empty machine", store.OutputQuery{Machine: "empty"}, "", 0, 0, nil},
		{"unknown machine", store.OutputQuery{Machine: "nope"}, "", 0, 0, store.ErrNotFound},
		{"unknown run", store.OutputQuery{RunID: "nope"}, "", 0, 0, store.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			if q.RunID == "" {
				q.RunID = "r1"
			}
			if q.Machine == "" {
				q.Machine = "a"
			}
			out, err := s.ReadOutput(ctx, q)
			wantErr(t, "ReadOutput", err, c.wantErr)
			if c.wantErr != nil {
				return
			}
			if !bytes.Equal(out.Data, []byte(c.want)) || out.Next != c.wantNext || out.Total != c.wantTotal {
				t.Errorf("ReadOutput = %q, next %d, total %d; want %q, %d, %d",
					out.Data, out.Next, out.Total, c.want, c.wantNext, c.wantTotal)
			}
		})
	}
}

func testListRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	runs := []store.Run{
		{ID: "old", Job: "backup", StartedAt: t0, Status: store.StatusSucceeded},
		{ID: "mid", Job: "report", StartedAt: t0.Add(time.Hour), Status: store.StatusFailed},
		{ID: "new", Job: "backup", StartedAt: t0.Add(2 * time.Hour), Status: store.StatusRunning},
		{ID: "pending", Job: "backup", ScheduledFor: t0.Add(3 * time.Hour), Status: store.StatusPending},
		{ID: "tie", Job: "report", StartedAt: t0.Add(time.Hour), Status: store.StatusSucceeded},
	}
	for _, r := range runs {
		r.Machines = []store.Machine{{Machine: "m"}}
		if err := s.CreateRun(ctx, r); err != nil {
			t.Fatalf("CreateRun %s: %v", r.ID, err)
		}
	}
	cases := []struct {
		name string
		f    store.RunFilter
		want []string
	}{
		{"all newest first", store.RunFilter{}, []string{"pending", "new", "tie", "mid", "old"}},
		{"job", store.RunFilter{Job: "backup"}, []string{"pending", "new", "old"}},
		{"status", store.RunFilter{Status: store.StatusSucceeded}, []string{"tie", "old"}},
		{"active", store.RunFilter{Active: true}, []string{"pending", "new"}},
		{"before", store.RunFilter{Before: t0.Add(2 * time.Hour)}, []string{"tie", "mid", "old"}},
		{"limit", store.RunFilter{Limit: 2}, []string{"pending", "new"}},
		{"combined", store.RunFilter{Job: "report", Before: t0.Add(90 * time.Minute), Limit: 1}, []string{"tie"}},
		{"none", store.RunFilter{Job: "nope"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ListRuns(ctx, c.f)
			if err != nil {
				t.Fatalf("ListRuns: %v", err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
				if len(r.Machines) != 1 {
					t.Errorf("run %s listed with %d machines, want 1", r.ID, len(r.Machines))
				}
			}
			if fmt.Sprint(ids) != fmt.Sprint(c.want) {
				t.Errorf("ListRuns = %v, want %v", ids, c.want)
			}
		})
	}
}

func testOverrides(t *testing.T, s store.Store) {
	ctx := context.Background()
	if os, err := s.Overrides(ctx); err != nil || len(os) != 0 {
		t.Fatalf("Overrides on empty store = %v, %v", os, err)
	}
	for _, o := range []store.JobOverride{
		{Job: "zeta", Enabled: false, SetBy: "alice", SetAt: t0},
		{Job: "alpha", Enabled: true, SetBy: "bob", SetAt: t0},
		{Job: "zeta", Enabled: true, SetBy: "carol", SetAt: t0.Add(time.Hour)},
	} {
		if err := s.SetOverride(ctx, o); err != nil {
			t.Fatalf("SetOverride %s: %v", o.Job, err)
		}
	}
	got, err := s.Overrides(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Job != "alpha" || got[1].Job != "zeta" || !got[1].Enabled ||
		got[1].SetBy != "carol" || !got[1].SetAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("Overrides = %+v", got)
	}
	if err := s.DeleteOverride(ctx, "zeta"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteOverride(ctx, "never-set"); err != nil {
		t.Errorf("DeleteOverride of a job without one: %v, want nil", err)
	}
	got, _ = s.Overrides(ctx)
	if len(got) != 1 || got[0].Job != "alpha" {
		t.Errorf("after delete: %+v", got)
	}
}

func testConcurrentAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	const machines, chunks = 4, 50
	var names []string
	for i := range machines {
		names = append(names, fmt.Sprint("m", i))
	}
	mustCreate(t, s, "r1", names...)
	var wg sync.WaitGroup
	for _, m := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range int64(chunks) {
				// Every chunk twice, as a resuming wrapper might.
				for range 2 {
					if _, err := s.AppendOutput(ctx, "r1", m, store.Chunk{Seq: seq, Stream: "stdout", Data: []byte{byte('a' + seq%26)}}); err != nil {
						t.Errorf("append %s %d: %v", m, seq, err)
						return
					}
				}
				_ = s.UpdateMachine(ctx, "r1", m, store.MachineUpdate{LastHeartbeat: &t0})
				_, _ = s.GetRun(ctx, "r1")
			}
		}()
	}
	wg.Wait()
	for _, m := range mustGet(t, s, "r1").Machines {
		if m.NextSeq != chunks || m.OutputBytes != chunks {
			t.Errorf("%s: next %d bytes %d, want %d each", m.Machine, m.NextSeq, m.OutputBytes, chunks)
		}
	}
}

func testCancelledContext(t *testing.T, s store.Store) {
	mustCreate(t, s, "r1", "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetRun(ctx, "r1"); err == nil {
		t.Errorf("GetRun with a cancelled context succeeded")
	}
	if _, err := s.AppendOutput(ctx, "r1", "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("x")}); err == nil {
		t.Errorf("AppendOutput with a cancelled context succeeded")
	}
	if m := machineOf(t, mustGet(t, s, "r1"), "a"); m.NextSeq != 0 {
		t.Errorf("a cancelled append stored a chunk")
	}
}

func testPingClose(t *testing.T, s store.Store) {
	ctx := context.Background()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func testFires(t *testing.T, s store.Store) {
	ctx := context.Background()
	slot := t0.Add(90 * time.Second).Add(123 * time.Nanosecond)
	if last, err := s.LastFire(ctx, "backup"); err != nil || !last.IsZero() {
		t.Fatalf("LastFire before any fire = %v, %v; want zero", last, err)
	}
	for i, c := range []struct {
		job, run string
		slot     time.Time
		want     bool
	}{
		{"backup", "r1", slot, true},
		{"backup", "r2", slot, false},                               // the same slot again: refused
		{"backup", "r3", slot.In(time.FixedZone("X", 3600)), false}, // the same instant in another zone
		{"other", "r4", slot, true},                                 // another job's slot
		{"backup", "r5", slot.Add(time.Second), true},
		{"backup", "r6", slot.Add(-time.Minute), true}, // an older slot (catch-up) is still new
	} {
		got, err := s.RecordFire(ctx, c.job, c.slot, c.run)
		if err != nil || got != c.want {
			t.Fatalf("fire %d: RecordFire(%s, %s) = %v, %v; want %v", i, c.job, c.slot, got, err, c.want)
		}
	}
	last, err := s.LastFire(ctx, "backup")
	if err != nil || !last.Equal(slot.Add(time.Second)) {
		t.Fatalf("LastFire = %v, %v; want %v (the latest slot, not the latest recorded)", last, err, slot.Add(time.Second))
	}
	// Many cores racing for one slot: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan bool, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.RecordFire(ctx, "race", slot, fmt.Sprintf("run-%d", i))
			if err != nil {
				t.Errorf("racing RecordFire: %v", err)
			}
			wins <- ok
		}()
	}
	wg.Wait()
	close(wins)
	n := 0
	for ok := range wins {
		if ok {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d of 8 racing RecordFire calls won the same slot, want 1", n)
	}
}

func testPruneRuns(t *testing.T, s store.Store) {
	ctx := context.Background()
	finish := func(id string, at time.Time) {
		t.Helper()
		st := store.StatusSucceeded
		if err := s.UpdateRun(ctx, id, store.RunUpdate{Status: &st, FinishedAt: &at}); err != nil {
			t.Fatalf("finish %s: %v", id, err)
		}
	}
	mustCreate(t, s, "old", "a")
	mustCreate(t, s, "old2")
	mustCreate(t, s, "recent", "a")
	mustCreate(t, s, "running", "a") // old, but not finished: never pruned
	if _, err := s.AppendOutput(ctx, "old", "a", store.Chunk{Seq: 0, Stream: "stdout", Data: []byte("bye")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordFire(ctx, "backup", t0, "old"); err != nil {
		t.Fatal(err)
	}
	finish("old", t0.Add(time.Hour))
	finish("old2", t0.Add(2*time.Hour))
	finish("recent", t0.Add(48*time.Hour))

	n, err := s.PruneRuns(ctx, t0.Add(24*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PruneRuns = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"old", "old2"} {
		if _, err := s.GetRun(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned run %s: GetRun = %v, want ErrNotFound", id, err)
		}
	}
	if _, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "old", Machine: "a"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("pruned output: ReadOutput = %v, want ErrNotFound", err)
	}
	for _, id := range []string{"recent", "running"} {
		if _, err := s.GetRun(ctx, id); err != nil {
			t.Errorf("run %s should stay: %v", id, err)
		}
	}
	if last, err := s.LastFire(ctx, "backup"); err != nil || !last.Equal(t0) {
		t.Errorf("fire records must survive pruning: LastFire = %v, %v", last, err)
	}
	if n, err := s.PruneRuns(ctx, t0.Add(24*time.Hour)); err != nil || n != 0 {
		t.Errorf("second PruneRuns = %d, %v; want 0", n, err)
	}
}

// note is a notification of the outbox tests, created at created.
func note(id string, created time.Time) store.Notification {
	return store.Notification{ID: id, Notifier: "hook", Job: "backup", RunID: "r-" + id, Kind: "run_finished",
		Event: []byte(`{"id":"` + id + `"}`), CreatedAt: created}
}

func noteIDs(ns []store.Notification) []string {
	ids := []string{}
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	return ids
}

func mustEnqueue(t *testing.T, s store.Store, ns ...store.Notification) {
	t.Helper()
	if err := s.EnqueueNotifications(context.Background(), ns); err != nil {
		t.Fatalf("EnqueueNotifications(%v): %v", noteIDs(ns), err)
	}
}

// notes lists every notification by id.
func notes(t *testing.T, s store.Store) map[string]store.Notification {
	t.Helper()
	ns, err := s.ListNotifications(context.Background(), store.NotificationFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("ListNotifications: %v", err)
	}
	out := map[string]store.Notification{}
	for _, n := range ns {
		out[n.ID] = n
	}
	return out
}

func mustNote(t *testing.T, s store.Store, id string) store.Notification {
	t.Helper()
	n, ok := notes(t, s)[id]
	if !ok {
		t.Fatalf("notification %s is not stored", id)
	}
	return n
}

func mustClaim(t *testing.T, s store.Store, r store.ClaimRequest) []string {
	t.Helper()
	ns, err := s.ClaimNotifications(context.Background(), r)
	if err != nil {
		t.Fatalf("ClaimNotifications(%s at %s): %v", r.Owner, r.Now, err)
	}
	return noteIDs(ns)
}

func testEnqueueNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	created := t0.Add(123 * time.Nanosecond)
	first := note("n1", created)
	first.State, first.Attempts, first.LastError, first.DeliveredAt = store.NotificationDelivered, 5, "x", t0
	later := note("n2", created.Add(time.Second))
	later.DueAt = t0.Add(time.Hour).In(time.FixedZone("X", 3600))
	mustEnqueue(t, s, first, later)
	first.Event[2] = 'X' // the store must have kept its own copy

	got := notes(t, s)
	n1 := got["n1"]
	if n1.Notifier != "hook" || n1.Job != "backup" || n1.RunID != "r-n1" || n1.Kind != "run_finished" ||
		string(n1.Event) != `{"id":"n1"}` || !n1.CreatedAt.Equal(created) || !n1.DueAt.Equal(created) {
		t.Errorf("stored n1 = %+v; want it as enqueued, due when created", n1)
	}
	if n1.State != store.NotificationPending || n1.Attempts != 0 || n1.LastError != "" || !n1.DeliveredAt.IsZero() {
		t.Errorf("stored n1 = %+v; want pending and untried whatever the caller set", n1)
	}
	if n2 := got["n2"]; !n2.DueAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("n2 due %v, want %v", n2.DueAt, t0.Add(time.Hour))
	}
	// A returned notification is a copy.
	n1.Event[2] = 'Y'
	if again := mustNote(t, s, "n1"); string(again.Event) != `{"id":"n1"}` {
		t.Errorf("ListNotifications result aliases the store: %q", again.Event)
	}

	// An id already stored is left as it is, without an error: a retried
	// call, or another core's, never duplicates. Within a call the first
	// wins too.
	changed := note("n1", t0.Add(time.Hour))
	changed.Notifier, changed.Event = "other", []byte(`{}`)
	twice := note("n3", t0)
	twice.Kind = "second"
	mustEnqueue(t, s, changed, note("n3", t0), twice)
	got = notes(t, s)
	if len(got) != 3 {
		t.Fatalf("stored %v, want n1, n2, n3 once each", noteIDs(slices.Collect(maps.Values(got))))
	}
	if n := got["n1"]; n.Notifier != "hook" || !n.CreatedAt.Equal(created) || string(n.Event) != `{"id":"n1"}` {
		t.Errorf("n1 after enqueueing its id again = %+v; want the first one kept", n)
	}
	if n := got["n3"]; n.Kind != "run_finished" {
		t.Errorf("n3 kind %q: want the first of two in one call", n.Kind)
	}

	// A refused notification refuses the call: nothing is stored.
	cases := []struct {
		name string
		bad  store.Notification
	}{
		{"empty id", store.Notification{Notifier: "hook", CreatedAt: t0}},
		{"empty notifier", store.Notification{ID: "bad", CreatedAt: t0}},
		{"no created_at", store.Notification{ID: "bad", Notifier: "hook"}},
	}
	for _, c := range cases {
		if err := s.EnqueueNotifications(ctx, []store.Notification{note("n4", t0), c.bad}); err == nil {
			t.Errorf("EnqueueNotifications with %s succeeded", c.name)
		}
	}
	if _, ok := notes(t, s)["n4"]; ok {
		t.Errorf("a refused EnqueueNotifications stored n4")
	}
	if err := s.EnqueueNotifications(ctx, nil); err != nil {
		t.Errorf("EnqueueNotifications of none: %v", err)
	}
}

func testNotificationsWithUpdateRun(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "a")
	t1 := t0.Add(time.Hour)
	final := store.RunUpdate{Status: ptr(store.StatusSucceeded), FinishedAt: &t1,
		Notifications: []store.Notification{note("a", t1), note("b", t1)}}
	// The second call is a retry of the first: nothing is stored twice.
	for i := range 2 {
		if err := s.UpdateRun(ctx, "r1", final); err != nil {
			t.Fatalf("UpdateRun %d with notifications: %v", i, err)
		}
	}
	if r := mustGet(t, s, "r1"); r.Status != store.StatusSucceeded {
		t.Errorf("run status %q, want succeeded", r.Status)
	}
	got := notes(t, s)
	if len(got) != 2 || got["a"].State != store.NotificationPending || got["b"].RunID != "r-b" {
		t.Errorf("after UpdateRun twice: %+v; want a and b once each, pending", got)
	}
	// Both or neither: an unknown run enqueues nothing, and a refused
	// notification updates nothing.
	err := s.UpdateRun(ctx, "nope", store.RunUpdate{Status: ptr(store.StatusFailed),
		Notifications: []store.Notification{note("c", t1)}})
	wantErr(t, "UpdateRun of an unknown run with notifications", err, store.ErrNotFound)
	err = s.UpdateRun(ctx, "r1", store.RunUpdate{Status: ptr(store.StatusFailed), Reason: ptr("again"),
		Notifications: []store.Notification{note("d", t1), {ID: "bad"}}})
	if err == nil {
		t.Errorf("UpdateRun with a notification without a notifier succeeded")
	}
	if r := mustGet(t, s, "r1"); r.Status != store.StatusSucceeded || r.Reason != "" {
		t.Errorf("a refused UpdateRun changed the run: %+v", r)
	}
	if got := notes(t, s); len(got) != 2 {
		t.Errorf("refused UpdateRun calls enqueued: %v", noteIDs(slices.Collect(maps.Values(got))))
	}
}

func testClaimNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	due := func(id string, at time.Time) store.Notification {
		n := note(id, t0)
		n.DueAt = at
		return n
	}
	// second and third are due at once: enqueue order breaks the tie.
	mustEnqueue(t, s, due("late", t0.Add(10*time.Minute)), due("second", t0.Add(2*time.Minute)),
		due("first", t0.Add(time.Minute)), due("third", t0.Add(2*time.Minute)), due("future", t0.Add(time.Hour)))
	now := t0.Add(5 * time.Minute)
	lease := time.Minute
	steps := []struct {
		name string
		r    store.ClaimRequest
		want []string
	}{
		{"nothing due yet", store.ClaimRequest{Owner: "A", Now: t0, Lease: lease}, nil},
		{"oldest due first, limited", store.ClaimRequest{Owner: "A", Now: now, Lease: lease, Limit: 2}, []string{"first", "second"}},
		{"another owner gets the rest due", store.ClaimRequest{Owner: "B", Now: now, Lease: lease, Limit: 10}, []string{"third"}},
		{"a lease excludes its owner too", store.ClaimRequest{Owner: "A", Now: now.Add(59 * time.Second), Lease: lease}, nil},
		{"expired leases go to anyone", store.ClaimRequest{Owner: "C", Now: now.Add(lease), Lease: lease, Limit: 2}, []string{"first", "second"}},
		{"and to their owner", store.ClaimRequest{Owner: "B", Now: now.Add(lease), Lease: lease}, []string{"third"}},
		{"later, leases never finished come back", store.ClaimRequest{Owner: "A", Now: t0.Add(time.Hour), Lease: lease},
			[]string{"first", "second", "third", "late", "future"}},
	}
	for _, st := range steps {
		if got := mustClaim(t, s, st.r); fmt.Sprint(got) != fmt.Sprint(noteIDsOf(st.want)) {
			t.Errorf("%s: %s claimed %v, want %v", st.name, st.r.Owner, got, st.want)
		}
	}
	// What a claim returns is the stored notification.
	mustEnqueue(t, s, due("whole", t0))
	ns, err := s.ClaimNotifications(ctx, store.ClaimRequest{Owner: "A", Now: t0.Add(time.Hour + time.Second), Lease: lease})
	if err != nil || len(ns) != 1 {
		t.Fatalf("claim of whole = %+v, %v", ns, err)
	}
	if n := ns[0]; n.ID != "whole" || n.Notifier != "hook" || string(n.Event) != `{"id":"whole"}` ||
		!n.CreatedAt.Equal(t0) || !n.DueAt.Equal(t0) || n.State != store.NotificationPending {
		t.Errorf("claimed %+v", n)
	}
	// A limit of 0 is a default, not nothing.
	for i := range 3 {
		mustEnqueue(t, s, due(fmt.Sprint("d", i), t0))
	}
	if got := mustClaim(t, s, store.ClaimRequest{Owner: "A", Now: t0.Add(time.Hour + 2*time.Second), Lease: lease}); len(got) != 3 {
		t.Errorf("claim with no limit got %v, want d0 d1 d2", got)
	}
	for _, bad := range []store.ClaimRequest{
		{Now: now, Lease: lease},
		{Owner: "A", Lease: lease},
		{Owner: "A", Now: now},
		{Owner: "A", Now: now, Lease: -time.Second},
	} {
		if _, err := s.ClaimNotifications(ctx, bad); err == nil {
			t.Errorf("ClaimNotifications(%+v) succeeded", bad)
		}
	}
}

// noteIDsOf is want as noteIDs prints it.
func noteIDsOf(want []string) []string {
	if want == nil {
		return []string{}
	}
	return want
}

func testFinishNotification(t *testing.T, s store.Store) {
	ctx := context.Background()
	for _, id := range []string{"delivered", "retry", "final", "lost", "expired"} {
		mustEnqueue(t, s, note(id, t0))
	}
	lease := time.Minute
	if got := mustClaim(t, s, store.ClaimRequest{Owner: "A", Now: t0, Lease: lease}); len(got) != 5 {
		t.Fatalf("A claimed %v, want all 5", got)
	}
	at := t0.Add(10 * time.Second)
	delivered := store.NotificationResult{Delivered: true, At: at}
	retry := store.NotificationResult{RetryAt: t0.Add(30 * time.Second), Error: "503 busy", At: at}
	final := store.NotificationResult{Final: true, Error: "410 gone", At: at}
	finish := func(id, owner string, r store.NotificationResult) error {
		return s.FinishNotification(ctx, id, owner, r)
	}

	wantErr(t, "finish delivered", finish("delivered", "A", delivered), nil)
	if n := mustNote(t, s, "delivered"); n.State != store.NotificationDelivered || !n.DeliveredAt.Equal(at) || n.Attempts != 0 {
		t.Errorf("after delivered: %+v", n)
	}
	wantErr(t, "finish retry", finish("retry", "A", retry), nil)
	if n := mustNote(t, s, "retry"); n.State != store.NotificationPending || n.Attempts != 1 ||
		n.LastError != "503 busy" || !n.DueAt.Equal(retry.RetryAt) || !n.DeliveredAt.IsZero() {
		t.Errorf("after a retry: %+v; want pending, 1 attempt, due at the retry time", n)
	}
	wantErr(t, "finish final", finish("final", "A", final), nil)
	if n := mustNote(t, s, "final"); n.State != store.NotificationFailed || n.Attempts != 1 || n.LastError != "410 gone" {
		t.Errorf("after a final failure: %+v", n)
	}

	// The same finish again (a retried call whose first try took effect)
	// answers nil and changes nothing; another finish of a finished
	// notification is refused.
	for _, c := range []struct {
		name string
		id   string
		r    store.NotificationResult
		want error
	}{
		{"delivered again", "delivered", delivered, nil},
		{"retry again", "retry", retry, nil},
		{"final again", "final", final, nil},
		{"delivered, another time", "delivered", store.NotificationResult{Delivered: true, At: at.Add(time.Second)}, store.ErrLeaseLost},
		{"delivered, then a retry", "delivered", retry, store.ErrLeaseLost},
		{"retried, then delivered", "retry", delivered, store.ErrLeaseLost},
		{"final, then a retry", "final", retry, store.ErrLeaseLost},
		{"unknown", "nope", delivered, store.ErrNotFound},
	} {
		err := finish(c.id, "A", c.r)
		wantErr(t, "FinishNotification "+c.name, err, c.want)
		if c.want == store.ErrNotFound && errors.Is(err, store.ErrLeaseLost) {
			t.Errorf("FinishNotification %s: %v; want ErrNotFound, not ErrLeaseLost", c.name, err)
		}
	}
	wantErr(t, "finish delivered by B", finish("delivered", "B", delivered), store.ErrLeaseLost)
	if n := mustNote(t, s, "retry"); n.Attempts != 1 {
		t.Errorf("a repeated retry counted again: %d attempts", n.Attempts)
	}
	if n := mustNote(t, s, "final"); n.Attempts != 1 || n.State != store.NotificationFailed {
		t.Errorf("a refused finish changed final: %+v", n)
	}

	// The retry released A's lease: it is B's once due, before A's lease
	// would have ended; the final and delivered ones never come back.
	if got := mustClaim(t, s, store.ClaimRequest{Owner: "B", Now: t0.Add(29 * time.Second), Lease: lease}); len(got) != 0 {
		t.Errorf("B claimed %v before the retry time", got)
	}
	if got := mustClaim(t, s, store.ClaimRequest{Owner: "B", Now: t0.Add(40 * time.Second), Lease: lease}); fmt.Sprint(got) != "[retry]" {
		t.Errorf("B claimed %v once the retry was due, want [retry]", got)
	}
	wantErr(t, "finish retry by A, now B's", finish("retry", "A", delivered), store.ErrLeaseLost)

	// A's lease on lost expires and B claims it: A's finish is refused
	// and changes nothing; B's goes through. Expired is an expired lease
	// nobody claimed: A may still finish it.
	if got := mustClaim(t, s, store.ClaimRequest{Owner: "B", Now: t0.Add(2 * time.Minute), Lease: lease, Limit: 1}); fmt.Sprint(got) != "[lost]" {
		t.Fatalf("B claimed %v after A's lease, want [lost]", got)
	}
	err := finish("lost", "A", delivered)
	wantErr(t, "finish after the lease was lost", err, store.ErrLeaseLost)
	wantErr(t, "a lost lease is not found", err, store.ErrNotFound)
	if n := mustNote(t, s, "lost"); n.State != store.NotificationPending || n.Attempts != 0 {
		t.Errorf("a refused finish changed lost: %+v", n)
	}
	wantErr(t, "finish lost by B", finish("lost", "B", final), nil)
	wantErr(t, "finish an expired lease nobody took", finish("expired", "A", delivered), nil)
	if n := mustNote(t, s, "expired"); n.State != store.NotificationDelivered {
		t.Errorf("expired after its finish: %+v", n)
	}
	if got := mustClaim(t, s, store.ClaimRequest{Owner: "C", Now: t0.Add(time.Hour), Lease: lease}); fmt.Sprint(got) != "[retry]" {
		t.Errorf("claim after everything = %v; want only retry (B's lease expired): finished ones never come back", got)
	}

	// A result that says nothing is refused.
	mustEnqueue(t, s, note("empty", t0))
	mustClaim(t, s, store.ClaimRequest{Owner: "D", Now: t0.Add(2 * time.Hour), Lease: lease})
	if err := finish("empty", "D", store.NotificationResult{Error: "x", At: at}); err == nil {
		t.Errorf("a retry without a retry time was accepted")
	}
	if err := finish("empty", "", delivered); err == nil {
		t.Errorf("a finish without an owner was accepted")
	}
	if n := mustNote(t, s, "empty"); n.Attempts != 0 || n.State != store.NotificationPending {
		t.Errorf("refused finishes changed empty: %+v", n)
	}
}

func testListNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	add := func(id, job string, created time.Time) {
		n := note(id, created)
		n.Job = job
		mustEnqueue(t, s, n)
	}
	add("old", "backup", t0)
	add("mid", "report", t0.Add(time.Hour))
	add("tie", "backup", t0.Add(time.Hour)) // enqueued after mid: newer
	add("new", "backup", t0.Add(2*time.Hour))
	mustClaim(t, s, store.ClaimRequest{Owner: "A", Now: t0.Add(3 * time.Hour), Lease: time.Minute})
	at := t0.Add(3 * time.Hour)
	for id, r := range map[string]store.NotificationResult{
		"old": {Final: true, Error: "gone", At: at},
		"mid": {Final: true, Error: "gone", At: at},
		"new": {Delivered: true, At: at},
	} {
		if err := s.FinishNotification(ctx, id, "A", r); err != nil {
			t.Fatalf("finish %s: %v", id, err)
		}
	}
	cases := []struct {
		name string
		f    store.NotificationFilter
		want []string
	}{
		{"all newest first", store.NotificationFilter{}, []string{"new", "tie", "mid", "old"}},
		{"failed", store.NotificationFilter{State: store.NotificationFailed}, []string{"mid", "old"}},
		{"pending", store.NotificationFilter{State: store.NotificationPending}, []string{"tie"}},
		{"job", store.NotificationFilter{Job: "backup"}, []string{"new", "tie", "old"}},
		{"limit", store.NotificationFilter{Limit: 2}, []string{"new", "tie"}},
		{"combined", store.NotificationFilter{State: store.NotificationFailed, Job: "backup", Limit: 5}, []string{"old"}},
		{"none", store.NotificationFilter{Job: "nope"}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.ListNotifications(ctx, c.f)
			if err != nil {
				t.Fatalf("ListNotifications: %v", err)
			}
			if fmt.Sprint(noteIDs(got)) != fmt.Sprint(c.want) {
				t.Errorf("ListNotifications = %v, want %v", noteIDs(got), c.want)
			}
		})
	}
}

func testPruneNotifications(t *testing.T, s store.Store) {
	ctx := context.Background()
	old, recent := t0, t0.Add(48*time.Hour)
	for _, n := range []store.Notification{note("old-delivered", old), note("old-failed", old),
		note("old-pending", old), note("old-retrying", old), note("old-leased", old), note("recent-delivered", recent)} {
		mustEnqueue(t, s, n)
	}
	mustClaim(t, s, store.ClaimRequest{Owner: "A", Now: recent, Lease: time.Minute, Limit: 1000})
	at := recent.Add(time.Second)
	for id, r := range map[string]store.NotificationResult{
		"old-delivered":    {Delivered: true, At: at},
		"old-failed":       {Final: true, Error: "gone", At: at},
		"old-retrying":     {RetryAt: at.Add(time.Hour), Error: "busy", At: at},
		"recent-delivered": {Delivered: true, At: at},
	} {
		if err := s.FinishNotification(ctx, id, "A", r); err != nil {
			t.Fatalf("finish %s: %v", id, err)
		}
	}
	mustEnqueue(t, s, note("old-pending", old)) // still pending, and never claimed again here
	mustCreate(t, s, "run")
	if err := s.UpdateRun(ctx, "run", store.RunUpdate{Status: ptr(store.StatusSucceeded), FinishedAt: &old}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneRuns(ctx, t0.Add(24*time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("PruneRuns = %d, %v; want 1: the run, notifications not counted", n, err)
	}
	got := noteIDs(mustList(t, s))
	want := []string{"recent-delivered", "old-leased", "old-retrying", "old-pending"}
	if fmt.Sprint(sortedCopy(got)) != fmt.Sprint(sortedCopy(want)) {
		t.Errorf("after PruneRuns: %v; want %v (finished and old pruned, pending kept however old)", got, want)
	}
}

func mustList(t *testing.T, s store.Store) []store.Notification {
	t.Helper()
	ns, err := s.ListNotifications(context.Background(), store.NotificationFilter{Limit: 1000})
	if err != nil {
		t.Fatalf("ListNotifications: %v", err)
	}
	return ns
}

func sortedCopy(ids []string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// testClaimRace has owners claim at once from one store until nothing is
// left: each notification is claimed by exactly one of them.
func testClaimRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	const total, owners = 60, 6
	var all []store.Notification
	for i := range total {
		all = append(all, note(fmt.Sprintf("n%03d", i), t0.Add(time.Duration(i)*time.Millisecond)))
	}
	mustEnqueue(t, s, all...)
	var mu sync.Mutex
	claimedBy := map[string][]string{}
	var wg sync.WaitGroup
	for o := range owners {
		owner := fmt.Sprint("core-", o)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ns, err := s.ClaimNotifications(ctx, store.ClaimRequest{Owner: owner, Now: t0.Add(time.Minute),
					Lease: time.Hour, Limit: 3})
				if err != nil {
					t.Errorf("%s: ClaimNotifications: %v", owner, err)
					return
				}
				if len(ns) == 0 {
					return
				}
				mu.Lock()
				for _, n := range ns {
					claimedBy[n.ID] = append(claimedBy[n.ID], owner)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, n := range all {
		if got := claimedBy[n.ID]; len(got) != 1 {
			t.Errorf("%s claimed by %v, want exactly one owner", n.ID, got)
		}
	}
}

// auditAt is when the audit tests' entries happen: to the microsecond, as
// much as every store must keep (a timestamp column may keep no more).
var auditAt = t0.Add(123456 * time.Microsecond)

func auditEntry(job, by, action string, at time.Time) store.AuditEntry {
	return store.AuditEntry{At: at, By: by, Action: action, Via: "api", Job: job, Outcome: store.AuditOK}
}

func mustAppendAudit(t *testing.T, s store.Store, e store.AuditEntry) int64 {
	t.Helper()
	id, err := s.AppendAudit(context.Background(), e)
	if err != nil {
		t.Fatalf("AppendAudit(%s by %s): %v", e.Action, e.By, err)
	}
	if id <= 0 {
		t.Fatalf("AppendAudit(%s by %s) gave id %d, want a positive one", e.Action, e.By, id)
	}
	return id
}

func mustListAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditEntry {
	t.Helper()
	es, err := s.ListAudit(context.Background(), f)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", f, err)
	}
	return es
}

func auditIDs(es []store.AuditEntry) []int64 {
	ids := []int64{}
	for _, e := range es {
		ids = append(ids, e.ID)
	}
	return ids
}

// checkAudit compares every field; the time as an instant, in UTC.
func checkAudit(t *testing.T, got, want store.AuditEntry) {
	t.Helper()
	if !got.At.Equal(want.At) || got.At.Location() != time.UTC {
		t.Errorf("entry %d: At %v, want %v in UTC", want.ID, got.At, want.At)
	}
	got.At, want.At = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("entry %d:\n got %+v\nwant %+v", want.ID, got, want)
	}
}

func testAuditAppend(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("ListAudit of an empty log = %+v, %v; want none", got, err)
	}
	zone := time.FixedZone("X", -(3*3600 + 1800))
	full := store.AuditEntry{ID: 1 << 40, At: auditAt.In(zone), By: "alice", Action: store.AuditSignal, Via: "api",
		Remote: "192.0.2.7:51234", Job: "backup", RunID: "r1", Machine: "web1", Detail: "signal SIGINT, grace 30s",
		Outcome: store.AuditFailed, Error: "store unavailable"}
	bare := store.AuditEntry{At: auditAt.Add(-time.Hour), By: "core", Action: store.AuditReload, Via: "signal",
		Outcome: store.AuditOK}
	id1 := mustAppendAudit(t, s, full)
	// The caller's ID is ignored, even one the store gave already.
	bare.ID = id1
	id2 := mustAppendAudit(t, s, bare)
	bare.ID = -1
	id3 := mustAppendAudit(t, s, bare)
	if !(id1 < id2 && id2 < id3) {
		t.Fatalf("ids %d, %d, %d: want each larger than the one before", id1, id2, id3)
	}
	got := mustListAudit(t, s, store.AuditFilter{})
	if fmt.Sprint(auditIDs(got)) != fmt.Sprint([]int64{id3, id2, id1}) {
		t.Fatalf("ListAudit = %v, want %v (newest first)", auditIDs(got), []int64{id3, id2, id1})
	}
	want := full
	want.ID = id1
	checkAudit(t, got[2], want)
	want = bare
	want.ID = id2
	checkAudit(t, got[1], want)
	want.ID = id3
	checkAudit(t, got[0], want)

	if _, err := s.AppendAudit(ctx, store.AuditEntry{By: "alice", Action: store.AuditRun, Outcome: store.AuditOK}); err == nil {
		t.Error("AppendAudit of an entry without a time succeeded")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.AppendAudit(cancelled, full); err == nil {
		t.Error("AppendAudit with a cancelled context succeeded")
	}
	if _, err := s.ListAudit(cancelled, store.AuditFilter{}); err == nil {
		t.Error("ListAudit with a cancelled context succeeded")
	}
	if got := mustListAudit(t, s, store.AuditFilter{}); len(got) != 3 {
		t.Errorf("ListAudit after refused appends = %v, want the 3 entries only", auditIDs(got))
	}
}

func testAuditList(t *testing.T, s store.Store) {
	log := []struct{ job, by, action string }{
		{"backup", "alice", store.AuditRun},
		{"report", "bob", store.AuditKill},
		{"backup", "bob", store.AuditKill},
		{"", "core", store.AuditReload},
		{"backup", "alice", store.AuditKill},
		{"report", "alice", store.AuditRun},
	}
	ids := make([]int64, len(log))
	for i, l := range log {
		// Each entry earlier than the one before: the log is ordered by
		// id, not by time (the clocks of two cores may disagree).
		ids[i] = mustAppendAudit(t, s, auditEntry(l.job, l.by, l.action, auditAt.Add(-time.Duration(i)*time.Minute)))
	}
	cases := []struct {
		name string
		f    store.AuditFilter
		want []int // indexes into log, newest first
	}{
		{"all newest first", store.AuditFilter{}, []int{5, 4, 3, 2, 1, 0}},
		{"job", store.AuditFilter{Job: "backup"}, []int{4, 2, 0}},
		{"by", store.AuditFilter{By: "alice"}, []int{5, 4, 0}},
		{"action", store.AuditFilter{Action: store.AuditKill}, []int{4, 2, 1}},
		{"job and by", store.AuditFilter{Job: "backup", By: "bob"}, []int{2}},
		{"job, by and action", store.AuditFilter{Job: "backup", By: "alice", Action: store.AuditKill}, []int{4}},
		{"before", store.AuditFilter{BeforeID: ids[4]}, []int{3, 2, 1, 0}},
		{"before and job", store.AuditFilter{BeforeID: ids[4], Job: "backup"}, []int{2, 0}},
		{"before and action", store.AuditFilter{BeforeID: ids[2], Action: store.AuditKill}, []int{1}},
		{"before the first", store.AuditFilter{BeforeID: ids[0]}, []int{}},
		{"before a negative id", store.AuditFilter{BeforeID: -1}, []int{}},
		{"limit", store.AuditFilter{Limit: 2}, []int{5, 4}},
		{"limit, by and before", store.AuditFilter{Limit: 2, By: "alice", BeforeID: ids[5]}, []int{4, 0}},
		{"limit above the count", store.AuditFilter{Limit: 50, Action: store.AuditRun}, []int{5, 0}},
		{"no such job", store.AuditFilter{Job: "nope"}, []int{}},
		{"no such action for the job", store.AuditFilter{Job: "report", Action: store.AuditReload}, []int{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := []int64{}
			for _, i := range c.want {
				want = append(want, ids[i])
			}
			if got := auditIDs(mustListAudit(t, s, c.f)); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("ListAudit(%+v) = %v, want %v", c.f, got, want)
			}
		})
	}
}

func testAuditPaging(t *testing.T, s store.Store) {
	const total = store.DefaultAuditLimit + 5
	var all, alice []int64 // in append order
	for i := range total {
		by := "bob"
		if i%3 == 0 {
			by = "alice"
		}
		id := mustAppendAudit(t, s, auditEntry("backup", by, store.AuditRun, auditAt.Add(time.Duration(i)*time.Second)))
		all = append(all, id)
		if by == "alice" {
			alice = append(alice, id)
		}
	}
	newestFirst := func(ids []int64) []int64 {
		out := slices.Clone(ids)
		slices.Reverse(out)
		return out
	}
	for _, limit := range []int{0, -1} {
		got := auditIDs(mustListAudit(t, s, store.AuditFilter{Limit: limit}))
		if want := newestFirst(all)[:store.DefaultAuditLimit]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("ListAudit with limit %d = %d entries %v, want the newest %d", limit, len(got), got, store.DefaultAuditLimit)
		}
	}
	// Walking pages with BeforeID = the last id of each: every entry once,
	// in order, none skipped.
	walk := func(f store.AuditFilter) []int64 {
		var out []int64
		for range total + 1 {
			page := mustListAudit(t, s, f)
			if len(page) > f.Limit {
				t.Fatalf("page of %d entries, limit %d", len(page), f.Limit)
			}
			if len(page) == 0 {
				return out
			}
			out = append(out, auditIDs(page)...)
			f.BeforeID = page[len(page)-1].ID
		}
		t.Fatalf("paging %+v did not end", f)
		return nil
	}
	if got, want := walk(store.AuditFilter{Limit: 7}), newestFirst(all); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("pages of 7 walked %v, want %v", got, want)
	}
	if got, want := walk(store.AuditFilter{Limit: 4, By: "alice"}), newestFirst(alice); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("alice's pages of 4 walked %v, want %v", got, want)
	}
}

func testAuditPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	cutoff := t0
	add := func(at time.Time) int64 {
		t.Helper()
		return mustAppendAudit(t, s, auditEntry("backup", "alice", store.AuditKill, at))
	}
	add(cutoff.Add(-48 * time.Hour))
	recent := add(cutoff.Add(24 * time.Hour))
	edge := add(cutoff) // not before the cutoff: kept
	last := add(cutoff.Add(-time.Microsecond))
	mustCreate(t, s, "old")
	old := cutoff.Add(-time.Hour)
	if err := s.UpdateRun(ctx, "old", store.RunUpdate{Status: ptr(store.StatusSucceeded), FinishedAt: &old}); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneRuns(ctx, cutoff)
	if err != nil || n != 1 {
		t.Fatalf("PruneRuns = %d, %v; want 1: the run, audit entries not counted", n, err)
	}
	want := []int64{edge, recent}
	if got := auditIDs(mustListAudit(t, s, store.AuditFilter{})); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after PruneRuns: %v, want %v (the entries before the cutoff pruned)", got, want)
	}
	// The pruned entry had the largest id: the next append must not reuse it.
	if next := add(cutoff); next <= last {
		t.Errorf("append after pruning id %d gave %d: ids must never be reused", last, next)
	}
	if n, err := s.PruneRuns(ctx, cutoff); err != nil || n != 0 {
		t.Errorf("second PruneRuns = %d, %v; want 0", n, err)
	}
	if got := mustListAudit(t, s, store.AuditFilter{}); len(got) != 3 {
		t.Errorf("after a second PruneRuns: %v, want 3 entries", auditIDs(got))
	}
}

// testAuditConcurrent appends from several goroutines at once: every
// append gets its own id, each goroutine's ids grow, and all are listed.
func testAuditConcurrent(t *testing.T, s store.Store) {
	ctx := context.Background()
	const writers, each = 8, 20
	ids := make([][]int64, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			by := fmt.Sprint("token-", w)
			for i := range each {
				id, err := s.AppendAudit(ctx, auditEntry("backup", by, store.AuditRun, auditAt.Add(time.Duration(i)*time.Millisecond)))
				if err != nil {
					t.Errorf("%s: AppendAudit %d: %v", by, i, err)
					return
				}
				ids[w] = append(ids[w], id)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	seen := map[int64]bool{}
	for w, got := range ids {
		for i, id := range got {
			if id <= 0 || seen[id] {
				t.Errorf("token-%d append %d: id %d, want a positive id not given before", w, i, id)
			}
			seen[id] = true
			if i > 0 && id <= got[i-1] {
				t.Errorf("token-%d: id %d after %d, want larger for a later append", w, id, got[i-1])
			}
		}
	}
	listed := mustListAudit(t, s, store.AuditFilter{Limit: 2 * writers * each})
	if len(listed) != writers*each {
		t.Errorf("ListAudit lists %d entries, want %d", len(listed), writers*each)
	}
	for i, e := range listed {
		if !seen[e.ID] {
			t.Errorf("listed id %d that no append gave", e.ID)
		}
		if i > 0 && e.ID >= listed[i-1].ID {
			t.Errorf("listed id %d after %d: want newest first", e.ID, listed[i-1].ID)
		}
	}
	for w := range writers {
		by := fmt.Sprint("token-", w)
		if got := mustListAudit(t, s, store.AuditFilter{By: by}); len(got) != each {
			t.Errorf("ListAudit by %s = %d entries, want %d", by, len(got), each)
		}
	}
}

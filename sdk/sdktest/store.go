package sdktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
		{"Overrides", testOverrides},
		{"Maintenance", testMaintenance},
		{"OutputCap", testOutputCap},
		{"Fires", testFires},
		{"FireRun", testFireRun},
		{"PruneRuns", testPruneRuns},
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

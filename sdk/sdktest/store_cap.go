package sdktest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

func testMaintenance(t *testing.T, s store.Store) {
	ctx := context.Background()
	if m, err := s.GetMaintenance(ctx); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetMaintenance on an empty store = %+v, %v; want ErrNotFound", m, err)
	}
	steps := []store.Maintenance{
		{Global: true, Machines: []string{"db3", "web1"}, SetBy: "alice", SetAt: t0},
		{Global: false, Machines: []string{"web2"}, SetBy: "bob", SetAt: t0.Add(time.Minute)},
		{Global: false, SetBy: "carol", SetAt: t0.Add(time.Hour)},
	}
	for i, m := range steps {
		if err := s.SetMaintenance(ctx, m); err != nil {
			t.Fatalf("SetMaintenance %d: %v", i, err)
		}
		got, err := s.GetMaintenance(ctx)
		if err != nil || got.Global != m.Global || !slices.Equal(got.Machines, m.Machines) ||
			got.SetBy != m.SetBy || !got.SetAt.Equal(m.SetAt) {
			t.Errorf("after SetMaintenance %d: GetMaintenance = %+v, %v; want %+v", i, got, err, m)
		}
	}
	for i := range 2 {
		if err := s.DeleteMaintenance(ctx); err != nil {
			t.Errorf("DeleteMaintenance %d: %v, want nil", i, err)
		}
		if m, err := s.GetMaintenance(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("after DeleteMaintenance %d: GetMaintenance = %+v, %v; want ErrNotFound", i, m, err)
		}
	}
}

// capChunk is chunk i of the output cap test: 20 bytes saying which it
// is, so a misplaced one shows.
func capChunk(i int64, stream string) store.Chunk {
	return store.Chunk{Seq: i, Stream: stream, Data: bytes.Repeat(fmt.Appendf(nil, "%02d", i), 10), At: t0}
}

func testOutputCap(t *testing.T, s store.Store) {
	ctx := context.Background()
	// A cap of 100 keeps a head of 50: chunks starting before byte 50
	// (0, 1 and 2) stay; past 100 stored bytes the oldest others go.
	run := store.Run{ID: "r1", Job: "backup", Trigger: store.TriggerSchedule, StartedAt: t0,
		Status: store.StatusRunning, Machines: []store.Machine{{Machine: "a", OutputCap: 100}, {Machine: "nocap"}}}
	if err := s.CreateRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if err := s.AddMachines(ctx, "r1", []store.Machine{{Machine: "b", OutputCap: 100}, {Machine: "tiny", OutputCap: 10},
		{Machine: "wide", OutputCap: 100}}); err != nil {
		t.Fatal(err)
	}
	// Chunk 3 is stderr's newest when it is dropped: chunk 6 must still
	// get stderr offsets after it.
	streams := []string{"stdout", "stderr", "stdout", "stderr", "stdout", "stdout", "stderr", "stdout"}
	var chunks []store.Chunk
	for i, st := range streams {
		chunks = append(chunks, capChunk(int64(i), st))
	}
	for _, c := range chunks {
		if _, err := s.AppendOutput(ctx, "r1", "a", c); err != nil {
			t.Fatalf("append %d to a: %v", c.Seq, err)
		}
		if _, err := s.AppendOutput(ctx, "r1", "nocap", c); err != nil {
			t.Fatalf("append %d to nocap: %v", c.Seq, err)
		}
	}
	// b takes the same chunks in one batch, where the store can.
	if bt, ok := s.(store.Batcher); ok {
		batch := make([]store.Append, len(chunks))
		for i, c := range chunks {
			batch[i] = store.Append{RunID: "r1", Machine: "b", Chunk: c}
		}
		for i, r := range bt.AppendOutputBatch(ctx, batch) {
			if r.Err != nil || r.Next != int64(i+1) {
				t.Fatalf("batch append %d to b: next %d, %v", i, r.Next, r.Err)
			}
		}
	} else {
		for _, c := range chunks {
			if _, err := s.AppendOutput(ctx, "r1", "b", c); err != nil {
				t.Fatalf("append %d to b: %v", c.Seq, err)
			}
		}
	}
	// A duplicate of a dropped chunk stores nothing and brings nothing back.
	if next, err := s.AppendOutput(ctx, "r1", "a", chunks[4]); err != nil || next != 8 {
		t.Errorf("duplicate of a dropped chunk: next %d, %v; want 8", next, err)
	}
	for i := range int64(3) {
		if _, err := s.AppendOutput(ctx, "r1", "tiny", capChunk(i, "stdout")); err != nil {
			t.Fatalf("append %d to tiny: %v", i, err)
		}
	}

	// Chunks of 30 against a cap of 100: chunks 0 and 1 are the head; a
	// chunk goes only while at least the cap stays, so the tail is never
	// just the newest chunk.
	wide := func(i int64) store.Chunk {
		return store.Chunk{Seq: i, Stream: "stdout", Data: bytes.Repeat([]byte{byte('A' + i)}, 30), At: t0}
	}
	for i := range int64(5) {
		if _, err := s.AppendOutput(ctx, "r1", "wide", wide(i)); err != nil {
			t.Fatalf("append %d to wide: %v", i, err)
		}
	}

	join := func(idx ...int) string {
		var b []byte
		for _, i := range idx {
			b = append(b, chunks[i].Data...)
		}
		return string(b)
	}
	mark := func(n int64) string { return string(store.DroppedMarker(n)) }
	r := mustGet(t, s, "r1")
	for _, m := range []struct {
		name                string
		cap, dropped, bytes int64
	}{
		{"a", 100, 60, 160}, {"b", 100, 60, 160}, {"nocap", 0, 0, 160}, {"tiny", 10, 20, 60}, {"wide", 100, 30, 150},
	} {
		got := machineOf(t, r, m.name)
		if got.OutputCap != m.cap || got.OutputDropped != m.dropped || got.OutputBytes != m.bytes {
			t.Errorf("machine %s: cap %d, dropped %d, output_bytes %d; want %d, %d, %d",
				m.name, got.OutputCap, got.OutputDropped, got.OutputBytes, m.cap, m.dropped, m.bytes)
		}
	}

	cases := []struct {
		name, machine     string
		q                 store.OutputQuery
		want              string
		wantNext, wantTot int64
	}{
		{"all", "a", store.OutputQuery{}, join(0, 1, 2) + mark(60) + join(6, 7), 160, 160},
		{"all batched", "b", store.OutputQuery{}, join(0, 1, 2) + mark(60) + join(6, 7), 160, 160},
		{"nothing dropped", "nocap", store.OutputQuery{}, join(0, 1, 2, 3, 4, 5, 6, 7), 160, 160},
		{"stdout", "a", store.OutputQuery{Stream: "stdout"}, join(0, 2) + mark(40) + join(7), 100, 100},
		{"stderr", "a", store.OutputQuery{Stream: "stderr"}, join(1) + mark(20) + join(6), 60, 60},
		{"from inside the hole", "a", store.OutputQuery{Offset: 70}, mark(50) + join(6, 7), 160, 160},
		{"stderr from inside the hole", "a", store.OutputQuery{Stream: "stderr", Offset: 30}, mark(10) + join(6), 60, 60},
		{"limit stops before a marker", "a", store.OutputQuery{Limit: 70}, join(0, 1, 2), 60, 160},
		{"a marker is never cut", "a", store.OutputQuery{Offset: 60, Limit: 10}, mark(60), 120, 160},
		{"limit after a marker", "a", store.OutputQuery{Offset: 60, Limit: int64(len(mark(60))) + 5}, mark(60) + join(6)[:5], 125, 160},
		{"at least the cap stays", "wide", store.OutputQuery{},
			string(wide(0).Data) + string(wide(1).Data) + mark(30) + string(wide(3).Data) + string(wide(4).Data), 150, 150},
		{"newest is kept", "tiny", store.OutputQuery{}, string(capChunk(0, "").Data) + mark(20) + string(capChunk(2, "").Data), 60, 60},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := c.q
			q.RunID, q.Machine = "r1", c.machine
			out, err := s.ReadOutput(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			if string(out.Data) != c.want || out.Next != c.wantNext || out.Total != c.wantTot {
				t.Errorf("ReadOutput = %q, next %d, total %d;\nwant %q, next %d, total %d",
					out.Data, out.Next, out.Total, c.want, c.wantNext, c.wantTot)
			}
		})
	}

	// A follower reading in small steps sees what one read sees.
	for _, stream := range []string{"", "stdout", "stderr"} {
		whole, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Stream: stream})
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		off := int64(0)
		for step := 0; off < whole.Total; step++ {
			if step > 100 {
				t.Fatalf("stream %q: a follower makes no progress at offset %d", stream, off)
			}
			out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a", Stream: stream, Offset: off, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, out.Data...)
			off = out.Next
		}
		if !bytes.Equal(got, whole.Data) {
			t.Errorf("stream %q read 7 bytes at a time:\n%q\nwhole:\n%q", stream, got, whole.Data)
		}
	}
}

// testFireBatch: a batch of fires (store.FireBatch, the store's own
// FireBatcher when it has one) answers each as its own call would, in
// order: a slot taken earlier in the batch is taken, and a fire refused
// leaves the others as they are. Only each job's fires are ordered: a
// store may apply different jobs' side by side.
func testFireBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	slot := t0.Add(time.Minute)
	run := func(id, job string) *store.Run {
		return &store.Run{ID: id, Job: job, Trigger: store.TriggerSchedule, ScheduledFor: slot, StartedAt: slot,
			Status: store.StatusRunning, Machines: []store.Machine{{Machine: "a"}}}
	}
	fire := func(r *store.Run) store.Fire {
		return store.Fire{Job: r.Job, Slot: r.ScheduledFor, RunID: r.ID, Run: r}
	}
	cases := []struct {
		fire  store.Fire
		want  bool
		isErr error // the sentinel, nil for success
	}{
		{store.Fire{Job: "a", Slot: slot}, true, nil},
		{fire(run("r1", "a")), false, nil},
		{fire(run("r2", "b")), true, nil},
		{fire(run("r3", "b")), false, nil},
		{fire(run("old", "c")), false, store.ErrExists},
		{store.Fire{Job: "c", Slot: slot, RunID: "r4"}, true, nil},
	}
	mustCreate(t, s, "old", "a")
	batch := make([]store.Fire, len(cases))
	for i, c := range cases {
		batch[i] = c.fire
	}
	got := store.FireBatch(ctx, s, batch)
	if len(got) != len(batch) {
		t.Fatalf("%d results for %d fires", len(got), len(batch))
	}
	for i, c := range cases {
		g := got[i]
		wrong := g.Recorded != c.want
		if c.isErr == nil {
			wrong = wrong || g.Err != nil
		} else {
			wrong = wrong || !errors.Is(g.Err, c.isErr)
		}
		if wrong {
			t.Errorf("fire %d (job %q, run %q): %v, %v; want %v, %v", i, c.fire.Job, c.fire.RunID, g.Recorded, g.Err, c.want, c.isErr)
		}
	}
	if r := mustGet(t, s, "r2"); r.Job != "b" {
		t.Errorf("run r2 is of job %q, want b", r.Job)
	}
	if r := mustGet(t, s, "old"); r.Job != "backup" || !r.ScheduledFor.Equal(t0) {
		t.Errorf("the refused fire changed run old: %+v", r)
	}
	for _, id := range []string{"r1", "r3"} {
		if _, err := s.GetRun(ctx, id); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("run %s of a taken slot: %v, want ErrNotFound", id, err)
		}
	}
	for _, job := range []string{"a", "b", "c"} {
		if last, err := s.LastFire(ctx, job); err != nil || !last.Equal(slot) {
			t.Errorf("LastFire(%s) = %v, %v; want %v", job, last, err, slot)
		}
	}
}

// testGetRunBatch: a batch of reads (store.GetRunBatch, the store's own
// RunBatchReader when it has one) answers each id as GetRun would, in
// order: a missing run is ErrNotFound beside the others, a run named
// twice is read twice, and no two answers share their machines or
// actions.
func testGetRunBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "web1", "web2")
	mustCreate(t, s, "r2", "db1")
	mustCreate(t, s, "r3")
	code, t1 := 3, t0.Add(time.Hour)
	wantErr(t, "UpdateMachine", s.UpdateMachine(ctx, "r1", "web2", store.MachineUpdate{
		Status: ptr(store.StatusFailed), ExitCode: &code, FinishedAt: &t1}), nil)
	kill := store.Action{Kind: "kill", Machine: "web1", By: "alice", At: t1}
	wantErr(t, "UpdateRun AddAction", s.UpdateRun(ctx, "r1", store.RunUpdate{AddAction: &kill}), nil)

	for _, ids := range [][]string{
		{"r1"},
		{"nope"},
		{"r1", "nope", "r2", "r3", "r1"},
		{"r3", "r2"},
	} {
		got := store.GetRunBatch(ctx, s, ids)
		if len(got) != len(ids) {
			t.Fatalf("%v: %d results", ids, len(got))
		}
		for i, id := range ids {
			want, err := s.GetRun(ctx, id)
			switch {
			case err != nil:
				if !errors.Is(got[i].Err, store.ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%v: result %d (%s) = %v, GetRun %v; want ErrNotFound from both", ids, i, id, got[i].Err, err)
				}
			case got[i].Err != nil:
				t.Errorf("%v: result %d (%s): %v", ids, i, id, got[i].Err)
			case !reflect.DeepEqual(got[i].Run, want):
				t.Errorf("%v: result %d (%s) =\n%+v\nGetRun gives\n%+v", ids, i, id, got[i].Run, want)
			}
		}
		if len(ids) == 5 && !t.Failed() { // each answer was checked whole above
			got[0].Run.Machines[0].Machine = "mallory"
			got[0].Run.Actions[0].By = "mallory"
			if m, a := got[4].Run.Machines[0].Machine, got[4].Run.Actions[0].By; m != "web1" || a != "alice" {
				t.Errorf("two answers for r1 share their machines or actions: %q, %q", m, a)
			}
		}
	}
}

// testUpdateRunBatch: a batch of run updates (store.UpdateRunBatch, the
// store's own RunBatchUpdater when it has one) answers each as its own
// call would, in order: a run's updates apply in their order, and one
// refused, whole, changes nothing of it or of the others.
func testUpdateRunBatch(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, "r1", "a")
	mustCreate(t, s, "r2", "b")
	t1 := t0.Add(time.Hour)
	kill := store.Action{Kind: "kill", By: "alice", At: t1}
	errAny := errors.New("any error")
	cases := []struct {
		change store.RunChange
		isErr  error // the sentinel, nil for success; errAny for any error
	}{
		{store.RunChange{RunID: "r1", Update: store.RunUpdate{Status: ptr(store.StatusKilled), KilledBy: ptr("alice")}}, nil},
		{store.RunChange{RunID: "nope", Update: store.RunUpdate{Status: ptr(store.StatusFailed)}}, store.ErrNotFound},
		{store.RunChange{RunID: "r1", Update: store.RunUpdate{AddAction: &kill}}, nil},
		{store.RunChange{RunID: "r2", Update: store.RunUpdate{Status: ptr(store.StatusFailed), Reason: ptr("refused"),
			Notifications: []store.Notification{note("x", t1), {ID: "bad"}}}}, errAny},
		{store.RunChange{RunID: "r1", Update: store.RunUpdate{Status: ptr(store.StatusSucceeded), FinishedAt: &t1,
			Notifications: []store.Notification{note("a", t1)}}}, nil},
		{store.RunChange{RunID: "r2", Update: store.RunUpdate{Reason: ptr("kept")}}, nil},
	}
	batch := make([]store.RunChange, len(cases))
	for i, c := range cases {
		batch[i] = c.change
	}
	got := store.UpdateRunBatch(ctx, s, batch)
	if len(got) != len(batch) {
		t.Fatalf("%d results for %d updates", len(got), len(batch))
	}
	for i, c := range cases {
		var wrong bool
		switch c.isErr {
		case nil:
			wrong = got[i] != nil
		case errAny:
			wrong = got[i] == nil
		default:
			wrong = !errors.Is(got[i], c.isErr)
		}
		if wrong {
			t.Errorf("update %d (run %q): %v; want %v", i, c.change.RunID, got[i], c.isErr)
		}
	}
	r1 := mustGet(t, s, "r1")
	if r1.Status != store.StatusSucceeded || r1.KilledBy != "alice" || !r1.FinishedAt.Equal(t1) ||
		len(r1.Actions) != 1 || r1.Actions[0].By != "alice" {
		t.Errorf("r1 after its three updates in order: %+v", r1)
	}
	if r2 := mustGet(t, s, "r2"); r2.Status != store.StatusRunning || r2.Reason != "kept" {
		t.Errorf("r2 after a refused update and a kept one: %+v", r2)
	}
	if got := notes(t, s); len(got) != 1 || got["a"].RunID != "r-a" {
		t.Errorf("notifications after the batch: %+v; want a alone", got)
	}
}

func testFireRun(t *testing.T, s store.Store) {
	ctx := context.Background()
	slot := t0.Add(time.Minute)
	run := func(id string, at time.Time) store.Run {
		return store.Run{ID: id, Job: "backup", Trigger: store.TriggerSchedule, ScheduledFor: at, StartedAt: at,
			Status: store.StatusRunning, Machines: []store.Machine{{Machine: "a"}}}
	}
	if ok, err := s.FireRun(ctx, run("r1", slot)); err != nil || !ok {
		t.Fatalf("FireRun of a new slot = %v, %v; want true", ok, err)
	}
	if r := mustGet(t, s, "r1"); !r.ScheduledFor.Equal(slot) || len(r.Machines) != 1 {
		t.Errorf("run FireRun created: %+v", r)
	}
	if last, err := s.LastFire(ctx, "backup"); err != nil || !last.Equal(slot) {
		t.Errorf("LastFire after FireRun = %v, %v; want %v", last, err, slot)
	}
	// The slot is taken: by another FireRun or RecordFire, nothing is stored.
	if ok, err := s.FireRun(ctx, run("r2", slot)); err != nil || ok {
		t.Errorf("FireRun of a recorded slot = %v, %v; want false", ok, err)
	}
	if _, err := s.GetRun(ctx, "r2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused FireRun created its run: %v", err)
	}
	if ok, err := s.RecordFire(ctx, "backup", slot, "r3"); err != nil || ok {
		t.Errorf("RecordFire of a slot FireRun took = %v, %v; want false", ok, err)
	}
	// A slot RecordFire took (a skipped one) is taken for FireRun too.
	skipped := slot.Add(time.Minute)
	if ok, err := s.RecordFire(ctx, "backup", skipped, ""); err != nil || !ok {
		t.Fatalf("RecordFire of a skipped slot = %v, %v", ok, err)
	}
	if ok, err := s.FireRun(ctx, run("r4", skipped)); err != nil || ok {
		t.Errorf("FireRun of a skipped slot = %v, %v; want false", ok, err)
	}
	// Both or neither: a run id already stored records no fire.
	later := slot.Add(2 * time.Minute)
	if _, err := s.FireRun(ctx, run("r1", later)); !errors.Is(err, store.ErrExists) {
		t.Errorf("FireRun with a stored run id = %v; want ErrExists", err)
	}
	if ok, err := s.RecordFire(ctx, "backup", later, "r5"); err != nil || !ok {
		t.Errorf("the failed FireRun left its slot recorded: RecordFire = %v, %v", ok, err)
	}
	// Cores racing to fire one slot: one run, whoever wins.
	raced := slot.Add(time.Hour)
	var wg sync.WaitGroup
	wins := make(chan string, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("race-%d", i)
			ok, err := s.FireRun(ctx, run(id, raced))
			if err != nil {
				t.Errorf("racing FireRun: %v", err)
			}
			if ok {
				wins <- id
			}
		}()
	}
	wg.Wait()
	close(wins)
	var won []string
	for id := range wins {
		won = append(won, id)
	}
	runs, err := s.ListRuns(ctx, store.RunFilter{Job: "backup", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range runs {
		if r.ScheduledFor.Equal(raced) {
			n++
		}
	}
	if len(won) != 1 || n != 1 {
		t.Fatalf("8 racing FireRun calls: %v won, %d runs stored for the slot; want one of each", won, n)
	}
}

package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestMigrateToVersion5 opens a database a version 4 binary left, with a
// run in flight, its output, a fire and the maintenance override: Open
// adds the outbox, keeps everything, and the old run's final update
// enqueues its notifications, which are claimed and delivered.
func TestMigrateToVersion5(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	if err := postgres.MigrateTo(ctx, dsn, 4); err != nil {
		t.Fatalf("migrate to version 4: %v", err)
	}
	if got := query[bool](t, dsn, `SELECT to_regclass('notifications') IS NULL`); !got[0] {
		t.Fatal("notifications exists at schema version 4")
	}
	for _, q := range []string{
		`INSERT INTO runs (id, job, status, started_at_ns) VALUES ('r1', 'backup', 'running', 1000) RETURNING id`,
		`INSERT INTO machines (run_id, machine, status, output_bytes, stored_bytes, next_seq, output_cap)
			VALUES ('r1', 'a', 'running', 5, 5, 1, 65536) RETURNING run_id`,
		`INSERT INTO output (run_id, machine, seq, stream, data, end_off, stream_end)
			VALUES ('r1', 'a', 0, 'stdout', convert_to('out1' || chr(10), 'UTF8'), 5, 5) RETURNING run_id`,
		`INSERT INTO output_streams (run_id, machine, stream, bytes) VALUES ('r1', 'a', 'stdout', 5) RETURNING run_id`,
		`INSERT INTO fires (job, slot, run_id, recorded_at) VALUES ('backup', 1000, 'r1', 1) RETURNING job`,
		`INSERT INTO maintenance (id, global, machines, set_by) VALUES (1, false, '{web1}', 'ops') RETURNING set_by`,
	} {
		query[string](t, dsn, q)
	}

	s := open(t, dsn)
	want := make([]int32, postgres.SchemaVersion)
	for i := range want {
		want[i] = int32(i + 1)
	}
	if got := query[int32](t, dsn, `SELECT version FROM saltpeter_migrations ORDER BY version`); !slices.Equal(got, want) {
		t.Fatalf("versions after Open = %v, want %v", got, want)
	}
	r, err := s.GetRun(ctx, "r1")
	if err != nil || r.Status != store.StatusRunning || len(r.Machines) != 1 || r.Machines[0].OutputCap != 65536 {
		t.Fatalf("run from version 4 = %+v, %v", r, err)
	}
	if out, err := s.ReadOutput(ctx, store.OutputQuery{RunID: "r1", Machine: "a"}); err != nil || string(out.Data) != "out1\n" {
		t.Errorf("output from version 4 = %q, %v", out.Data, err)
	}
	if last, err := s.LastFire(ctx, "backup"); err != nil || last.UnixNano() != 1000 {
		t.Errorf("LastFire from version 4 = %v, %v", last, err)
	}
	if m, err := s.GetMaintenance(ctx); err != nil || fmt.Sprint(m.Machines) != "[web1]" {
		t.Errorf("maintenance from version 4 = %+v, %v", m, err)
	}

	n := store.Notification{ID: "r1-done", Notifier: "hook", Job: "backup", RunID: "r1", Kind: "run_finished",
		Event: []byte(`{"status":"succeeded"}`), CreatedAt: t0}
	if err := s.UpdateRun(ctx, "r1", store.RunUpdate{Status: ptr(store.StatusSucceeded), FinishedAt: &t0,
		Notifications: []store.Notification{n}}); err != nil {
		t.Fatalf("final UpdateRun of the old run: %v", err)
	}
	got, err := s.ClaimNotifications(ctx, store.ClaimRequest{Owner: "core", Now: t0, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != "r1-done" || string(got[0].Event) != `{"status":"succeeded"}` {
		t.Fatalf("claim after migrating = %+v, %v", got, err)
	}
	if err := s.FinishNotification(ctx, "r1-done", "core", store.NotificationResult{Delivered: true, At: t0}); err != nil {
		t.Fatalf("finish after migrating: %v", err)
	}
	if ns, err := s.ListNotifications(ctx, store.NotificationFilter{State: store.NotificationDelivered}); err != nil || len(ns) != 1 {
		t.Errorf("delivered after migrating = %+v, %v", ns, err)
	}
}

// enqueueN enqueues n notifications through s and returns their ids.
func enqueueN(t *testing.T, s store.Store, prefix string, n int) []string {
	t.Helper()
	var ns []store.Notification
	var ids []string
	for i := range n {
		id := fmt.Sprintf("%s%03d", prefix, i)
		ids = append(ids, id)
		ns = append(ns, store.Notification{ID: id, Notifier: "hook", Kind: "run_finished",
			CreatedAt: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	if err := s.EnqueueNotifications(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ids
}

// TestTwoCoresClaim has two stores ("cores") on one database claim from
// one outbox at once, several callers each: every notification is
// claimed by exactly one caller, the database holds that caller's lease,
// and each caller's finishes all go through.
func TestTwoCoresClaim(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	cores := []*postgres.Store{open(t, dsn), open(t, dsn)}
	const total, perCore = 200, 4
	ids := enqueueN(t, cores[0], "n", total)
	// Both cores enqueue the same ids again, as a retried or doubled
	// enqueue would: nothing is stored twice.
	var wg sync.WaitGroup
	for _, s := range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enqueueN(t, s, "n", total)
		}()
	}
	wg.Wait()
	if got := query[int64](t, dsn, `SELECT count(*) FROM notifications`)[0]; got != total {
		t.Fatalf("%d notifications stored after enqueueing each thrice, want %d", got, total)
	}

	var mu sync.Mutex
	claimedBy := map[string][]string{}
	start := make(chan struct{})
	for ci, s := range cores {
		for g := range perCore {
			owner := fmt.Sprintf("core%d-%d", ci, g)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					ns, err := s.ClaimNotifications(ctx, store.ClaimRequest{Owner: owner, Now: t0.Add(time.Minute),
						Lease: time.Hour, Limit: 7})
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
					for _, n := range ns {
						if err := s.FinishNotification(ctx, n.ID, owner, store.NotificationResult{Delivered: true, At: t0.Add(time.Minute)}); err != nil {
							t.Errorf("%s: finish %s: %v", owner, n.ID, err)
						}
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	finisher := map[string]string{}
	for _, row := range query[[]string](t, dsn, `SELECT ARRAY[id, lease_owner] FROM notifications`) {
		finisher[row[0]] = row[1]
	}
	for _, id := range ids {
		got := claimedBy[id]
		if len(got) != 1 {
			t.Errorf("%s claimed by %v, want exactly one caller", id, got)
			continue
		}
		if finisher[id] != got[0] {
			t.Errorf("%s finished by %q in the database, claimed by %q", id, finisher[id], got[0])
		}
	}
	if got := query[int64](t, dsn, `SELECT count(*) FROM notifications WHERE state = 'delivered'`)[0]; got != total {
		t.Errorf("%d delivered, want %d", got, total)
	}
}

// TestTwoCoresExpiredLease races the core whose leases expired, finishing
// what it delivered, against another core claiming the same notifications
// after the expiry: each is finished by the first or claimed by the
// second, never both, so nothing is recorded delivered and handed out
// again.
func TestTwoCoresExpiredLease(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	slow, fast := open(t, dsn), open(t, dsn)
	const total = 100
	ids := enqueueN(t, slow, "n", total)
	got, err := slow.ClaimNotifications(ctx, store.ClaimRequest{Owner: "slow", Now: t0.Add(time.Second), Lease: time.Minute, Limit: total})
	if err != nil || len(got) != total {
		t.Fatalf("slow claimed %d, %v; want %d", len(got), err, total)
	}
	finished := map[string]bool{}
	claimed := map[string]bool{}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, id := range ids {
			err := slow.FinishNotification(ctx, id, "slow", store.NotificationResult{Delivered: true, At: t0.Add(2 * time.Minute)})
			switch {
			case err == nil:
				finished[id] = true
			case !errors.Is(err, store.ErrLeaseLost):
				t.Errorf("slow: finish %s: %v", id, err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			ns, err := fast.ClaimNotifications(ctx, store.ClaimRequest{Owner: "fast", Now: t0.Add(2 * time.Minute),
				Lease: time.Hour, Limit: 3})
			if err != nil {
				t.Errorf("fast: claim: %v", err)
				return
			}
			if len(ns) == 0 {
				return
			}
			for _, n := range ns {
				claimed[n.ID] = true
			}
		}
	}()
	wg.Wait()
	for _, id := range ids {
		if finished[id] == claimed[id] {
			t.Errorf("%s: finished by slow %v, claimed by fast %v; want exactly one", id, finished[id], claimed[id])
		}
	}
	t.Logf("slow finished %d, fast claimed %d", len(finished), len(claimed))
}

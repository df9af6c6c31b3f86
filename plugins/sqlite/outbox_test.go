package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestMigrateToV5 opens a database a version 4 binary left, with a run in
// flight, its output, a fire, an override and the maintenance override:
// Open adds the outbox, keeps everything, and the old run's final update
// enqueues its notifications, which are claimed and delivered.
func TestMigrateToV5(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fresh := openTest(t, filepath.Join(dir, "fresh.db"))
	want := schemaOf(t, fresh.w)
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "v4.db")
	db := rawDB(t, path)
	if _, err := db.Exec("PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		t.Fatal(err)
	}
	tx := oldSchema(t, db, 4)
	for _, q := range []string{
		"PRAGMA user_version = 4",
		`INSERT INTO runs (id, job, status, started_at) VALUES ('r1', 'backup', 'running', 1000)`,
		`INSERT INTO machines (run_id, machine, n, status, output_bytes, stored_bytes, next_seq, output_cap)
			VALUES ('r1', 'a', 0, 'running', 5, 5, 1, 65536)`,
		`INSERT INTO output_chunks (run_id, machine, seq, stream, size, end_off, stream_end, data)
			VALUES ('r1', 'a', 0, 'stdout', 5, 5, 5, 'out1' || char(10))`,
		`INSERT INTO output_streams (run_id, machine, stream, bytes) VALUES ('r1', 'a', 'stdout', 5)`,
		`INSERT INTO fires (job, slot, run_id) VALUES ('backup', 1000, 'r1')`,
		`INSERT INTO overrides (job, enabled, set_by) VALUES ('backup', 0, 'ops')`,
		`INSERT INTO maintenance (id, global, machines, set_by) VALUES (1, 0, '["web1"]', 'ops')`,
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok := schemaOf(t, db)["notifications"]; ok {
		t.Fatal("a version 4 database already has a notifications table")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path)
	if v := userVersion(t, s.w); v != schemaVersion {
		t.Errorf("user_version after migrating = %d, want %d", v, schemaVersion)
	}
	if got := schemaOf(t, s.w); !reflect.DeepEqual(got, want) {
		t.Errorf("migrated schema differs from a fresh one:\n got %v\nwant %v", got, want)
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
	if o, err := s.Overrides(ctx); err != nil || len(o) != 1 || o[0].SetBy != "ops" {
		t.Errorf("overrides from version 4 = %+v, %v", o, err)
	}

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	n := store.Notification{ID: "r1-done", Notifier: "hook", Job: "backup", RunID: "r1", Kind: "run_finished",
		Event: []byte(`{"status":"succeeded"}`), CreatedAt: at}
	if err := s.UpdateRun(ctx, "r1", store.RunUpdate{Status: ptr(store.StatusSucceeded), FinishedAt: &at,
		Notifications: []store.Notification{n}}); err != nil {
		t.Fatalf("final UpdateRun of the old run: %v", err)
	}
	got, err := s.ClaimNotifications(ctx, store.ClaimRequest{Owner: "core", Now: at, Lease: time.Minute})
	if err != nil || len(got) != 1 || got[0].ID != "r1-done" || string(got[0].Event) != `{"status":"succeeded"}` {
		t.Fatalf("claim after migrating = %+v, %v", got, err)
	}
	if err := s.FinishNotification(ctx, "r1-done", "core", store.NotificationResult{Delivered: true, At: at}); err != nil {
		t.Fatalf("finish after migrating: %v", err)
	}
	if ns, err := s.ListNotifications(ctx, store.NotificationFilter{State: store.NotificationDelivered}); err != nil || len(ns) != 1 {
		t.Errorf("delivered after migrating = %+v, %v", ns, err)
	}
}

// TestClaimUsesIndex checks that a claim seeks the pending notifications
// through notifications_due, in its order, instead of scanning and
// sorting the outbox.
func TestClaimUsesIndex(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	rows, err := s.w.Query(`EXPLAIN QUERY PLAN SELECT `+noteCols+` `+claimWhere, 1, 10)
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
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	p := strings.Join(plan, "; ")
	if !strings.Contains(p, "USING INDEX notifications_due") || strings.Contains(p, "TEMP B-TREE") {
		t.Errorf("plan = %q, want a seek on notifications_due with no sort", p)
	}
}

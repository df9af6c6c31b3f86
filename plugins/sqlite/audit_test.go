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

// TestMigrateToV6 opens a database a version 5 binary left, with a
// finished run and a delivered notification: Open adds the audit log and
// keeps everything; the log takes entries, lists them and is pruned with
// the rest.
func TestMigrateToV6(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	fresh := openTest(t, filepath.Join(dir, "fresh.db"))
	want := schemaOf(t, fresh.w)
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "v5.db")
	db := rawDB(t, path)
	if _, err := db.Exec("PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		t.Fatal(err)
	}
	tx := oldSchema(t, db, 5)
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, q := range []string{
		"PRAGMA user_version = 5",
		fmt.Sprintf(`INSERT INTO runs (id, job, status, started_at, finished_at) VALUES ('r1', 'backup', 'succeeded', %d, %d)`, old, old),
		fmt.Sprintf(`INSERT INTO notifications (id, notifier, job, created_at, due_at, state, delivered_at)
			VALUES ('n1', 'hook', 'backup', %d, %d, 'delivered', %d)`, old, old, old),
	} {
		if _, err := tx.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, ok := schemaOf(t, db)["audit"]; ok {
		t.Fatal("a version 5 database already has an audit table")
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
	if r, err := s.GetRun(ctx, "r1"); err != nil || r.Status != store.StatusSucceeded {
		t.Fatalf("run from version 5 = %+v, %v", r, err)
	}
	if ns, err := s.ListNotifications(ctx, store.NotificationFilter{}); err != nil || len(ns) != 1 || ns[0].ID != "n1" {
		t.Fatalf("notifications from version 5 = %+v, %v", ns, err)
	}

	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	e := store.AuditEntry{At: at, By: "ops", Action: store.AuditKill, Via: "api", Job: "backup", RunID: "r1",
		Outcome: store.AuditOK}
	id, err := s.AppendAudit(ctx, e)
	if err != nil || id != 1 {
		t.Fatalf("AppendAudit after migrating = %d, %v; want id 1", id, err)
	}
	e.ID = id
	if got, err := s.ListAudit(ctx, store.AuditFilter{Job: "backup"}); err != nil || len(got) != 1 || got[0] != e {
		t.Fatalf("ListAudit after migrating = %+v, %v; want %+v", got, err, e)
	}
	// One PruneRuns past everything: the old run, its notification and the
	// entry go.
	if n, err := s.PruneRuns(ctx, at.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneRuns after migrating = %d, %v; want 1", n, err)
	}
	if got, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(got) != 0 {
		t.Errorf("ListAudit after PruneRuns = %+v, %v; want none", got, err)
	}
	if ns, err := s.ListNotifications(ctx, store.NotificationFilter{}); err != nil || len(ns) != 0 {
		t.Errorf("notifications after PruneRuns = %+v, %v; want none", ns, err)
	}
}

// queryPlan is SQLite's plan for q, its steps joined by "; ".
func queryPlan(t *testing.T, s *Store, q string, args ...any) string {
	t.Helper()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
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
	return strings.Join(plan, "; ")
}

// TestAuditUsesIndexes checks that a listing seeks an index in id order,
// from BeforeID down, and never sorts; and that the prune seeks audit_at.
func TestAuditUsesIndexes(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	cases := []struct {
		name string
		f    store.AuditFilter
		want string // in the plan
	}{
		{"all", store.AuditFilter{}, "SCAN audit"},
		{"before", store.AuditFilter{BeforeID: 9}, "SEARCH audit USING INTEGER PRIMARY KEY (rowid<?)"},
		{"job", store.AuditFilter{Job: "j", BeforeID: 9}, "USING INDEX audit_job (job=? AND id<?)"},
		{"by", store.AuditFilter{By: "ops"}, "USING INDEX audit_by (by=?)"},
		{"action", store.AuditFilter{Action: store.AuditKill, BeforeID: 9}, "USING INDEX audit_action (action=? AND id<?)"},
		{"job and by", store.AuditFilter{Job: "j", By: "ops"}, "USING INDEX audit_"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, args := auditQuery(c.f)
			p := queryPlan(t, s, q, args...)
			if !strings.Contains(p, c.want) || strings.Contains(p, "TEMP B-TREE") {
				t.Errorf("plan = %q, want %q and no sort", p, c.want)
			}
		})
	}
	if p := queryPlan(t, s, pruneAuditWhere, 1, pruneBatch); !strings.Contains(p, "USING COVERING INDEX audit_at (at<?)") {
		t.Errorf("prune plan = %q, want a seek on audit_at", p)
	}
}

// TestPruneAuditBatches: each prune transaction deletes at most its limit,
// the oldest entries only, and PruneRuns goes on until none is left.
func TestPruneAuditBatches(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, err := s.AppendAudit(ctx, store.AuditEntry{At: at.Add(time.Duration(i) * time.Second), Action: store.AuditRun}); err != nil {
			t.Fatal(err)
		}
	}
	keep, err := s.AppendAudit(ctx, store.AuditEntry{At: at.Add(time.Hour), Action: store.AuditRun})
	if err != nil {
		t.Fatal(err)
	}
	before := at.Add(time.Minute).UnixNano()
	for i, want := range []int64{2, 2, 1, 0} {
		if n, err := s.pruneAudit(ctx, before, 2); err != nil || n != want {
			t.Fatalf("batch %d: pruned %d, %v; want %d", i, n, err, want)
		}
	}
	if got, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(got) != 1 || got[0].ID != keep {
		t.Errorf("after pruning: %+v, %v; want entry %d only", got, err, keep)
	}
}

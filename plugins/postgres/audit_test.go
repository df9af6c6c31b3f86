package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/sdk/store"
)

// TestMigrateToVersion6 opens a database a version 5 binary left, with a
// finished run and a delivered notification: Open adds the audit log and
// keeps everything; the log takes entries, lists them and is pruned with
// the rest.
func TestMigrateToVersion6(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	if err := postgres.MigrateTo(ctx, dsn, 5); err != nil {
		t.Fatalf("migrate to version 5: %v", err)
	}
	if got := query[bool](t, dsn, `SELECT to_regclass('audit') IS NULL`); !got[0] {
		t.Fatal("audit exists at schema version 5")
	}
	old := t0.Add(-48 * time.Hour).UnixNano()
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO runs (id, job, status, started_at_ns, finished_at_ns)
			VALUES ('r1', 'backup', 'succeeded', %d, %d) RETURNING id`, old, old),
		fmt.Sprintf(`INSERT INTO notifications (id, notifier, job, created_at_ns, due_at_ns, state, delivered_at_ns)
			VALUES ('n1', 'hook', 'backup', %d, %d, 'delivered', %d) RETURNING id`, old, old, old),
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
	if r, err := s.GetRun(ctx, "r1"); err != nil || r.Status != store.StatusSucceeded {
		t.Fatalf("run from version 5 = %+v, %v", r, err)
	}
	e := store.AuditEntry{At: t0, By: "ops", Action: store.AuditKill, Via: "api", Job: "backup", RunID: "r1",
		Outcome: store.AuditOK}
	id, err := s.AppendAudit(ctx, e)
	if err != nil || id != 1 {
		t.Fatalf("AppendAudit after migrating = %d, %v; want id 1", id, err)
	}
	e.ID = id
	if got, err := s.ListAudit(ctx, store.AuditFilter{Job: "backup"}); err != nil || len(got) != 1 || got[0] != e {
		t.Fatalf("ListAudit after migrating = %+v, %v; want %+v", got, err, e)
	}
	if n, err := s.PruneRuns(ctx, t0.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("PruneRuns after migrating = %d, %v; want 1", n, err)
	}
	if got, err := s.ListAudit(ctx, store.AuditFilter{}); err != nil || len(got) != 0 {
		t.Errorf("ListAudit after PruneRuns = %+v, %v; want none", got, err)
	}
	if ns, err := s.ListNotifications(ctx, store.NotificationFilter{}); err != nil || len(ns) != 0 {
		t.Errorf("notifications after PruneRuns = %+v, %v; want none", ns, err)
	}
}

// TestTwoCoresAudit has two stores ("cores") on one database append at
// once, then prune at once in small batches: every append gets an id of
// its own, larger than its caller's previous one; each old entry is
// deleted once and every recent one stays.
func TestTwoCoresAudit(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	postgres.SetPruneBatch(t, 3)
	cores := []*postgres.Store{open(t, dsn), open(t, dsn)}
	const callers, each = 4, 15
	cutoff := t0
	var mu sync.Mutex
	var recent []int64
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := cores[c%len(cores)]
			prev := int64(0)
			for i := range each {
				// Every third entry is recent; the rest are old.
				at := cutoff.Add(-time.Duration(i+1) * time.Minute)
				if i%3 == 0 {
					at = cutoff.Add(time.Duration(i) * time.Minute)
				}
				id, err := s.AppendAudit(ctx, store.AuditEntry{At: at, By: fmt.Sprint("caller-", c), Action: store.AuditRun})
				if err != nil {
					t.Errorf("caller %d: AppendAudit: %v", c, err)
					return
				}
				if id <= prev {
					t.Errorf("caller %d: id %d after %d, want larger", c, id, prev)
				}
				prev = id
				mu.Lock()
				if seen[id] {
					t.Errorf("id %d given twice", id)
				}
				seen[id] = true
				if i%3 == 0 {
					recent = append(recent, id)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, s := range cores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.PruneRuns(ctx, cutoff); err != nil {
				t.Errorf("PruneRuns: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := cores[1].ListAudit(ctx, store.AuditFilter{Limit: callers * each})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	slices.Sort(recent)
	slices.Reverse(recent)
	if !slices.Equal(ids, recent) {
		t.Errorf("after pruning: %v, want the recent entries %v", ids, recent)
	}
}

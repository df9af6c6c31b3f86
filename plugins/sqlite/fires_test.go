package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// schemaOf lists the database's schema objects and their SQL, in name
// order.
func schemaOf(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT name, coalesce(sql, '') FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%' ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, text string
		if err := rows.Scan(&name, &text); err != nil {
			t.Fatal(err)
		}
		out[name] = text
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func userVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMigrateFromV1 builds a database as a binary that knew only migration
// 1 left it, with a run in it, and checks that Open brings it to the
// current schema, keeping the run, and that the fires work.
func TestMigrateFromV1(t *testing.T) {
	if schemaVersion < 2 {
		t.Fatalf("schemaVersion = %d, want at least 2", schemaVersion)
	}
	ctx := context.Background()
	dir := t.TempDir()

	// What a fresh database looks like now.
	freshPath := filepath.Join(dir, "fresh.db")
	fresh := openTest(t, freshPath)
	want := schemaOf(t, fresh.w)
	if _, ok := want["fires"]; !ok {
		t.Fatalf("a fresh database has no fires table: %v", want)
	}
	if err := fresh.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "v1.db")
	db := rawDB(t, path)
	if _, err := db.Exec("PRAGMA auto_vacuum = INCREMENTAL"); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(migrations[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec("PRAGMA user_version = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`INSERT INTO runs (id, job, status) VALUES ('old', 'backup', 'succeeded')`); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if v := userVersion(t, db); v != 1 {
		t.Fatalf("built database at version %d, want 1", v)
	}
	if _, ok := schemaOf(t, db)["fires"]; ok {
		t.Fatal("a version 1 database already has a fires table")
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
	if r, err := s.GetRun(ctx, "old"); err != nil || r.Job != "backup" || r.Status != store.StatusSucceeded {
		t.Errorf("GetRun of the run from version 1 = %+v, %v", r, err)
	}
	slot := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if ok, err := s.RecordFire(ctx, "backup", slot, "r1"); err != nil || !ok {
		t.Fatalf("RecordFire after migrating = %v, %v; want true", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Opening again migrates nothing and keeps the fire.
	for i := range 2 {
		s := openTest(t, path)
		if v := userVersion(t, s.w); v != schemaVersion {
			t.Errorf("reopen %d: user_version = %d, want %d", i, v, schemaVersion)
		}
		if ok, err := s.RecordFire(ctx, "backup", slot.In(time.FixedZone("Y", -7200)), "r2"); err != nil || ok {
			t.Errorf("reopen %d: RecordFire of the recorded slot = %v, %v; want false", i, ok, err)
		}
		if last, err := s.LastFire(ctx, "backup"); err != nil || !last.Equal(slot) || last.Location() != time.UTC {
			t.Errorf("reopen %d: LastFire = %v, %v; want %v", i, last, err, slot)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenCurrentTwice opens a database made by this binary twice more:
// nothing to migrate, nothing lost.
func TestOpenCurrentTwice(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "saltpeter.db")
	slot := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		s, err := Open(ctx, Options{Path: path})
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		if v := userVersion(t, s.w); v != schemaVersion {
			t.Errorf("open %d: user_version = %d, want %d", i, v, schemaVersion)
		}
		ok, err := s.RecordFire(ctx, "job", slot, fmt.Sprint("r", i))
		if err != nil || ok != (i == 0) {
			t.Errorf("open %d: RecordFire = %v, %v; want %v", i, ok, err, i == 0)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRecordFireRefuses(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, filepath.Join(t.TempDir(), "saltpeter.db"))
	slot := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name string
		job  string
		slot time.Time
	}{
		{"empty job", "", slot},
		{"zero slot", "job", time.Time{}},
		{"slot out of range", "job", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		if ok, err := s.RecordFire(ctx, c.job, c.slot, "r"); err == nil || ok {
			t.Errorf("%s: RecordFire = %v, %v; want an error", c.name, ok, err)
		}
	}
	if last, err := s.LastFire(ctx, "job"); err != nil || !last.IsZero() {
		t.Errorf("LastFire after refused fires = %v, %v; want zero", last, err)
	}
}

package postgres_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/saltpeter/saltpeter/plugins/postgres"
)

// TestMigrateFromVersion1 opens a database an older binary left at
// schema version 1: Open adds the fires table and RecordFire works.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	if err := postgres.MigrateTo(ctx, dsn, 1); err != nil {
		t.Fatalf("migrate to version 1: %v", err)
	}
	if got := query[int32](t, dsn, `SELECT version FROM saltpeter_migrations ORDER BY version`); !slices.Equal(got, []int32{1}) {
		t.Fatalf("versions after migrating to 1 = %v, want [1]", got)
	}
	if got := query[bool](t, dsn, `SELECT to_regclass('fires') IS NULL`); !got[0] {
		t.Fatal("fires exists at schema version 1")
	}
	// Something a version-1 binary stored must survive.
	query[string](t, dsn, `INSERT INTO overrides (job, enabled) VALUES ('backup', false) RETURNING job`)

	s := open(t, dsn)
	want := make([]int32, postgres.SchemaVersion)
	for i := range want {
		want[i] = int32(i + 1)
	}
	if got := query[int32](t, dsn, `SELECT version FROM saltpeter_migrations ORDER BY version`); !slices.Equal(got, want) {
		t.Fatalf("versions after Open = %v, want %v", got, want)
	}
	slot := t0.Add(time.Minute)
	for i, w := range []bool{true, false} {
		ok, err := s.RecordFire(ctx, "backup", slot, fmt.Sprint("r", i))
		if err != nil || ok != w {
			t.Fatalf("RecordFire %d = %v, %v; want %v", i, ok, err, w)
		}
	}
	if last, err := s.LastFire(ctx, "backup"); err != nil || !last.Equal(slot) {
		t.Fatalf("LastFire = %v, %v; want %v", last, err, slot)
	}
	if o, err := s.Overrides(ctx); err != nil || len(o) != 1 || o[0].Job != "backup" || o[0].Enabled {
		t.Fatalf("Overrides after migrating = %+v, %v; want backup disabled", o, err)
	}
}

// TestTwoCoresRecordFire races two stores on one database, as two cores
// would, for the same (job, slot): exactly one call wins each slot, and
// the run recorded is the winner's.
func TestTwoCoresRecordFire(t *testing.T) {
	ctx := context.Background()
	dsn := freshDB(t)
	cores := []*postgres.Store{open(t, dsn), open(t, dsn)}
	const slots, perCore = 20, 4
	type win struct {
		slot int
		run  string
	}
	wins := make(chan win, slots*len(cores)*perCore)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for ci, s := range cores {
		for g := range perCore {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := range slots {
					// Each core sees the slot in its own zone: one instant.
					slot := t0.Add(time.Duration(i) * time.Minute).In(time.FixedZone("core", ci*3600))
					run := fmt.Sprintf("core%d-g%d-s%d", ci, g, i)
					ok, err := s.RecordFire(ctx, "race", slot, run)
					if err != nil {
						t.Errorf("core %d: RecordFire: %v", ci, err)
						continue
					}
					if ok {
						wins <- win{i, run}
					}
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	close(wins)
	won := make(map[int][]string)
	for w := range wins {
		won[w.slot] = append(won[w.slot], w.run)
	}
	for i := range slots {
		if len(won[i]) != 1 {
			t.Errorf("slot %d won by %v, want exactly one", i, won[i])
			continue
		}
		ns := t0.Add(time.Duration(i) * time.Minute).UnixNano()
		got := query[string](t, dsn, `SELECT run_id FROM fires WHERE job = 'race' AND slot = $1`, ns)
		if len(got) != 1 || got[0] != won[i][0] {
			t.Errorf("slot %d recorded %v, want the winner %s", i, got, won[i][0])
		}
	}
	want := t0.Add((slots - 1) * time.Minute)
	for ci, s := range cores {
		if last, err := s.LastFire(ctx, "race"); err != nil || !last.Equal(want) {
			t.Errorf("core %d: LastFire = %v, %v; want %v", ci, last, err, want)
		}
	}
}

package postgres_test

// The test harness: TestMain runs the tests with a PostgreSQL server
// (pgtest's, or SALTPETER_POSTGRES_DSN's), and freshDB gives each test a
// database of its own.

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/plugins/postgres"
	"github.com/saltpeter/saltpeter/plugins/postgres/pgtest"
)

func TestMain(m *testing.M) {
	os.Exit(pgtest.Main(m))
}

// freshDB creates an empty database for the test, dropped after it, and
// returns its DSN; it skips or fails the test as pgtest.FreshDB does.
func freshDB(t *testing.T) string {
	t.Helper()
	return pgtest.FreshDB(t)
}

// open opens a store on dsn, closed after the test.
func open(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), postgres.Options{DSN: dsn})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// query returns the first column of every row of sql on dsn.
func query[T any](t *testing.T, dsn, sql string, args ...any) []T {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[T])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// MigrateTo brings the database dsn names to schema version target only,
// as an older binary would have left it.
func MigrateTo(ctx context.Context, dsn string, target int) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	return migrateTo(ctx, conn, target)
}

// SetPruneBatch sets how many runs a PruneRuns transaction deletes at
// most, until the test ends.
func SetPruneBatch(t interface{ Cleanup(func()) }, n int) {
	old := pruneBatch
	pruneBatch = n
	t.Cleanup(func() { pruneBatch = old })
}

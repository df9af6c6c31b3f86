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

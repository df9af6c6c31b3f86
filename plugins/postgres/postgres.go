package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// DefaultListLimit is how many runs ListRuns returns when the filter sets
// no limit.
const DefaultListLimit = 100

// DefaultConnectTimeout bounds each connection attempt when the DSN sets
// no connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// Options configure Open.
type Options struct {
	// DSN is a libpq connection string, keyword/value
	// ("host=db port=5432 dbname=saltpeter user=sp password=...") or URL
	// ("postgres://sp:...@db:5432/saltpeter").
	DSN string
	// MaxConns caps the pool; 0 keeps pgxpool's default.
	MaxConns int32
}

// Store is a store.Store on a PostgreSQL database, safe for concurrent
// use and for sharing one database between several cores.
type Store struct {
	pool   *pgxpool.Pool
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open connects to the database o.DSN names, brings its schema to
// SchemaVersion and returns the store. A database that cannot be reached
// fails with store.ErrUnavailable and an error naming the host and port
// (never the password).
func Open(ctx context.Context, o Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(o.DSN)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse DSN: %s", scrub(err.Error(), o.DSN, ""))
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	if o.MaxConns > 0 {
		cfg.MaxConns = o.MaxConns
	}
	where := fmt.Sprintf("%s:%d (database %q, user %q)", cc.Host, cc.Port, cc.Database, cc.User)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open %s: %s", where, scrub(err.Error(), o.DSN, cc.Password))
	}
	// pgxpool connects lazily: connect now, so a wrong DSN fails here.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("postgres: connect to %s: %w", where, ctx.Err())
		}
		return nil, fmt.Errorf("postgres: connect to %s: %w: %s", where, store.ErrUnavailable,
			scrub(err.Error(), o.DSN, cc.Password))
	}
	err = migrate(ctx, conn)
	conn.Release()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate %s: %s", where, scrub(err.Error(), o.DSN, cc.Password))
	}
	return &Store{pool: pool}, nil
}

// scrub removes a password and the DSN from a message, in case a driver
// error quotes them.
func scrub(msg, dsn, password string) string {
	if dsn != "" {
		msg = strings.ReplaceAll(msg, dsn, "<dsn>")
	}
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "xxxxx")
	}
	return msg
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close closes the pool; later calls fail with store.ErrUnavailable.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.Close()
	return nil
}

// check returns the error a call must fail with before doing anything.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return fmt.Errorf("postgres store closed: %w", store.ErrUnavailable)
	}
	return nil
}

// fail wraps a database error with what was being done, mapping it to the
// store's errors: constraint violations to ErrExists and ErrNotFound, a
// lost or refused connection to ErrUnavailable.
func (s *Store) fail(op string, err error) error {
	var pgErr *pgconn.PgError
	var netErr net.Error
	var connErr *pgconn.ConnectError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%s: %w", op, err)
	case errors.As(err, &pgErr):
		switch {
		case pgErr.Code == "23505": // unique_violation
			return fmt.Errorf("%s: %w (%s)", op, store.ErrExists, pgErr.Detail)
		case pgErr.Code == "23503": // foreign_key_violation
			return fmt.Errorf("%s: %w (%s)", op, store.ErrNotFound, pgErr.Detail)
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "53300",                        // too_many_connections
			pgErr.Code == "57P01", pgErr.Code == "57P02", // admin/crash shutdown
			pgErr.Code == "57P03": // cannot_connect_now
			return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
		}
		return fmt.Errorf("%s: %w", op, err)
	case s.closed.Load(), errors.As(err, &connErr), errors.As(err, &netErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.SafeToRetry(err), pgconn.Timeout(err):
		return fmt.Errorf("%s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// inTx runs fn in a transaction and commits it; fn's error rolls back.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.BeginTx(ctx, opts)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// readOnly is a consistent snapshot for reads of several tables.
var readOnly = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// Times are stored as unix nanoseconds in bigint columns (timestamptz
// keeps microseconds only); the zero time is NULL.
var (
	minTime = time.Unix(0, -1<<63)
	maxTime = time.Unix(0, 1<<63-1)
)

// nanos converts a time for a bigint column.
func nanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("time %s outside what the store keeps (years 1678 to 2262)", t.Format(time.RFC3339))
	}
	n := t.UnixNano()
	return &n, nil
}

// fromNanos is nanos' inverse; times come back in UTC.
func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// SetMaintenance stores the maintenance override, replacing any.
func (s *Store) SetMaintenance(ctx context.Context, m store.Maintenance) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	at, err := nanos(m.SetAt)
	if err != nil {
		return fmt.Errorf("set maintenance: %w", err)
	}
	machines := m.Machines
	if machines == nil {
		machines = []string{}
	}
	if _, err := s.pool.Exec(ctx, `
INSERT INTO maintenance (id, global, machines, set_by, set_at_ns) VALUES (1, $1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET global = EXCLUDED.global, machines = EXCLUDED.machines,
	set_by = EXCLUDED.set_by, set_at_ns = EXCLUDED.set_at_ns`, m.Global, machines, m.SetBy, at); err != nil {
		return s.fail("set maintenance", err)
	}
	return nil
}

// GetMaintenance returns the stored override, store.ErrNotFound when none.
func (s *Store) GetMaintenance(ctx context.Context) (store.Maintenance, error) {
	if err := s.check(ctx); err != nil {
		return store.Maintenance{}, err
	}
	var m store.Maintenance
	var at *int64
	err := s.pool.QueryRow(ctx, `SELECT global, machines, set_by, set_at_ns FROM maintenance WHERE id = 1`).
		Scan(&m.Global, &m.Machines, &m.SetBy, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Maintenance{}, fmt.Errorf("maintenance override: %w", store.ErrNotFound)
	}
	if err != nil {
		return store.Maintenance{}, s.fail("read maintenance", err)
	}
	m.SetAt = fromNanos(at)
	return m, nil
}

// DeleteMaintenance drops the override; none is fine.
func (s *Store) DeleteMaintenance(ctx context.Context) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM maintenance`); err != nil {
		return s.fail("delete maintenance", err)
	}
	return nil
}

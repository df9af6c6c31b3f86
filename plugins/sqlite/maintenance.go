package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// SetMaintenance stores the maintenance override, replacing any.
func (s *Store) SetMaintenance(ctx context.Context, m store.Maintenance) error {
	var e enc
	at := e.t(m.SetAt)
	if e.err != nil {
		return fmt.Errorf("set maintenance: %w", e.err)
	}
	machines := m.Machines
	if machines == nil {
		machines = []string{}
	}
	list, err := json.Marshal(machines)
	if err != nil {
		return fmt.Errorf("set maintenance: encode machines: %w", err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO maintenance (id, global, machines, set_by, set_at) VALUES (1, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET global = excluded.global, machines = excluded.machines,
				set_by = excluded.set_by, set_at = excluded.set_at`,
			m.Global, string(list), m.SetBy, at); err != nil {
			return fmt.Errorf("set maintenance: %w", s.dbErr(ctx, err))
		}
		return nil
	})
}

// GetMaintenance returns the stored override, store.ErrNotFound when none.
func (s *Store) GetMaintenance(ctx context.Context) (store.Maintenance, error) {
	var m store.Maintenance
	err := s.read(ctx, func(tx *sql.Tx) error {
		var list string
		var at sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT global, machines, set_by, set_at FROM maintenance WHERE id = 1`).
			Scan(&m.Global, &list, &m.SetBy, &at)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("maintenance override: %w", store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("maintenance override: %w", s.dbErr(ctx, err))
		}
		if err := json.Unmarshal([]byte(list), &m.Machines); err != nil {
			return fmt.Errorf("maintenance override: machines column %q: %w", list, err)
		}
		m.SetAt = fromNanos(at)
		return nil
	})
	return m, err
}

// DeleteMaintenance drops the override; none is fine.
func (s *Store) DeleteMaintenance(ctx context.Context) error {
	return s.write(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM maintenance`); err != nil {
			return fmt.Errorf("delete maintenance: %w", s.dbErr(ctx, err))
		}
		return nil
	})
}

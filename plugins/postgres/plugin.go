package postgres

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Name is the plugin's name.
const Name = "postgres"

// Config is the store block's config as the core sends it.
type Config struct {
	DSN string `json:"dsn"`
	// Retention is accepted for older cores: the core itself prunes,
	// calling PruneRuns. The output cap comes with each machine, not
	// here: a run keeps the cap it started with.
	Retention string `json:"retention"`
}

// NewPlugin returns the store the plugin serves: it connects when the
// core configures it with the store block.
func NewPlugin(log hclog.Logger) store.Store {
	return store.OpenOnConfigure(func(ctx context.Context, config []byte) (store.Store, error) {
		var c Config
		if err := store.DecodeConfig(config, &c); err != nil {
			return nil, fmt.Errorf("postgres store: %w", err)
		}
		if c.DSN == "" {
			return nil, fmt.Errorf("postgres store config: dsn is required")
		}
		s, err := Open(ctx, Options{DSN: c.DSN})
		if err != nil {
			return nil, err
		}
		log.Info("store connected")
		return s, nil
	})
}

package sqlite

import (
	"context"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/saltpeter/saltpeter/sdk/store"
)

// Name is the plugin's name.
const Name = "sqlite"

// Config is the store block's config as the core sends it.
type Config struct {
	Path        string `json:"path"`
	Synchronous string `json:"synchronous"`
	// Retention is accepted for older cores: the core itself prunes,
	// calling PruneRuns. The output cap comes with each machine, not
	// here: a run keeps the cap it started with.
	Retention string `json:"retention"`
}

// NewPlugin returns the store the plugin serves: it opens the database
// when the core configures it with the store block.
func NewPlugin(log hclog.Logger) store.Store {
	return store.OpenOnConfigure(func(ctx context.Context, config []byte) (store.Store, error) {
		var c Config
		if err := store.DecodeConfig(config, &c); err != nil {
			return nil, fmt.Errorf("sqlite store: %w", err)
		}
		if c.Path == "" {
			return nil, fmt.Errorf("sqlite store config: path is required")
		}
		s, err := Open(ctx, Options{Path: c.Path, Synchronous: c.Synchronous, Logger: log})
		if err != nil {
			return nil, err
		}
		log.Info("store open", "path", c.Path)
		return s, nil
	})
}

package config_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/saltpeter/saltpeter/core/config"
)

// FuzzLoad feeds arbitrary bytes through Load and the diagnostic printer:
// an operator's file may hold anything, and the answer must be
// diagnostics, never a panic. Seeds are in testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	// One file per worker process, rewritten each time: a fresh temporary
	// folder per input costs more than Load itself.
	path := filepath.Join(f.TempDir(), "fuzz.hcl")
	f.Fuzz(func(t *testing.T, src []byte) {
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, diags := config.Load(path)
		if cfg == nil {
			t.Fatal("Load returned a nil Config")
		}
		if err := config.WriteDiagnostics(io.Discard, cfg.Files, diags); err != nil {
			t.Fatalf("WriteDiagnostics: %v", err)
		}
	})
}

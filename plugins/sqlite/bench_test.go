package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/saltpeter/saltpeter/sdk/store"
)

func BenchmarkAppendOutput(b *testing.B) {
	cases := []struct {
		name  string
		size  int
		sync  string
		batch int
	}{
		{"64KiB/single/normal", 64 << 10, SyncNormal, 1},
		{"64KiB/single/full", 64 << 10, SyncFull, 1},
		{"64KiB/batch16/normal", 64 << 10, SyncNormal, 16},
		{"64KiB/batch16/full", 64 << 10, SyncFull, 16},
		// Lines: where the per-commit cost shows.
		{"256B/single/normal", 256, SyncNormal, 1},
		{"256B/single/full", 256, SyncFull, 1},
		{"256B/batch256/normal", 256, SyncNormal, 256},
		{"256B/batch256/full", 256, SyncFull, 256},
	}
	for _, c := range cases {
		data := make([]byte, c.size)
		for i := range data {
			data[i] = byte(i*7 + i>>9)
		}
		b.Run(c.name, func(b *testing.B) {
			ctx := context.Background()
			s, err := Open(ctx, Options{Path: filepath.Join(b.TempDir(), "bench.db"), Synchronous: c.sync})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			if err := s.CreateRun(ctx, store.Run{ID: "r", Job: "j", Machines: []store.Machine{{Machine: "m"}}}); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			var seq int64
			batch := make([]Append, 0, c.batch)
			flush := func() {
				if c.batch == 1 {
					return
				}
				res, err := s.AppendBatch(ctx, batch)
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range res {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
				batch = batch[:0]
			}
			for b.Loop() {
				ch := store.Chunk{Seq: seq, Stream: "stdout", Data: data}
				seq++
				if c.batch == 1 {
					if _, err := s.AppendOutput(ctx, "r", "m", ch); err != nil {
						b.Fatal(err)
					}
					continue
				}
				batch = append(batch, Append{RunID: "r", Machine: "m", Chunk: ch})
				if len(batch) == c.batch {
					flush()
				}
			}
			if len(batch) > 0 {
				flush()
			}
		})
	}
}

// benchStore opens a store in a fresh folder for a benchmark.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(context.Background(), Options{Path: filepath.Join(b.TempDir(), "bench.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

package store

import "context"

// Append is one chunk of a batch.
type Append struct {
	RunID   string
	Machine string
	Chunk   Chunk
}

// AppendResult is what AppendOutput would have returned for one chunk.
type AppendResult struct {
	Next int64
	Err  error
}

// Batcher is the optional ability of a store to commit many output chunks
// in one transaction; the plugin adapter uses it for every batch the core
// sends, so a chatty job costs one commit per batch, not per chunk. Each
// result says what AppendOutput would have said for its chunk, in order.
type Batcher interface {
	AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult
}

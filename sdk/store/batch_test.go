package store

import (
	"context"
	"errors"
	"testing"
)

// batchingFake is fakeStore taking batches, and counting them.
type batchingFake struct {
	*fakeStore
	batches int
}

func (b *batchingFake) AppendOutputBatch(ctx context.Context, batch []Append) []AppendResult {
	b.batches++
	out := make([]AppendResult, len(batch))
	for i, a := range batch {
		out[i].Next, out[i].Err = b.AppendOutput(ctx, a.RunID, a.Machine, a.Chunk)
	}
	return out
}

// AppendBatch hands a batch whole to a store that takes batches, and
// chunk by chunk, in order, to one that does not; each result is its
// chunk's.
func TestAppendBatch(t *testing.T) {
	refused := errors.New("refused")
	for _, tc := range []struct {
		name        string
		batching    bool
		wantBatches int
	}{
		{"batching store", true, 1},
		{"store without batches", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeStore{appendFn: func(_, _ string, c Chunk) (int64, error) {
				if c.Seq == 2 {
					return 2, refused
				}
				return c.Seq + 1, nil
			}}
			var s Store = f
			b := &batchingFake{fakeStore: f}
			if tc.batching {
				s = b
			}
			batch := []Append{{RunID: "r", Machine: "m", Chunk: Chunk{Seq: 0}},
				{RunID: "r", Machine: "m", Chunk: Chunk{Seq: 1}}, {RunID: "r", Machine: "m", Chunk: Chunk{Seq: 2}}}
			res := AppendBatch(context.Background(), s, batch)
			if len(res) != 3 || res[0] != (AppendResult{Next: 1}) || res[1] != (AppendResult{Next: 2}) ||
				!errors.Is(res[2].Err, refused) || res[2].Next != 2 {
				t.Fatalf("results %+v", res)
			}
			for i, c := range f.chunks {
				if c.Seq != int64(i) {
					t.Fatalf("chunks appended out of order: %+v", f.chunks)
				}
			}
			if b.batches != tc.wantBatches {
				t.Fatalf("%d batches reached the store, want %d", b.batches, tc.wantBatches)
			}
		})
	}
}

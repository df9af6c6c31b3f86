package store

import (
	"testing"
)

// TestReadPlan: the answer from stored chunks, dropped stretches (gaps
// between chunks) and lost ones (AddLost), with offsets and limits.
func TestReadPlan(t *testing.T) {
	type piece struct {
		start int64
		data  string // "" with lost > 0: a lost chunk
		lost  int64
	}
	drop := func(n int64) string { return string(DroppedMarker(n)) }
	lost := func(n int64) string { return string(LostMarker(n)) }
	cases := []struct {
		name     string
		offset   int64
		limit    int64
		pieces   []piece
		want     string
		wantNext int64
	}{
		{"chunks", 0, 0, []piece{{0, "ab", 0}, {2, "cd", 0}}, "abcd", 4},
		{"a gap is dropped", 0, 0, []piece{{0, "ab", 0}, {5, "cd", 0}}, "ab" + drop(3) + "cd", 7},
		{"lost", 0, 0, []piece{{0, "ab", 0}, {2, "", 4}, {6, "cd", 0}}, "ab" + lost(4) + "cd", 8},
		{"lost last", 0, 0, []piece{{0, "ab", 0}, {2, "", 4}}, "ab" + lost(4), 6},
		{"a gap then lost", 0, 0, []piece{{0, "ab", 0}, {4, "", 4}}, "ab" + drop(2) + lost(4), 8},
		{"lost chunks in a row, one marker", 0, 0, []piece{{0, "ab", 0}, {2, "", 2}, {4, "", 3}, {7, "cd", 0}}, "ab" + lost(5) + "cd", 9},
		{"lost, a gap, lost", 0, 0, []piece{{0, "", 2}, {4, "", 2}}, lost(2) + drop(2) + lost(2), 6},
		{"from inside a lost chunk", 3, 0, []piece{{2, "", 4}, {6, "cd", 0}}, lost(3) + "cd", 8},
		{"lost before the offset", 7, 0, []piece{{2, "", 4}, {6, "cd", 0}}, "d", 8},
		{"a lost marker is never cut", 0, 4, []piece{{0, "ab", 0}, {2, "", 4}, {6, "cd", 0}}, "ab", 2},
		{"but is a read's first", 2, 4, []piece{{2, "", 4}, {6, "cd", 0}}, lost(4), 6},
		{"full after a lost marker", 0, 2 + int64(len(lost(4))), []piece{{0, "ab", 0}, {2, "", 4}, {6, "cd", 0}}, "ab" + lost(4), 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := NewReadPlan(OutputQuery{Offset: c.offset, Limit: c.limit}, 100)
			for _, pc := range c.pieces {
				var more bool
				if pc.lost > 0 {
					more = p.AddLost(pc.start, pc.lost)
				} else {
					more = p.Add(pc.start, []byte(pc.data))
				}
				if !more {
					break
				}
			}
			out := p.Done()
			if string(out.Data) != c.want || out.Next != c.wantNext || out.Total != 100 {
				t.Errorf("got %q, next %d, total %d; want %q, next %d", out.Data, out.Next, out.Total, c.want, c.wantNext)
			}
		})
	}
}

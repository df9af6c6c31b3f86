package runner

import (
	"testing"
	"time"
)

func TestRunIDsSortByTimeAndDoNotCollide(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 1, 2, 3, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 2000; i++ {
		id := newRunID(t0.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 {
			t.Fatalf("id %q has %d characters, want 26", id, len(id))
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
		if id <= prev {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		prev = id
	}
	a, b := newRunID(t0), newRunID(t0)
	if a == b {
		t.Fatalf("two ids in the same millisecond collide: %q", a)
	}
}

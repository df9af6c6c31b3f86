package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		name        string
		live, floor uint64
		want        int
	}{
		{"nothing live", 0, 64 * mib, maxPercent},
		{"a tiny heap is bounded", 1024, 64 * mib, maxPercent},
		{"small heap: the next collection at the floor", 8 * mib, 64 * mib, 700},
		{"a quarter of the floor", 16 * mib, 64 * mib, 300},
		{"half the floor: twice live is the floor", 32 * mib, 64 * mib, 100},
		{"above the floor: the default", 500 * mib, 64 * mib, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := percent(tc.live, tc.floor)
			if got != tc.want {
				t.Errorf("percent(%d, %d) = %d, want %d", tc.live, tc.floor, got, tc.want)
			}
			if tc.live > 0 && tc.live < tc.floor/2 && got < maxPercent {
				if next := tc.live + tc.live*uint64(got)/100; next > tc.floor || next < tc.floor-tc.floor/100 {
					t.Errorf("the next collection starts at %d, want the floor %d", next, tc.floor)
				}
			}
		})
	}
}

// TestFloorSetsThePercentageAfterACollection: with a floor far above this
// test's heap, a collection is followed by the percentage that puts the
// next at the floor, which the runtime then reports as GOGC's.
func TestFloorSetsThePercentageAfterACollection(t *testing.T) {
	t.Setenv("GOGC", "") // set: Floor must leave the runtime alone
	if Floor(1 << 30) {
		t.Fatal("Floor tuned the collector with GOGC set")
	}
	// t.Setenv cannot unset; the lookup is what Floor makes.
	t.Cleanup(func() { tuned = nil; debug.SetGCPercent(100) })
	got := make(chan int, 16)
	tuned = func(p int) {
		select {
		case got <- p:
		default:
		}
	}
	arm(1<<30, -1)
	deadline := time.After(30 * time.Second)
	for {
		runtime.GC()
		select {
		case p := <-got:
			if p <= 100 {
				t.Fatalf("a floor of 1 GiB over this test's heap set a percentage of %d", p)
			}
			s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
			metrics.Read(s)
			if int(s[0].Value.Uint64()) != p {
				t.Errorf("the runtime's GOGC is %d, want the %d set", s[0].Value.Uint64(), p)
			}
			return
		case <-time.After(100 * time.Millisecond):
			// The cleanup runs after the collection finds the sentinel
			// unreachable: collect again until it has.
		case <-deadline:
			t.Fatal("no percentage set within 30s of collections")
		}
	}
}

// sink keeps the test's garbage from being optimised away.
var sink [][]byte

// TestSettleGivesBackFreePages: the free pages a burst left in the heap
// are the system's after Settle, not kept for reuse.
func TestSettleGivesBackFreePages(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1)) // no collection of the burst before Settle
	for range 256 {
		sink = append(sink, make([]byte, 128<<10))
	}
	sink = nil
	free := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/free:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	runtime.GC()
	before := free()
	Settle()
	after := free()
	if before < 16<<20 {
		t.Fatalf("the burst of 32 MiB left only %d bytes free after a collection", before)
	}
	if after > before/8 {
		t.Errorf("Settle left %d of %d free bytes resident", after, before)
	}
}

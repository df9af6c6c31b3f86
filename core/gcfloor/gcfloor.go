package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
)

// Default is the heap below which the core's processes do not collect.
const Default = 64 << 20

// maxPercent bounds the percentage for a live heap of almost nothing,
// where the floor over it would be a ratio of millions.
const maxPercent = 10000

// percent is the collector's percentage that makes the next collection
// start when the heap reaches floor, live being the heap live after the
// last one: never below the runtime's default of 100.
func percent(live, floor uint64) int {
	if live == 0 {
		return maxPercent
	}
	if live >= floor/2 {
		return 100
	}
	return int(min(maxPercent, (floor-live)*100/live))
}

// tuned, when set (by tests), receives each percentage Floor sets.
var tuned func(int)

// Floor keeps the collector from starting below a heap of floor bytes,
// from the next collection on, for the life of the process; unless the
// environment sets GOGC, in which case it does nothing and says so.
func Floor(floor uint64) bool {
	if _, set := os.LookupEnv("GOGC"); set {
		return false
	}
	arm(floor, -1)
	return true
}

// sentinel is an object only the collector frees: its cleanup runs once
// a collection has found it unreachable, which is after each collection
// as long as a new one is armed in its place.
type sentinel struct{ _ [16]byte }

// arm sets up the cleanup that tunes the percentage after the next
// collection; last is the percentage set before (-1: none).
func arm(floor uint64, last int) {
	s := new(sentinel)
	runtime.AddCleanup(s, func(last int) { last = tune(floor, last); arm(floor, last) }, last)
}

// tune sets the percentage for the live heap now, unless it is within a
// tenth of the one set last, and returns the percentage in effect. One
// sentinel is armed at a time, so one tune runs at a time.
func tune(floor uint64, last int) int {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindUint64 {
		return last
	}
	p := percent(sample[0].Value.Uint64(), floor)
	if last >= 0 && p*10 >= last*9 && p*10 <= last*11 {
		return last
	}
	debug.SetGCPercent(p)
	if tuned != nil {
		tuned(p)
	}
	return p
}

// Settle collects and gives every free page of the heap back to the
// operating system at once. A process calls it when a burst of
// allocation is over and it expects to idle: the core once it serves,
// after parsing its configuration and scheduling every job. With the
// floor, the collector would not run again until the heap reached it,
// and the runtime's scavenger keeps free pages up to about the floor for
// reuse, so the burst's garbage stayed resident: a core with 10,000 jobs
// held 100–160 MiB when idle, for a live heap of 17 MiB. Settle costs one
// collection of the live heap.
func Settle() { debug.FreeOSMemory() }

package wrapper

import (
	"os"
	"runtime"
	"sync/atomic"

	"github.com/saltpeter/saltpeter/sdk/wire"
)

// A wrapper runs on one P until its job's output says it needs more.
// Most jobs write little, and then the wrapper is a Go program's start
// and end around a few frames: with a P per CPU, each time a goroutine
// blocks or wakes the runtime wakes another thread to look for work, and
// starts threads to do so. On one P, 200 local jobs a second took 0.27
// ms less of their wrappers' and jobs' CPU a run (4.78 → 4.51) and 0.40 ms
// less of the machine's (6.81 → 6.41), eight interleaved runs each way.
// Narrowing itself costs the wrapper a stop of the world and the release
// of the second P's caches, 5% of its samples; started on one P by its
// target, it saved another 0.25 ms a run (4.53 → 4.29), six runs each
// way. A job whose pipe one read finds full (proc.FullRead) gets every P
// back, once, for its output's copies and the connection's writes to
// overlap.
//
// narrowed is set while the wrapper runs on one P that widen is to give
// back.
var narrowed atomic.Bool

// Narrow puts the wrapper on one P, for its main to call before it starts
// anything: its target did (wire.EnvNarrowedByTarget, whose variables it
// removes from the environment, so that neither reaches the job), or it
// sets GOMAXPROCS to 1 itself, unless the operator set GOMAXPROCS.
func Narrow() {
	byTarget := os.Getenv(wire.EnvNarrowedByTarget) == "1"
	_ = os.Unsetenv(wire.EnvNarrowedByTarget)
	switch {
	case byTarget && os.Getenv("GOMAXPROCS") == "1":
		_ = os.Unsetenv("GOMAXPROCS")
		narrowed.Store(true)
	case os.Getenv("GOMAXPROCS") != "":
		// The operator's choice: it stands, and reaches the job.
	default:
		if runtime.GOMAXPROCS(1) > 1 {
			narrowed.Store(true)
		}
	}
}

// widen gives the wrapper the runtime's default Ps (what it would have
// had without GOMAXPROCS) the first time it is called after Narrow; it
// costs an atomic load after that.
func widen() {
	if narrowed.Load() && narrowed.Swap(false) {
		runtime.SetDefaultGOMAXPROCS()
	}
}

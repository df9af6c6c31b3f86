// Package gcfloor keeps the garbage collector of the core's long-running
// processes (saltpeter serve and the built-in plugins) from running
// while their heap is small.
//
// The runtime's default (GOGC=100) starts a collection each time the
// heap has grown by as much as was live after the last one. A store
// plugin holds a few MiB live and allocates hundreds of MiB a second at
// fleet load (a protobuf message, SQL arguments and rows per call), so
// it collected dozens of times a second; a core holding little but its
// configuration did the same. Profiled at 1,000 runs a second (sim
// target, BENCHMARKS.md), marking, assisting and sweeping were a fifth
// of the core's CPU and a tenth of the store plugin's; with a floor of
// 64 MiB each spent a fifth less CPU per run, and the core about 40 MiB
// more memory.
//
// Floor sets the collector's percentage after every collection so that
// the next starts at the floor, or at twice the live heap when that is
// more: a process with a large heap (thousands of wrappers held) runs as
// the default has it, a small one trades a few tens of MiB of memory it
// would not have used for a collector that runs a few times less often.
// Settle is the floor's counterpart for a process about to idle after a
// burst (the core once it serves): it hands the burst's garbage back at
// once instead of keeping it until the heap next reaches the floor.
//
// An operator's GOGC is the operator's choice: with it set, Floor
// changes nothing. GOMEMLIMIT, set, still bounds the heap: the runtime
// collects at the limit whatever the percentage says.
package gcfloor

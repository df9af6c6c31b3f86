// Package sysmon keeps the Go runtime's system monitor awake in the
// core's long-running processes (saltpeter serve and the built-in
// plugins), which otherwise spend a large share of their CPU putting it
// to sleep and waking it again.
//
// The monitor (runtime.sysmon) sleeps deeply whenever every P is idle,
// and the next system call that finds it so wakes it, setting its next
// sleeps back to 20µs. A core holding thousands of idle wrappers wakes
// for every heartbeat, a few thousand times a second, each time from
// idle: the monitor then sleeps and wakes as often, at two context
// switches and a 20µs sleep a time. Profiled with 12,000 idle wrappers
// (BENCHMARKS.md), that was a fifth of the core's CPU, and as much again
// in the threads' own futex sleeps it set off; the runtime gives no
// setting for it (golang/go#18236). One setting keeps the monitor out of
// its deep sleep: GODEBUG's schedtrace, which is read once, as the
// process starts. With it at its largest value (2^31-1 ms, 24.8 days),
// the monitor backs off to a sleep of 10ms when nothing happens, 100
// wakeups a second in a process with nothing to do.
//
// Awake therefore re-executes the program in place (execve: the same
// pid, process name, arguments and descriptors) with the setting added
// to GODEBUG, and the re-executed process puts GODEBUG back as it was,
// so that nothing it starts (plugins, wrappers, jobs) inherits it. Its
// costs: one more program start as a process starts; the scheduler's
// one-line summary ("SCHED …") on standard error every 24.8 days of the
// machine's uptime, and once at the start on a machine up longer than
// that; and, should the process crash, the scheduler's state printed
// before the stacks.
// SALTPETER_SYSMON_DEEP_SLEEP=1 leaves the runtime as it is, and so does
// a GODEBUG that sets schedtrace already.
package sysmon

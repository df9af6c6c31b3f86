// Package runner owns what happens to a job between "fire" and "final":
// the overlap decision, the run record, resolving the target to machines,
// registering each machine with the hub and having the target plugin
// dispatch its wrapper, and the run's aggregate status once every machine
// is final. It also carries the operators' requests (run now, kill,
// signal, enable) into the kill queue, the store and the scheduler.
//
// One goroutine owns the runner's state (the configuration in force, the
// enable overrides, the runs it started that may still be busy, and a
// tally of each run's machines not final yet); every request reaches it
// through a channel, and slow work (store writes, plugin calls) happens
// outside it. The tally is what makes a machine's end cost the runner
// O(1): the whole run is read from the store once, when its last machine
// ended, to record its result. A run's machines are resolved beside its
// record and stored with it, one write, when the target answers within
// Config.PlanWait (see start).
package runner

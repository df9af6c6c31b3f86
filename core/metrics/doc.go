// Package metrics owns what the core tells Prometheus at /metrics: runs by
// job and status and their durations, each machine's last exit code and
// last success, machines running and wrappers connected, kill latency,
// store write latency, notifications by result, and plugin starts.
//
// The other parts do not import Prometheus: they call the hooks this
// package's Metrics offers (RunEnded, Killed, Notified) or are read by it
// (the hub's counts, the plugin host's starts), and the store is wrapped
// (Store) to time its writes.
//
// Per-machine series are bounded: at most MaxMachineSeries (job, machine)
// pairs get their own series (later ones are counted in
// saltpeter_machine_series_dropped_total instead), and PerMachine false
// drops the machine label altogether, so that a fleet of thousands does
// not drown Prometheus.
package metrics

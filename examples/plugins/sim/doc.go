// Command sim is a target plugin that starts no process: it hands each
// dispatch to a load generator (core/cmd/saltpeter-loadgen), which plays
// the wrapper over a real WebSocket connection to the core. With it a
// core can be driven at fleet scale on one machine, and the figures
// measure the core, not fork. It is written against the SDK alone, as a
// third party's plugin would be.
//
//	plugin "target" "sim" {
//	  path   = "/usr/local/bin/sim"
//	  config { loadgen = "unix:/run/saltpeter-loadgen.sock" }
//	}
//	job "fleet" {
//	  command = "sim exit=0 duration=100ms output=1024"
//	  target "sim" { machines = 500 }  # sim-00001 … sim-00500
//	}
//
// The target block takes machines (a count of machines named sim-NNNNN)
// and/or names (a list). The job's command is read by the load generator
// (see core/loadgen's ParseCommand).
//
// The plugin keeps one connection to the load generator and multiplexes
// every dispatch over it: one JSON line per dispatch, one reply line per
// dispatch naming its id (the protocol is described in core/loadgen's
// package documentation; this package repeats its few types rather than
// import the core). A dropped connection is dialled again at the next
// dispatch. The dispatch environment holds the run's token; it goes to
// the load generator and nowhere else: not in a log, not in an error.
package main

// Package loadgen owns the load generator: a fleet of fake v2 wrappers in
// one process, so that a core can be driven at fleet scale on one machine
// and the figures measure the core, not fork and exec.
//
// The sim target plugin (examples/plugins/sim) hands each dispatch to a
// Server instead of starting a process. The Server answers at once, as a
// wrapper's detach line would, and plays the wrapper: it dials the
// core's WebSocket URL from the dispatch environment (from the next of
// its source addresses, so that one address's ephemeral ports are not
// the limit), connects with the bootstrap token, takes the job's spec
// from the connect ack, sends start, the output (binary frames, seqs,
// within a window of unacked frames), heartbeats and pings at the spec's
// interval, and complete once every chunk is acked. It obeys kill and
// signal frames as the wire protocol's kill policy says, reconnects with
// resume and the session after a dropped connection, and records when
// each step happened (Stats).
//
// What the fake job does comes from the job's command, in a tiny
// language (ParseCommand):
//
//	sim exit=0 duration=100ms output=1024 term=honour
//
// The Server imports nothing of the core: it sees the core only through
// the wire protocol, as a third party's wrapper would.
//
// # Dispatch protocol
//
// Newline-delimited JSON over one stream connection (unix or TCP) that
// the plugin keeps open. The plugin sends
//
//	{"id":7,"op":"dispatch","job":"j","run_id":"r","machine":"sim-00001",
//	 "protocol":2,"wrapper":"","args":{...},"env":{"SP_TOKEN":"…",…}}
//	{"id":7,"op":"cancel"}
//
// and each dispatch gets exactly one reply, in any order:
//
//	{"id":7,"ok":true,"detail":"saltpeter-wrapper: detached (saltpeter-loadgen) pid=1234"}
//	{"id":7,"ok":false,"error":"the dispatch environment has no SP_TOKEN"}
//
// A cancel gets no reply. The environment holds the run's token: the
// socket is made private to its user, and no log or error holds it.
//
// # Cost
//
// A fake wrapper is one goroutine, blocked reading its connection. Its
// heartbeats, its job's end and a kill's grace are runtime timers whose
// callbacks take the wrapper's mutex to write; write buffers are shared
// (a pool) and read buffers small, and the frames a connection carries
// most (output, heartbeats, output acks) are built and parsed without
// the JSON encoder.
package loadgen

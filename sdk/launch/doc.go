// Package launch starts a wrapper program as a child process of a target
// plugin, the way every target that runs a local process needs to (the
// local target, a simulated fleet, or an ssh or container client whose
// remote end is the wrapper): exactly the dispatch environment, no
// inherited descriptors, the token never on a command line, and a result
// only once the wrapper said it detached, or an error that carries its
// stderr.
//
// Start does it in one call. A target whose wrapper is its own child may
// start it already detached (Command.Detached), which spares the wrapper
// the copy of itself it would start to detach. Begin and Await are Start
// in two steps, for a target that starts a wrapper before it knows the
// dispatch and hands it its environment later, on standard input
// (EnvRecords), as the local target does with its spare wrapper.
package launch

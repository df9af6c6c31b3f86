// Package launch starts a wrapper program as a child process of a target
// plugin, the way every target that runs a local process needs to (the
// local target, a simulated fleet, or an ssh or container client whose
// remote end is the wrapper): exactly the dispatch environment, no
// inherited descriptors, the token never on a command line, and a result
// only once the wrapper said it detached, or an error that carries its
// stderr.
package launch

// Package cli owns the saltpeter command line: serve and validate for the
// core, the hidden plugin command that serves built-in plugins when the
// binary re-executes itself, and the operator commands (jobs, next, run,
// kill, runs, output, enable, disable) that talk to a core's HTTP API.
package cli

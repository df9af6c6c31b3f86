// Package e2e owns the tests and benchmarks that run the real binaries:
// a saltpeter core started from an HCL file, its built-in local target
// plugin re-executed out of process, and saltpeter-wrapper processes
// running real commands, all driven through the HTTP API and the /ws
// endpoint exactly as an operator and a wrapper would.
package e2e

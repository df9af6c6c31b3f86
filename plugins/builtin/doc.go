// Package builtin serves the plugins compiled into the saltpeter binary.
// The core's plugin host starts a built-in plugin by re-executing its own
// binary as `saltpeter plugin KIND NAME`, which calls Serve; one artifact
// carries the core and its built-in plugins.
package builtin

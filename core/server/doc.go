// Package server owns the core process's assembly: it loads the
// configuration, builds the parts (store, hub, kill queue, plugin host,
// scheduler, runner, API), connects them through their small interfaces
// and channels, serves HTTP, and takes them down in order on shutdown.
// It is the one place that knows every part.
package server
